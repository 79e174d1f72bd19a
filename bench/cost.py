"""Benchmark: what cost control buys, on simulated suites with known per-task truth.

Two sections, each from its own module, both using the product's own functions:

- adaptive depth plus reuse against uniform K = 10 at the same interval width: both costs, both
  widths, the saving, and the coverage of the adaptive interval (``bench/_cost_adaptive.py``);
- stratified 20% and 5% tiers over 500 draws: coverage of the full-suite estimate's 95%
  interval, the stratified SE against simple random sampling of the same size, and the
  difference estimator against a full baseline (``bench/_cost_tiers.py``).

    python bench/cost.py [--draws 500] [--seed 0]

Prints figures only; nothing here is asserted (tests never assert wall-clock times or
benchmark outcomes).
"""

from __future__ import annotations

import argparse
import time

from _cost_adaptive import adaptive_section
from _cost_tiers import tiers_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=500, help="Draws per sampling tier.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed.")
    args = parser.parse_args()
    for title, section in (("adaptive depth + reuse vs uniform K = 10",
                            lambda: adaptive_section(seed=args.seed)),
                           (f"sampling tiers ({args.draws} draws)",
                            lambda: tiers_section(draws=args.draws, seed=args.seed))):
        t0 = time.perf_counter()
        lines = section()
        print(f"== {title} ({time.perf_counter() - t0:.1f} s)")
        for line in lines:
            print(line)
        print()


if __name__ == "__main__":
    main()
