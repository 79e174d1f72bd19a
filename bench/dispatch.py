"""Benchmark: 10,000 no-op runs committed durably, against a bare loop of the same writes.

The bare loop leases runs from the journal and commits ready-made results through the same
store (journal + Parquet + trajectory blob) in batches of the same size, with no dispatcher,
agent, scorer or asyncio. The ratio shows what the harness itself costs.

    python bench/dispatch.py [--runs 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import write_noop_plan

from evalfleet import api
from evalfleet.settings import Settings
from evalfleet.spec import RunResult, load_plan
from evalfleet.store import RowContext, Store


def bare_loop(home: Path, plan_path: Path, batch: int) -> tuple[int, float]:
    plan = load_plan(plan_path)
    suite = api.validate_plan(plan)
    store = Store(home)
    eval_id = api.create_eval(store, plan, suite)
    ctx = RowContext(eval_id, plan.name, suite, plan.agents)
    t0 = time.perf_counter()
    n = 0
    while True:
        leased = store.journal.lease(eval_id, "bare", batch, 60)
        if not leased:
            break
        now = time.time()
        results = [RunResult(run_id=lr.run_id, task_id=lr.task_id, agent_index=lr.agent_index,
                             repeat=lr.repeat, status="completed", score=1.0, passed=True,
                             started_at=now, finished_at=now, attempts=lr.attempts,
                             trajectory={"events": [{"kind": "answer", "answer": "ok"}]})
                   for lr in leased]
        n += store.commit(ctx, results).committed
    elapsed = time.perf_counter() - t0
    store.close()
    return n, elapsed


def harness(home: Path, plan_path: Path) -> tuple[int, float]:
    settings = Settings(home=home)
    t0 = time.perf_counter()
    summary = api.run(plan_path, settings=settings)
    elapsed = time.perf_counter() - t0
    assert summary.status == "completed", summary
    return summary.done, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--in-flight", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for threaded in (True, False):
            plan = write_noop_plan(base / f"plan-{threaded}", args.runs, write_batch=args.batch,
                                   max_in_flight=args.in_flight, threaded=threaded,
                                   name=f"bench{int(threaded)}")
            n_bare, t_bare = bare_loop(base / f"bare-{threaded}", plan, args.batch)
            n_h, t_h = harness(base / f"harness-{threaded}", plan)
            label = "sync agent in a thread" if threaded else "sync agent inline"
            print(f"[{label}] harness: {n_h} runs in {t_h:.2f}s = {n_h / t_h:,.0f} runs/s; "
                  f"bare loop: {n_bare} runs in {t_bare:.2f}s = {n_bare / t_bare:,.0f} runs/s; "
                  f"harness/bare throughput ratio {(n_h / t_h) / (n_bare / t_bare):.2f}")


if __name__ == "__main__":
    main()
