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

Where the memory goes, phase by phase: a thread samples the resident set (``VmRSS`` of
``/proc/self/status``, every 20 ms) and keeps each phase's highest sample and its RSS at the
phase's start: start-up (``api.run`` to the first dispatch), the dispatch (outside merges),
the merges while the eval runs (``compact_eval(final=False)``, on the journal thread), the
final merge (``final=True``, as the eval ends) and what follows until ``api.run`` returns;
and the merges' count, rows and seconds, while the eval ran and at its end. Linux only
(elsewhere the phases are left out); a spike shorter than 20 ms may be missed, which
``ru_maxrss`` is not.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import write_noop_plan

from evalfleet import api
from evalfleet.execution.dispatcher import DispatchStats
from evalfleet.settings import Settings
from evalfleet.spec import load_plan
from evalfleet.store import Store, compaction

GOAL_MB = 400


def peak_mb() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float | None:
    """This process's resident set size now (``VmRSS``), or None where /proc does not say."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class PhaseSampler:
    """Samples the RSS every ``interval`` seconds on a thread; per phase: the RSS when it
    began and the highest sample while it lasted (a phase may recur: merges)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.phase = "before"
        self.order: list[str] = []
        self.start: dict[str, float] = {}
        self.peak: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def enter(self, phase: str) -> str:
        """Switch to ``phase``; returns the phase left (to come back to it)."""
        now = rss_mb() or 0.0
        with self._lock:
            left, self.phase = self.phase, phase
            if phase not in self.start:
                self.order.append(phase)
                self.start[phase] = now
            self.count[phase] = self.count.get(phase, 0) + 1
            self._note(left, now)
            self._note(phase, now)
        return left

    def _note(self, phase: str, mb: float) -> None:
        self.peak[phase] = max(self.peak.get(phase, 0.0), mb)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            mb = rss_mb()
            if mb is None:
                return
            with self._lock:
                self._note(self.phase, mb)

    def __enter__(self) -> PhaseSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def lines(self) -> list[str]:
        """One line per phase: RSS at its start, its highest sample, times it was entered."""
        out = []
        for p in self.order:
            times = f" ({self.count[p]:,} times)" if self.count[p] > 1 else ""
            out.append(f"  {p:<14} starts at {self.start[p]:6.0f} MB, "
                       f"highest sample {self.peak[p]:6.0f} MB{times}")
        return out


class Merges:
    """The eval's merges, as phases of their own (``compaction.compact_eval`` wrapped in this
    process), each noted: while the eval ran or at its end, rows merged, seconds."""

    def __init__(self, sampler: PhaseSampler) -> None:
        self.sampler = sampler
        self.done: list[tuple[bool, int, float]] = []
        self.orig = compaction.compact_eval

    def __enter__(self) -> Merges:
        def wrapped(*args: Any, **kwargs: Any) -> compaction.CompactionReport:
            final = bool(kwargs.get("final"))
            left = self.sampler.enter("final merge" if final else "live merges")
            t0 = time.perf_counter()
            try:
                rep = self.orig(*args, **kwargs)
            finally:
                self.sampler.enter("after" if final else left)
            if rep.merges:
                self.done.append((final, sum(m.rows for m in rep.merges),
                                  time.perf_counter() - t0))
            return rep

        compaction.compact_eval = wrapped
        return self

    def __exit__(self, *exc: object) -> None:
        compaction.compact_eval = self.orig

    def line(self) -> str:
        """Merges while the eval ran and at its end: how many, rows, seconds."""
        parts = []
        for final, what in ((False, "while the eval ran"), (True, "at its end")):
            done = [(rows, s) for f, rows, s in self.done if f == final]
            parts.append(f"{len(done)} {what} ({sum(r for r, _ in done):,} rows, "
                         f"{sum(s for _, s in done):.1f} s)")
        return "merges: " + "; ".join(parts)


class StartClock:
    """A progress hook that notes when dispatch starts."""

    def __init__(self, sampler: PhaseSampler | None = None) -> None:
        self.started: float | None = None
        self.sampler = sampler

    def start(self, eval_id: str, stats: DispatchStats, sandbox: str,
              warnings: Sequence[str] = ()) -> None:
        self.started = time.perf_counter()
        if self.sampler is not None:
            self.sampler.enter("dispatch")

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
        with PhaseSampler() as sampler, Merges(sampler) as merges:
            clock = StartClock(sampler)
            sampler.enter("start-up")
            t0 = time.perf_counter()
            summary = api.run(plan, settings=Settings(home=base / "home"), progress=clock)
            elapsed = time.perf_counter() - t0
            sampler.enter("done")
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
    print(merges.line())
    if rss_mb() is not None:
        print("RSS by phase (sampled every 20 ms):")
        print("\n".join(sampler.lines()))


if __name__ == "__main__":
    main()
