"""Benchmark: ``evalfleet report`` on a 1M-run eval, in-process and as a whole process.

    python bench/report.py                      # 50,000 tasks x 10 runs x 2 agents = 1M runs
    python bench/report.py --keep DIR           # build the home in DIR once, reuse it after
    python bench/report.py --tasks 5000 --runs 2  # smaller

The eval is written the way a driver writes it: created with ``create_eval``, its runs leased
from the journal and committed with ``Store.commit`` in batches of ``--batch`` synthetic
RunResults (1% infra errors, some timeouts, heterogeneous per-task pass rates, 6 categories,
20 repositories, difficulty 1-5), then compacted as a finished eval is (``Store.maintain(final
=True)``) and its superseded files purged.

It prints, each as the median of ``--repeats``: ``evalfleet --help`` as a whole process (the
floor: interpreter and CLI start), ``evalfleet report EVAL --json`` (no per-task rows, the
default), ``--json --tasks 10`` and ``--json --tasks all`` (every per-task row) as whole processes
with their output bytes, and ``api.report`` in-process; each whole process's wall time and CPU
time (user + system, less disturbed by other work on a shared machine) also as a ratio to
``--help``'s, and the load average before and after.

Whole processes run as an installed package does: with Python's bytecode cache (the
environment's PYTHONDONTWRITEBYTECODE is dropped for them, and one untimed ``report`` run first
writes the cache), so they do not compile evalfleet's sources on every start.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from evalfleet import api
from evalfleet.settings import Settings
from evalfleet.spec import RunResult, load_plan
from evalfleet.store import RowContext, Store, driver_name
from evalfleet.store.results import ORPHAN_GRACE_S

CATEGORIES = ("coding", "math", "reasoning", "writing", "retrieval", "tool_use")
N_REPOS = 20


def build(base: Path, home: Path, *, n_tasks: int, k: int, batch: int, seed: int = 0) -> str:
    """One eval of ``n_tasks`` x ``k`` x 2 agents committed through Store.commit; its id."""
    suite = base / "suite.jsonl"
    with suite.open("w") as fh:
        for i in range(n_tasks):
            fh.write(json.dumps({
                "id": f"t{i:06d}", "input": "x", "target": "ok", "scorer": {"kind": "exact"},
                "category": CATEGORIES[i % len(CATEGORIES)], "difficulty": 1 + (i // 6) % 5,
                "metadata": {"repository": f"repo{(i // 30) % N_REPOS:02d}"}}) + "\n")
    plan_path = base / "plan.yaml"
    plan_path.write_text(yaml.safe_dump({
        "name": "big", "suite": {"path": str(suite)}, "runs_per_task": k,
        "agents": [{"name": "coder", "version": v, "kind": "python", "model": "gpt-4o",
                    "args": {"callable": "evalfleet.testing.agents:noop"}} for v in ("1", "2")]}))
    plan = load_plan(plan_path)
    suite_obj = api.validate_plan(plan)
    rng = np.random.default_rng(seed)
    p_task = rng.beta(2.0, 1.2, size=n_tasks)
    index = {t.id: i for i, t in enumerate(suite_obj.tasks)}
    store = Store(home)
    driver = driver_name()
    try:
        eval_id = api.create_eval(store, plan, suite_obj)
        store.journal.claim_driver(eval_id, driver, 3600)
        ctx = RowContext(eval_id, plan.name, suite_obj, plan.agents)
        now = time.time()
        while True:
            leased = store.journal.lease(eval_id, driver, batch, 3600)
            if not leased:
                break
            n = len(leased)
            draws = rng.random(n)
            ok_draws = rng.random(n)
            lat = rng.lognormal(3.0, 0.6, size=n)
            tok_in = rng.integers(2_000, 60_000, size=n)
            tok_out = rng.integers(100, 4_000, size=n)
            results = []
            for j, lr in enumerate(leased):
                if draws[j] < 0.01:
                    results.append(RunResult(
                        run_id=lr.run_id, task_id=lr.task_id, agent_index=lr.agent_index,
                        repeat=lr.repeat, status="errored", error_kind="infra_error",
                        error="sandbox did not start", attempts=3, started_at=now,
                        finished_at=now + 5))
                    continue
                p = min(max(p_task[index[lr.task_id]] - 0.03 * lr.agent_index, 0.0), 1.0)
                ok = bool(ok_draws[j] < p)
                timeout = not ok and draws[j] < 0.1
                ti, to = int(tok_in[j]), int(tok_out[j])
                results.append(RunResult(
                    run_id=lr.run_id, task_id=lr.task_id, agent_index=lr.agent_index,
                    repeat=lr.repeat, status="failed" if timeout else "completed",
                    error_kind="task_timeout" if timeout else None, score=float(ok), passed=ok,
                    tokens_in=ti, tokens_out=to, cost_usd=ti * 3e-6 + to * 15e-6,
                    latency_s=float(lat[j]), attempts=1, started_at=now,
                    finished_at=now + float(lat[j])))
            store.commit(ctx, results)
        store.maintain(eval_id, driver, final=True)
        store.journal.set_status(eval_id, "completed", finished=True)
        store.journal.release_driver(eval_id, driver)
        store.purge_retired(now=time.time() + ORPHAN_GRACE_S + 1)
    finally:
        store.close()
    return eval_id


def _median(fn: Callable[[], Any], n: int) -> tuple[float, list[float], Any]:
    """The median wall time of ``n`` calls, each call's, and the results of every call."""
    times, results = [], []
    for _ in range(n):
        t = time.perf_counter()
        results.append(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, results


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a timed process: this one's, with the bytecode cache on."""
    env = {**os.environ, **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _cli(home: Path, *args: str) -> Callable[[], tuple[int, float]]:
    """One whole ``evalfleet`` process: its stdout bytes and its CPU seconds (user + system,
    less disturbed than wall time by other work on the machine)."""
    env = child_env(EVALFLEET_HOME=str(home))

    def run() -> tuple[int, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([sys.executable, "-m", "evalfleet", *args], env=env,
                              capture_output=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"evalfleet {' '.join(args)} failed: {proc.stderr.decode()}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return len(proc.stdout), cpu
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=10, help="runs per task and agent")
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the home here (reused if it exists)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        home = base / "home"
        id_file = base / "eval_id"
        if id_file.exists():
            eval_id = id_file.read_text().strip()
        else:
            t0 = time.perf_counter()
            eval_id = build(base, home, n_tasks=args.tasks, k=args.runs, batch=args.batch)
            id_file.write_text(eval_id)
            print(f"built in {time.perf_counter() - t0:.1f}s")
        settings = Settings(home=home)
        st = api.status(eval_id, settings=settings)
        n_files = len(list((home / "results").rglob("*.parquet")))
        print(f"eval {eval_id}: {st['done']:,} runs in {n_files} Parquet file(s)")
        reps = args.repeats
        _cli(home, "report", eval_id, "--json")()  # untimed: writes the bytecode cache
        # other work on a shared machine moves wall times: say how much there was
        print("load average (1, 5, 15 min) before: {:.1f}, {:.1f}, {:.1f}".format(
            *os.getloadavg()))
        help_s, _, runs = _median(_cli(home, "--help"), reps)
        help_cpu = statistics.median(cpu for _, cpu in runs)
        print(f"evalfleet --help (whole process): median {help_s:.2f}s, {help_cpu:.2f}s CPU")
        for label, extra in (("report --json", ()), ("report --json --tasks 10", ("--tasks", "10")),
                             ("report --json --tasks all", ("--tasks", "all"))):
            med, times, runs = _median(_cli(home, "report", eval_id, "--json", *extra), reps)
            cpu = statistics.median(c for _, c in runs)
            print(f"evalfleet {label} (whole process): median {med:.2f}s "
                  f"({', '.join(f'{x:.2f}' for x in times)}), {med / help_s:.1f}x --help; "
                  f"median {cpu:.2f}s CPU ({cpu / help_cpu:.1f}x --help's); "
                  f"{runs[-1][0] / 1e6:.2f} MB of JSON")
        med, times, _ = _median(lambda: api.report(eval_id, settings=settings, max_tasks=0),
                                reps)
        print(f"api.report in-process (no per-task rows): median {med:.2f}s "
              f"({', '.join(f'{x:.2f}' for x in times)})")
        med, times, _ = _median(lambda: api.report(eval_id, settings=settings), reps)
        print(f"api.report in-process (every per-task row): median {med:.2f}s "
              f"({', '.join(f'{x:.2f}' for x in times)})")
        print("load average (1, 5, 15 min) after: {:.1f}, {:.1f}, {:.1f}".format(
            *os.getloadavg()))


if __name__ == "__main__":
    main()
