"""Benchmark: `evalfleet plan review` as a whole process (start-up, imports and all).

    python bench/plan_review.py [--home H] [--repeats 3]

Times three plans, each the median of ``--repeats`` runs after one warm-up:

* the demo plan (`evalfleet demo`'s: 164 HumanEval tasks x 2 agents x 2 runs = 656 runs);
* the same agents on HumanEval with 153 runs per task: 50,184 runs;
* a generated JSONL suite of 25,000 tasks x 2 agents: 50,000 runs.

``--home`` takes history from that home (e.g. one `evalfleet demo --home H` has filled: the
first two plans then use the demo agents' history); without it the home is a path that does
not exist, so every figure comes from prices (and nothing is created). For scale, it also times
`python -c "import evalfleet.api"` and `evalfleet --help`, the floor every command pays, and,
for each plan, the `review_plan()` call alone inside a process that has done its imports.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

DEMO = Path(__file__).resolve().parent.parent / "src" / "evalfleet" / "plans" / "demo.yaml"


def write_plans(folder: Path) -> dict[str, Path]:
    demo = yaml.safe_load(DEMO.read_text())
    plans = {"demo (656 runs)": demo,
             "humaneval x 2 agents x 153 runs (50,184 runs)": {**demo, "name": "deep",
                                                             "runs_per_task": 153,
                                                             "budget_usd": None}}
    suite = folder / "suite-25k.jsonl"
    with suite.open("w") as fh:
        for i in range(25_000):
            fh.write(json.dumps({"id": f"t{i:05d}", "input": f"Say the number {i}.",
                                 "category": f"c{i % 7}", "difficulty": 1 + i % 5,
                                 "target": str(i), "scorer": {"kind": "exact"}}) + "\n")
    plans["JSONL 25,000 tasks x 2 agents (50,000 runs)"] = {
        **demo, "name": "wide", "suite": {"path": str(suite)}, "runs_per_task": 1,
        "budget_usd": None}
    out = {}
    for i, (label, plan) in enumerate(plans.items()):
        path = folder / f"plan{i}.yaml"
        path.write_text(yaml.safe_dump({k: v for k, v in plan.items() if v is not None}))
        out[label] = path
    return out


# Python's bytecode caches on, as on a user's machine (some shells set PYTHONDONTWRITEBYTECODE,
# and then every process compiles evalfleet's modules again: ~0.2 s of each command)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], repeats: int) -> tuple[float, list[float], str]:
    """Median wall seconds of ``repeats`` runs after one warm-up, all of them, and the output
    of the last."""
    out = ""
    runs: list[float] = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=ENV)
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
        out = proc.stdout
        if i:
            runs.append(dt)
    return statistics.median(runs), runs, out


IN_PROCESS = """
import sys, time
from pathlib import Path
from evalfleet.api.review import review_plan
from evalfleet.settings import Settings
t0 = time.perf_counter()
review_plan(sys.argv[1], settings=Settings(home=Path(sys.argv[2])))
print(time.perf_counter() - t0)
"""


def in_process(plan: Path, home: Path, repeats: int) -> float:
    """Median seconds of the ``review_plan()`` call alone, one fresh process per repeat."""
    runs = []
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, "-c", IN_PROCESS, str(plan), str(home)],
                              capture_output=True, text=True, check=True, env=ENV)
        runs.append(float(proc.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=None,
                    help="Home to take history from (default: an absent one, prices only).")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        folder = Path(tmp)
        home = args.home or folder / "absent-home"
        py = sys.executable
        print(f"home: {home}" + ("" if args.home else " (absent: prices only)"))
        for label, cmd in (("python -c 'import evalfleet.api'",
                            [py, "-c", "import evalfleet.api"]),
                           ("evalfleet --help", [py, "-m", "evalfleet", "--help"])):
            med, runs, _ = timed(cmd, args.repeats)
            print(f"{label:<48} median {med:.3f} s  ({', '.join(f'{r:.3f}' for r in runs)})")
        for label, plan in write_plans(folder).items():
            med, runs, out = timed([py, "-m", "evalfleet", "plan", "review", str(plan),
                                    "--home", str(home), "--json"], args.repeats)
            r = json.loads(out)
            total = r["total"]["total_usd"]["max"]
            call = in_process(plan, home, args.repeats)
            print(f"plan review: {label:<48} median {med:.3f} s  "
                  f"({', '.join(f'{x:.3f}' for x in runs)}); the call alone {call:.3f} s; "
                  f"{r['runs']['max']:,} runs, "
                  f"total {'unpriced' if total is None else f'${total:,.2f}'}, "
                  f"from {', '.join(sorted({a['source'] for a in r['agents']}))}")
        if not args.home:
            assert not home.exists(), "plan review created the home"


if __name__ == "__main__":
    main()
