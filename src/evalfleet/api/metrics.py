"""Observability: an eval's live figures for ``status``, and the same as Prometheus metrics.

:func:`eval_progress` reads them from the journal and the committed rows (read-only, any
time, any process): progress per worker (the results' ``worker`` column: ``local:<pid>`` for
the local backend, a node for Ray), runs in flight per lease owner, retries, infrastructure
failures, quarantined tasks with their evidence, and an ETA.

:func:`serve_metrics` serves a running driver's live counters
(:class:`~evalfleet.execution.dispatcher.DispatchStats`) on ``127.0.0.1:PORT/metrics`` in
the Prometheus text format (``evalfleet run/resume --metrics-port PORT``; the optional
dependency ``prometheus-client``, extra ``evalfleet[metrics]``, imported only then).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from evalfleet.errors import SpecError
from evalfleet.execution.dispatcher import DispatchStats
from evalfleet.store import Store

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

METRICS_HOST = "127.0.0.1"
"""The metrics endpoint listens on loopback only: it says what an eval costs and runs."""


def eval_progress(store: Store, eval_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """Workers, in flight, retries, quarantine and ETA of one eval (read-only).

    ``row`` is the eval's journal row. ``workers`` lists, per worker of the committed rows
    (reused rows, which ran nowhere, left out), the rows it committed, how many errored, the
    retries their runs needed (attempts - 1), and when its last row finished; ``in_flight``
    the runs leased now (executing, or waiting out a retry's backoff). ``eta_s`` is the runs
    left (pending and leased) divided by the rate at which rows finished since the latest
    driver started; None when the eval is not running or nothing finished yet.
    """
    from evalfleet.store.warehouse import query

    since = float(row.get("started_at") or row.get("created_at") or 0.0)
    _, rows = query(store.home, store.results_paths(eval_id),
                    "SELECT coalesce(worker, '') AS worker, count(*), "
                    "count(*) FILTER (WHERE status = 'errored'), "
                    "coalesce(sum(greatest(attempts - 1, 0)), 0), epoch(max(finished_at)), "
                    f"count(*) FILTER (WHERE epoch(finished_at) >= {since!r}) "
                    "FROM runs WHERE reused_from IS NULL GROUP BY 1 ORDER BY 1")
    workers = [{"worker": w, "runs": int(n), "errored": int(e), "retries": int(r),
                "last_finished_at": None if last is None else datetime.fromtimestamp(
                    float(last), UTC).isoformat(timespec="seconds")}
               for w, n, e, r, last, _ in rows]
    recent = sum(int(r[5]) for r in rows)
    j = store.journal
    pending, leased, _ = j.lease_state(eval_id)
    quarantined = j.quarantined(eval_id)
    failures = sum(j.infra_failures(eval_id).values())
    left = pending + leased
    eta: float | None = None
    elapsed = time.time() - since
    if row.get("status") == "running" and recent and elapsed > 0:
        eta = round(left / (recent / elapsed), 1)
    return {"workers": workers, "in_flight": leased, "pending": pending,
            "retries": sum(w["retries"] for w in workers), "infra_failures": failures,
            "quarantined_tasks": quarantined,
            "quarantined": sum(q["runs_quarantined"] for q in quarantined), "eta_s": eta}


@dataclass(slots=True, eq=False)  # hashable: the registry keeps collectors in a dict
class _StatsCollector:
    """Reads a driver's live :class:`DispatchStats` at each scrape."""

    eval_id: str
    stats: DispatchStats

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s, ev = self.stats, [self.eval_id]

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=["eval_id"])
            c.add_metric(ev, value)
            return c

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=["eval_id"])
            g.add_metric(ev, value)
            return g

        committed = CounterMetricFamily("evalfleet_runs_committed",
                                        "Runs committed by this driver, by status.",
                                        labels=["eval_id", "status"])
        for status in ("completed", "failed", "errored", "cancelled"):
            committed.add_metric([self.eval_id, status], s.committed.get(status, 0))
        yield committed
        by_worker = CounterMetricFamily("evalfleet_worker_runs_committed",
                                        "Runs committed by this driver, by the worker of their "
                                        "last attempt (local:<pid>, a Ray node).",
                                        labels=["eval_id", "worker"])
        for worker, n in sorted(dict(s.by_worker).items()):  # a copy: the loop thread adds
            by_worker.add_metric([self.eval_id, worker], n)
        yield by_worker
        yield counter("evalfleet_attempts", "Attempts that ran and ended.", s.attempts)
        yield counter("evalfleet_retries", "Attempts retried after an infrastructure error.",
                      s.retries)
        yield counter("evalfleet_infra_errors",
                      "Attempts that ended in an infrastructure error.", s.infra_errors)
        yield counter("evalfleet_quarantined_tasks",
                      "Tasks quarantined (earlier drivers' included).",
                      len(s.quarantined_tasks))
        yield counter("evalfleet_quarantined_runs", "Runs ended as quarantined.",
                      s.quarantined_runs)
        yield counter("evalfleet_cost_usd", "Dollars spent by the eval (every attempt, earlier "
                      "drivers included).", s.cost_usd)
        yield gauge("evalfleet_in_flight", "Runs executing now.", s.running)
        pending = pending_runs(s)
        yield gauge("evalfleet_pending", "Runs not yet finished nor executing.", pending)
        yield gauge("evalfleet_eta_seconds", "Estimated seconds to finish (NaN before a run "
                    "finished).", eta_seconds(s, pending))


def pending_runs(s: DispatchStats) -> int:
    """Runs of the eval neither finished, ended, nor executing now."""
    return max(s.planned - s.already_done - s.done - s.running - s.quarantined_runs
               - s.budget_cancelled - s.config_errors, 0)


def eta_seconds(s: DispatchStats, pending: int, now: float | None = None) -> float:
    """Runs left over this driver's rate so far; NaN before a run finished."""
    elapsed = (time.monotonic() if now is None else now) - s.started
    if s.done <= 0 or elapsed <= 0:
        return math.nan
    return (pending + s.running) / (s.done / elapsed)


class MetricsServer:
    """A driver's ``/metrics`` endpoint on ``127.0.0.1:port``; :meth:`close` stops it."""

    def __init__(self, eval_id: str, stats: DispatchStats, port: int) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise SpecError("--metrics-port needs prometheus-client: pip install "
                            "'evalfleet[metrics]'", field="--metrics-port") from None
        self.registry = CollectorRegistry(auto_describe=False)
        collector: Collector = _StatsCollector(eval_id, stats)
        self.registry.register(collector)
        try:
            self._server, self._thread = start_http_server(port, addr=METRICS_HOST,
                                                           registry=self.registry)
        except OSError as exc:
            raise SpecError(f"cannot serve metrics on {METRICS_HOST}:{port}: {exc.strerror}",
                            field="--metrics-port") from None
        self.port = int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def check_metrics_port(port: int | None) -> None:
    """A user's port number in range, or a one-line error."""
    if port is not None and not 0 <= port <= 65535:
        raise SpecError(f"--metrics-port must be between 0 and 65535, got {port}",
                        field="--metrics-port")
