"""Benchmark: peak memory and start-up time of the driver for a plan of no-op runs.

    python bench/memory.py                                # 200,000 runs: 4,000 tasks x 50
    python bench/memory.py --runs 1000000                 # 20,000 tasks x 50 (the issue's size)
    python bench/memory.py --runs 1000000 --runs-per-task 10   # 100,000 tasks x 10

The eval runs in this process, which is the driver, as ``evalfleet run`` would: the plan and its
JSONL suite are written first, then ``api.run`` validates the plan, loads the suite, creates the
eval (its runs streamed into the journal) and dispatches every run through the no-op python
agent. It prints the shape (tasks x runs per task), the start-up (from calling ``api.run`` to
the first dispatch: plan load, run ids, journal inserts, claim), the whole wall time, and the
driver's peak resident set size (``ru_maxrss``), before the run and at its peak, with the
growth per run, against the issue's goal of 400 MB at 1,000,000 runs. ``--repeat N`` runs the
start-up part N times in fresh homes (``create_eval`` only) and prints its median.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import write_noop_plan

from evalfleet import api
from evalfleet.execution.dispatcher import DispatchStats
from evalfleet.settings import Settings
from evalfleet.spec import load_plan
from evalfleet.store import Store

GOAL_MB = 400


def peak_mb() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StartClock:
    """A progress hook that notes when dispatch starts."""

    def __init__(self) -> None:
        self.started: float | None = None

    def start(self, eval_id: str, stats: DispatchStats, sandbox: str,
              warnings: Sequence[str] = ()) -> None:
        self.started = time.perf_counter()

    def stop(self) -> None:
        pass


def create_only(plan_path: Path, home: Path) -> float:
    """Seconds to load the plan and suite and create the eval with all its runs."""
    t0 = time.perf_counter()
    plan = load_plan(plan_path)
    suite = api.validate_plan(plan, str(plan_path))
    store = Store(home)
    try:
        api.create_eval(store, plan, suite)
    finally:
        store.close()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--runs-per-task", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=0,
                        help="also time eval creation alone this many times (median)")
    args = parser.parse_args()
    n_tasks = max(1, args.runs // args.runs_per_task)
    runs = n_tasks * args.runs_per_task
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        plan = write_noop_plan(base, n_tasks, runs_per_task=args.runs_per_task,
                               threaded=False, write_batch=1024, max_in_flight=128)
        before = peak_mb()
        clock = StartClock()
        t0 = time.perf_counter()
        summary = api.run(plan, settings=Settings(home=base / "home"), progress=clock)
        elapsed = time.perf_counter() - t0
        peak = peak_mb()
        startup = (clock.started or t0) - t0
        creations = [create_only(plan, base / f"home{i}") for i in range(args.repeat)]
    print(f"{summary.done:,} runs ({n_tasks:,} tasks x {args.runs_per_task}; {summary.status}) "
          f"in {elapsed:.1f} s ({summary.done / elapsed:,.0f} runs/s)")
    print(f"start-up before the first dispatch: {startup:.1f} s"
          + (f"; creating the eval alone: median {statistics.median(creations):.1f} s "
             f"({', '.join(f'{c:.1f}' for c in creations)})" if creations else ""))
    print(f"driver peak RSS {peak:.0f} MB (before the run {before:.0f} MB; "
          f"{(peak - before) * 1024 * 1024 / runs:,.0f} B per run of growth); "
          f"goal at 1,000,000 runs: under {GOAL_MB} MB: "
          f"{'OK' if peak < GOAL_MB else 'EXCEEDED'}")


if __name__ == "__main__":
    main()
