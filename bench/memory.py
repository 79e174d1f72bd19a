"""Benchmark: peak memory of the driver for a plan of 200,000 no-op runs.

    python bench/memory.py [--runs 200000]

Prints the peak resident set size (ru_maxrss) of this process, which is the driver.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from _common import write_noop_plan

from evalfleet import api
from evalfleet.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        plan = write_noop_plan(base, args.runs // 2, runs_per_task=2, threaded=False,
                               write_batch=1024, max_in_flight=128)
        t0 = time.perf_counter()
        summary = api.run(plan, settings=Settings(home=base / "home"))
        elapsed = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{summary.done} runs ({summary.status}) in {elapsed:.1f}s "
          f"({summary.done / elapsed:,.0f} runs/s); driver peak RSS {peak:.0f} MB "
          f"(at start {before:.0f} MB); limit 400 MB: {'OK' if peak < 400 else 'EXCEEDED'}")


if __name__ == "__main__":
    main()
