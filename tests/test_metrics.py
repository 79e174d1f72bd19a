"""Observability: Prometheus metrics of a running eval (--metrics-port) and status's figures."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from evalfleet import api
from evalfleet.api.metrics import MetricsServer, eta_seconds, pending_runs
from evalfleet.cli import app
from evalfleet.errors import InfraError, SpecError
from evalfleet.execution.dispatcher import DispatchStats
from evalfleet.settings import Settings

POISON = "t00001"
HELD = "t00005"


def gated(task: dict[str, Any], release: str) -> str:
    """``ok``; one task is a poison (an infrastructure error each attempt) and one waits until
    the file ``release`` exists, so the test can scrape while it is in flight."""
    if task["id"] == POISON:
        raise InfraError("sandbox died")
    if task["id"] == HELD:
        for _ in range(6000):
            if Path(release).exists():
                break
            time.sleep(0.01)
    return "ok"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int, client: httpx.Client | None = None
            ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = (client or httpx).get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "eval_id"))):
            s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_metrics_during_an_eval(make_plan: Callable[..., Path], tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    release = tmp_path / "release"
    agent = {"name": "gated", "version": "1", "kind": "python",
             "args": {"callable": f"{__name__}:gated", "kwargs": {"release": str(release)}}}
    plan = make_plan(n_tasks=6, agents=[agent],
                     # one at a time: the poison task fails after t00000 ended (the quarantine
                     # wants evidence that the infrastructure works for other tasks)
                     execution={"backoff_base_s": 0.0, "max_in_flight": 1, "max_attempts": 3,
                                "quarantine_after": 2, "sandbox": "local"})
    port = _free_port()
    done: list[Any] = []
    t = threading.Thread(target=lambda: done.append(
        api.run(plan, settings=settings, metrics_port=port)))
    t.start()
    try:
        m: dict[Any, float] = {}
        with httpx.Client(trust_env=False) as client:
            for _ in range(1200):  # until every run but the held one is committed
                try:
                    m = _scrape(port, client)
                except httpx.TransportError:
                    m = {}
                if (m.get(("evalfleet_runs_committed_total", (("status", "completed"),))) == 4 \
                        and m.get(("evalfleet_runs_committed_total",
                                   (("status", "errored"),))) == 1) or not t.is_alive():
                    break
                time.sleep(0.05)
        assert m, "the metrics endpoint never answered"
        # 4 runs passed; the poison run failed twice (the second failure quarantined its task)
        assert m[("evalfleet_runs_committed_total", (("status", "completed"),))] == 4
        assert m[("evalfleet_runs_committed_total", (("status", "errored"),))] == 1
        assert m[("evalfleet_runs_committed_total", (("status", "failed"),))] == 0
        assert m[("evalfleet_attempts_total", ())] == 6
        by_worker = {k[1][0][1]: v for k, v in m.items()
                     if k[0] == "evalfleet_worker_runs_committed_total"}
        assert list(by_worker.values()) == [5] and next(iter(by_worker)).startswith("local:")
        assert m[("evalfleet_retries_total", ())] == 1
        assert m[("evalfleet_infra_errors_total", ())] == 2
        assert m[("evalfleet_quarantined_tasks_total", ())] == 1
        assert m[("evalfleet_cost_usd_total", ())] == 0.0
        assert m[("evalfleet_in_flight", ())] == 1  # the held run
        assert m[("evalfleet_pending", ())] == 0
        assert math.isfinite(m[("evalfleet_eta_seconds", ())])
        assert m[("evalfleet_eta_seconds", ())] >= 0
        # status, read from the journal meanwhile, says the same
        eval_id = api.status(settings=settings)["evals"][0]["eval_id"]
        st = api.status(eval_id, settings=settings)
        assert st["in_flight"] == 1 and st["pending"] == 0 and st["retries"] == 1
        assert st["infra_failures"] == 2
        assert [q["task_id"] for q in st["quarantined_tasks"]] == [POISON]
        [w] = st["workers"]
        assert w["worker"].startswith("local:") and w["runs"] == 5 and w["errored"] == 1
        assert w["retries"] == 1
        assert st["eta_s"] is not None and st["eta_s"] >= 0
    finally:
        release.write_text("go")
        t.join(120)
    assert done and done[0].status == "completed"
    with pytest.raises(httpx.TransportError):  # the endpoint ends with the eval
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    st = api.status(done[0].eval_id, settings=settings)
    assert st["eta_s"] is None and st["in_flight"] == 0 and st["workers"][0]["runs"] == 6
    out = CliRunner().invoke(app, ["status", done[0].eval_id, "--home", str(settings.home)])
    assert out.exit_code == 0, out.output
    assert "quarantined task" in out.output and POISON in out.output
    assert "sandbox died" in out.output and "workers" in out.output
    data = json.loads(CliRunner().invoke(
        app, ["status", done[0].eval_id, "--home", str(settings.home), "--json"]).output)
    assert data["quarantined_tasks"][0]["failures"] == 2


def test_the_endpoint_listens_on_loopback_only_and_reads_live_stats() -> None:
    stats = DispatchStats(planned=10, already_done=2)
    server = MetricsServer("e1", stats, 0)
    try:
        assert server._server.server_address[0] == "127.0.0.1"
        stats.done, stats.running, stats.cost_usd = 3, 2, 1.25
        stats.committed["completed"] = 3
        m = _scrape(server.port)
        assert m[("evalfleet_runs_committed_total", (("status", "completed"),))] == 3
        assert m[("evalfleet_cost_usd_total", ())] == 1.25
        assert m[("evalfleet_in_flight", ())] == 2
        assert m[("evalfleet_pending", ())] == 10 - 2 - 3 - 2
        with pytest.raises(SpecError, match="cannot serve metrics"):  # the port is taken
            MetricsServer("e2", stats, server.port)
    finally:
        server.close()


def test_eta_is_runs_left_over_the_rate_so_far() -> None:
    s = DispatchStats(planned=100, already_done=0)
    assert math.isnan(eta_seconds(s, pending_runs(s), now=s.started + 10))
    s.done, s.running = 20, 5
    assert pending_runs(s) == 75
    # 20 runs in 10 s: 2 a second; 75 pending + 5 in flight take 40 s
    assert eta_seconds(s, pending_runs(s), now=s.started + 10) == pytest.approx(40.0)


def test_a_metrics_port_out_of_range_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="--metrics-port"):
        api.run(tmp_path / "missing.yaml", settings=Settings(home=tmp_path / "h"),
                metrics_port=70000)
    out = CliRunner().invoke(app, ["run", str(tmp_path / "p.yaml"), "--metrics-port", "-1"])
    assert out.exit_code == 2 and "Traceback" not in out.output
