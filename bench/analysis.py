"""Benchmark: report and compare on an eval of 200,000 runs (DuckDB over Parquet + stats).

    python bench/analysis.py [--tasks 20000] [--runs 5]

Builds the eval directly through the store (two agents, heterogeneous per-task pass
probabilities, K runs each), then times `api.report` and `api.compare`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import write_noop_plan

from evalfleet import api
from evalfleet.settings import Settings
from evalfleet.spec import RunResult, load_plan
from evalfleet.store import RowContext, Store


def build(home: Path, plan_path: Path, seed: int = 0) -> str:
    plan = load_plan(plan_path)
    suite = api.validate_plan(plan)
    store = Store(home)
    eval_id = api.create_eval(store, plan, suite)
    ctx = RowContext(eval_id, plan.name, suite, plan.agents)
    rng = np.random.default_rng(seed)
    p_task = rng.beta(2, 1, size=len(suite.tasks))
    index = {t.id: i for i, t in enumerate(suite.tasks)}
    while True:
        leased = store.journal.lease(eval_id, "bench", 20_000, 600)
        if not leased:
            break
        now = time.time()
        results = []
        for lr in leased:
            p = p_task[index[lr.task_id]] - 0.03 * lr.agent_index
            ok = bool(rng.random() < p)
            results.append(RunResult(
                run_id=lr.run_id, task_id=lr.task_id, agent_index=lr.agent_index,
                repeat=lr.repeat, status="completed", score=float(ok), passed=ok,
                cost_usd=float(rng.gamma(2.0, 0.001)), latency_s=float(rng.lognormal(0, 0.5)),
                tokens_in=int(rng.integers(100, 2000)), tokens_out=int(rng.integers(10, 500)),
                started_at=now, finished_at=now, attempts=1))
        store.commit(ctx, results)
    store.close()
    return eval_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        plan_path = write_noop_plan(base, args.tasks, runs_per_task=args.runs, name="big")
        text = plan_path.read_text().replace(
            "agents:\n", "agents:\n- {name: other, version: '2', kind: python, args: "
            "{callable: 'evalfleet.testing.agents:noop'}}\n", 1)
        plan_path.write_text(text)
        home = base / "home"
        t0 = time.perf_counter()
        eval_id = build(home, plan_path)
        settings = Settings(home=home)
        n = api.status(eval_id, settings=settings)["done"]
        print(f"built eval of {n:,} runs ({args.tasks:,} tasks x {args.runs} runs x 2 agents) "
              f"in {time.perf_counter() - t0:.1f}s")
        for label, fn in (
            ("report", lambda: api.report(eval_id, settings=settings, max_tasks=50)),
            ("compare", lambda: api.compare([f"{eval_id}/noop@1", f"{eval_id}/other@2"],
                                            settings=settings)),
        ):
            times = []
            for _ in range(3):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            print(f"{label} on {n:,} runs: best {min(times):.2f}s, "
                  f"runs {', '.join(f'{x:.2f}' for x in times)}s (target < 2 s)")


if __name__ == "__main__":
    main()
