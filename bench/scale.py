"""Benchmark: dispatch efficiency at 100 slots, lognormal durations, injected infra faults.

N runs (default 50,000) of an async python agent whose duration is lognormal (median 0.2 s,
sigma 0.8, deterministic per task id) on 100 slots; a deterministic 5% of the tasks fail their
first attempt with an InfraError halfway through and are retried. The eval runs in-process
through ``api.run`` (plan load, eval creation, dispatch, commits, end-of-eval maintenance).

    python bench/scale.py [--runs 50000] [--slots 100] [--fault-rate 0.05] [--repeat 1]
                          [--backend local|ray] [--ray-address ADDR]

Prints: ideal wall (sum of the durations of the attempts that ran / slots), real wall (the whole
``api.run``), efficiency = ideal / real, lost and duplicated runs (from the journal and from the
committed Parquet rows; both must be 0), retries, and the driver's peak RSS.

``--backend ray`` runs the attempts on the worker actors of a Ray cluster: a head and two worker
nodes started on this machine with ``ray.cluster_utils.Cluster`` (not timed), or the cluster at
``--ray-address``. The attempts then run in the workers' processes, so the work is computed
from the deterministic durations (every run's duration, plus half of it for a faulty task's
failed first attempt, which fails once across processes by a marker file); the real wall
includes connecting to the cluster and starting the workers.
"""

from __future__ import annotations

import argparse
import heapq
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _scale_agent
import yaml

from evalfleet import api
from evalfleet.settings import Settings
from evalfleet.store import Store


def write_plan(dirpath: Path, runs: int, slots: int, fault_rate: float, name: str,
               backend: str = "local") -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    suite = dirpath / f"{name}-suite.jsonl"
    with suite.open("w") as fh:
        for i in range(runs):
            fh.write(json.dumps({"id": f"t{i:07d}", "input": "x", "category": f"c{i % 7}",
                                 "target": "ok", "scorer": {"kind": "exact"}}) + "\n")
    kwargs: dict[str, Any] = {"fault_rate": fault_rate}
    if backend == "ray":  # the workers are other processes: fail once across them
        markers = dirpath / f"{name}-faults"
        markers.mkdir()
        kwargs["marker_dir"] = str(markers)
    plan = {
        "name": name, "suite": {"path": str(suite)}, "runs_per_task": 1,
        "agents": [{"name": "lognormal", "version": "1", "kind": "python",
                    "args": {"callable": "_scale_agent:lognormal", "kwargs": kwargs}}],
        "execution": {"max_in_flight": slots, "backend": backend},
    }
    path = dirpath / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def greedy_makespan(runs: int, slots: int, fault_rate: float) -> float:
    """The wall of a dispatcher with no overhead and no backoff: the same attempts, each
    started the moment a slot frees (task order; a retry right after its failed attempt).
    Its gap to the ideal is the tail (the last runs ending one by one), which no dispatcher
    removes without knowing durations."""
    free = [0.0] * slots
    todo: list[tuple[float, int, float]] = []  # (ready at, order, duration)
    for i in range(runs):
        tid = f"t{i:07d}"
        d = _scale_agent.duration(tid)
        if _scale_agent.faulty(tid, fault_rate):
            todo.append((0.0, i, d / 2))
            todo.append((-1.0, i, d))  # marks: the retry of the attempt before
        else:
            todo.append((0.0, i, d))
    end = 0.0
    last_end = 0.0
    for ready, _, d in todo:
        start = max(heapq.heappop(free), last_end if ready < 0 else 0.0)
        last_end = start + d
        heapq.heappush(free, last_end)
        end = max(end, last_end)
    return end


def planned_work(runs: int, fault_rate: float) -> tuple[float, int]:
    """(seconds of work, attempts) the eval makes when each faulty task fails exactly once:
    every run's duration plus half of it for each failed first attempt."""
    busy, attempts = 0.0, 0
    for i in range(runs):
        tid = f"t{i:07d}"
        d = _scale_agent.duration(tid)
        busy += d
        attempts += 1
        if _scale_agent.faulty(tid, fault_rate):
            busy += d / 2
            attempts += 1
    return busy, attempts


class _Marks:
    """A progress hook that only notes when the dispatch starts and ends (with a hook, the
    Ray backend also prints its start-up)."""

    started = ended = 0.0

    def start(self, eval_id: str, stats: Any, sandbox: str, warnings: Any = ()) -> None:
        self.started = time.perf_counter()

    def stop(self) -> None:
        self.ended = time.perf_counter()


