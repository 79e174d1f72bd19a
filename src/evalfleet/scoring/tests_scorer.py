"""The ``tests`` scorer: run hidden tests in the sandbox after the agent; partial credit."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from evalfleet.errors import InfraError
from evalfleet.scoring.base import Score, ScoreContext

_FENCE = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL)
_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in", re.MULTILINE)
_UNITTEST_FAILED = re.compile(r"^FAILED \(([^)]*)\)", re.MULTILINE)
_PYTEST_COUNTS = re.compile(r"(\d+) (passed|failed|error|errors)\b")


class TestsArgs(BaseModel):
    """Arguments of the tests scorer."""

    model_config = ConfigDict(extra="forbid")

    command: list[str] = Field(min_length=1, description="Test command run in the sandbox.")
    answer_file: str | None = Field(None, description="Write the answer to this file first.")
    extract_code: bool = Field(True, description="Keep only the last fenced code block.")
    timeout_s: float = Field(60.0, gt=0, le=86_400, description="Test run time limit.")


def extract_code(text: str) -> str:
    """The longest fenced code block of ``text`` (or the text itself when there is none)."""
    blocks = _FENCE.findall(text)
    return max(blocks, key=len) if blocks else text


def count_tests(output: str) -> tuple[int, int] | None:
    """(passed, total) from unittest or pytest output, or None when it cannot tell."""
    ran = _UNITTEST_RAN.findall(output)
    if ran:
        total = int(ran[-1])
        failed = 0
        m = _UNITTEST_FAILED.findall(output)
        if m:
            for part in m[-1].split(","):
                name, _, num = part.strip().partition("=")
                if name in ("failures", "errors") and num.isdigit():
                    failed += int(num)
        return max(total - failed, 0), total
    counts = {"passed": 0, "failed": 0, "error": 0}
    found = False
    for num, word in _PYTEST_COUNTS.findall(output):
        counts["error" if word.startswith("error") else word] += int(num)
        found = True
    if found:
        total = counts["passed"] + counts["failed"] + counts["error"]
        return (counts["passed"], total) if total else None
    return None


class TestsScorer:
    """Writes hidden files (and the answer), runs the command; score = passing share of tests."""

    __test__ = False  # not a pytest class

    def __init__(self, args: TestsArgs) -> None:
        self.args = args

    async def score(self, ctx: ScoreContext) -> Score:
        sandbox = await ctx.sandbox.get()
        files: dict[str, str] = dict(ctx.task.hidden_files)
        if self.args.answer_file:
            answer = extract_code(ctx.answer) if self.args.extract_code else ctx.answer
            files[self.args.answer_file] = answer
        try:
            await sandbox.write_files(files)
        except OSError as exc:
            raise InfraError(f"cannot write test files: {exc}") from exc
        res = await sandbox.exec(self.args.command, timeout_s=self.args.timeout_s)
        output = res.stdout + "\n" + res.stderr
        ctx.trajectory.add("scorer", scorer="tests", exit_code=res.exit_code,
                           timed_out=res.timed_out, output=output[-6000:],
                           duration_s=round(res.duration_s, 4))
        counts = count_tests(output)
        passed = res.ok
        if counts is not None and counts[1] > 0:
            value = counts[0] / counts[1]
            metrics = {"tests_passed": float(counts[0]), "tests_total": float(counts[1])}
            passed = passed and counts[0] == counts[1]
        else:
            value = 1.0 if passed else 0.0
            metrics = {}
        if res.timed_out:
            metrics["tests_timed_out"] = 1.0
        return Score(value, passed, metrics,
                     "tests passed" if passed else f"tests failed (exit {res.exit_code})")
