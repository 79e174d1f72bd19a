"""Benchmark: what grading from evidence costs per attempt, against grading in the agent's sandbox.

Both variants grade the same HumanEval problems with their canonical solutions, in the same
process, one after the other, on the same provider:

- baseline: one sandbox; the answer and the hidden test are written into it and the test runs
  there with a plain ``python3``, the verdict from its exit code (what grading was before the
  agent stage and the scoring stage were separated);
- two-stage: ``run_attempt`` as evalfleet runs it: the agent's sandbox, every agent process
  killed, its files snapshotted into a fresh scoring sandbox, hidden tests written last, the
  isolated unittest runner, the per-test report read from the outbox.

Prints the median over ``--rounds`` rounds of the per-attempt time of each, and their ratio.

    python bench/grading.py [--provider bwrap] [--problems 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from evalfleet.sandbox import SandboxLimits, get_provider
from evalfleet.sandbox.base import SandboxProvider
from evalfleet.spec.humaneval import load_humaneval, read_problems
from evalfleet.spec.task import Task
from evalfleet.testing.agents import grade


async def baseline(task: Task, provider: SandboxProvider, program: str) -> bool:
    sb = await provider.create(SandboxLimits())
    try:
        await sb.write_files({"solution_test.py": program})
        res = await sb.exec(["python3", "solution_test.py"], timeout_s=30)
        return res.ok
    finally:
        await sb.close()


async def two_stage(task: Task, provider: SandboxProvider, answer: str) -> bool:
    out = await grade(task, provider, answer=answer)
    return out.score is not None and out.score.value == 1.0


async def main(provider_name: str, n: int, rounds: int) -> None:
    provider = get_provider(provider_name)
    suite = load_humaneval()
    problems = read_problems()[:n]
    tasks = [suite.by_id[p["task_id"]] for p in problems]
    base_times: list[float] = []
    new_times: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for p, task in zip(problems, tasks, strict=True):
            program = (p["prompt"] + p["canonical_solution"] + "\n" + p["test"]
                       + f"\ncheck({p['entry_point']})\n")
            assert await baseline(task, provider, program), task.id
        base_times.append((time.perf_counter() - t0) / n)
        t0 = time.perf_counter()
        for p, task in zip(problems, tasks, strict=True):
            assert await two_stage(task, provider, p["canonical_solution"]), task.id
        new_times.append((time.perf_counter() - t0) / n)
    b, t = statistics.median(base_times), statistics.median(new_times)
    print(f"provider {provider.name}, {n} HumanEval problems, median of {rounds} rounds")
    print(f"  baseline (one sandbox, exit code):          {1000 * b:7.1f} ms per attempt")
    print(f"  two-stage (fresh scoring sandbox, report):  {1000 * t:7.1f} ms per attempt")
    print(f"  ratio two-stage / baseline:                 {t / b:7.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--provider", default="bwrap", choices=["local", "bwrap"])
    ap.add_argument("--problems", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    asyncio.run(main(args.provider, args.problems, args.rounds))