def one(base: Path, args: argparse.Namespace, k: int, address: str | None) -> dict[str, float]:
    plan = write_plan(base / f"plan{k}", args.runs, args.slots, args.fault_rate, f"scale{k}",
                      args.backend)
    home = base / f"home{k}"
    settings = Settings(home=home)
    attempts0, busy0 = _scale_agent.attempts, _scale_agent.busy_s
    _scale_agent._failed_once.clear()
    marks = _Marks()
    t0 = time.perf_counter()
    summary = api.run(plan, settings=settings, ray_address=address, progress=marks)
    real = time.perf_counter() - t0
    attempts = _scale_agent.attempts - attempts0
    busy = _scale_agent.busy_s - busy0
    if args.backend == "ray":  # the attempts ran in the workers' processes
        busy, attempts = planned_work(args.runs, args.fault_rate)
    store = Store(home)
    try:
        counts = store.journal.counts(summary.eval_id)
    finally:
        store.close()
    _, rows = api.query("SELECT count(*), count(DISTINCT run_id), sum(attempts) - count(*), "
                        "count(*) FILTER (WHERE passed) FROM runs",
                        eval_id=summary.eval_id, settings=settings)
    n_rows, n_distinct, row_retries, n_passed = (int(v or 0) for v in rows[0])
    ideal = busy / args.slots
    greedy = greedy_makespan(args.runs, args.slots, args.fault_rate)
    out = {
        "runs": args.runs, "status_completed": float(summary.status == "completed"),
        "journal_done": counts.get("done", 0),
        "journal_not_done": sum(v for s, v in counts.items() if ":" not in s and s != "done"),
        "rows": n_rows, "passed": n_passed,
        "lost": args.runs - n_distinct, "duplicated": n_rows - n_distinct,
        "attempts": attempts, "retries": attempts - args.runs, "row_retries": row_retries,
        "ideal_s": ideal, "real_s": real, "dispatch_s": summary.duration_s,
        "efficiency": ideal / real, "greedy_s": greedy,
    }
    print(f"run {k + 1} ({args.backend}): {args.runs} runs on {args.slots} slots: "
          f"ideal wall {ideal:.1f}s, "
          f"real wall {real:.1f}s (of which execute {summary.duration_s:.1f}s), "
          f"efficiency {ideal / real:.3f}; before the dispatch {marks.started - t0:.1f}s, "
          f"dispatch {marks.ended - marks.started:.1f}s, after {t0 + real - marks.ended:.1f}s; "
          f"a dispatcher with no overhead would take "
          f"{greedy:.1f}s (tail: ideal/that = {ideal / greedy:.3f}; overhead: that/real = "
          f"{greedy / real:.3f}); journal done {out['journal_done']}, not done "
          f"{out['journal_not_done']}; Parquet rows {n_rows} ({n_distinct} distinct, "
          f"{n_passed} passed); lost {out['lost']}, duplicated {out['duplicated']}; "
          f"attempts {attempts}, retries {attempts - args.runs} (rows say {row_retries})",
          flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--slots", type=int, default=100)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=1, help="runs of the benchmark (median)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--ray-address", default=None,
                        help="with --backend ray: this cluster instead of a head and two "
                             "worker nodes started here")
    args = parser.parse_args()
    results = []
    cluster: Any = None
    address = args.ray_address
    if args.backend == "ray" and address is None:
        from ray.cluster_utils import Cluster

        t0 = time.perf_counter()
        cluster = Cluster(initialize_head=True,
                          head_node_args={"num_cpus": 1, "include_dashboard": False})
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        address = cluster.address
        print(f"ray: a head and two worker nodes at {address} in "
              f"{time.perf_counter() - t0:.1f}s (not timed)", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(args.repeat):
                results.append(one(Path(tmp), args, k, address))
    finally:
        if cluster is not None:
            cluster.shutdown()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    eff = statistics.median(r["efficiency"] for r in results)
    bad = sum(r["lost"] + r["duplicated"] + r["journal_not_done"]
              + (r["journal_done"] != args.runs) for r in results)
    print(f"median efficiency {eff:.3f} over {len(results)} run(s); driver peak RSS "
          f"{peak:.0f} MB; lost+duplicated {'0: OK' if bad == 0 else f'{bad}: FAILED'}")


if __name__ == "__main__":
    main()
