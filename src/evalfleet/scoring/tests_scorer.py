"""The ``tests`` scorer: the task's hidden tests decide, test by test, from a report.

The attempt hands this scorer a fresh sandbox holding the task's files plus the agent's changes
(see ``execution.attempt``); the scorer writes the answer file, then the hidden files last, runs
the tests and reads a per-test report from the sandbox's outbox, outside the working directory.
The verdict is positive evidence: an expected test counts only when the report says it passed.
Exit codes and printed text are never read as results.
"""

from __future__ import annotations

import importlib.machinery
import json
import posixpath
import secrets
import sys
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from evalfleet._util.paths import PathEscapeError, check_relative
from evalfleet.errors import InfraError
from evalfleet.sandbox.base import ExecResult, Sandbox
from evalfleet.scoring.answers import extract_code, humaneval_program
from evalfleet.scoring.base import Score, ScoreContext

REPORT_ENV = "EVALFLEET_REPORT"
"""The variable naming the file a ``junit`` runner's command must write its JUnit XML to."""

_MAX_REPORT_BYTES = 16_000_000
_DETAIL_CHARS = 1500
_SHOWN_FAILURES = 20


class TestsArgs(BaseModel):
    """Arguments of the tests scorer."""

    __test__ = False  # not a pytest class
    model_config = ConfigDict(extra="forbid")

    runner: Literal["unittest", "junit"] = Field(
        "unittest", description="unittest: evalfleet runs the hidden unittest files itself; "
        "junit: 'command' runs the tests and writes JUnit XML to $EVALFLEET_REPORT.")
    tests: list[str] = Field(default_factory=list,
                             description="Hidden test files to run (unittest; default: every "
                                         "hidden file named test*.py).")
    expected_tests: list[str] = Field(
        default_factory=list, description="Test ids that decide the grade: module.Class.method "
        "(unittest, derived from the hidden files when omitted) or classname.name (JUnit).")
    command: list[str] | None = Field(None, min_length=1,
                                      description="junit only: the command that runs the tests.")
    answer_file: str | None = Field(None, description="Write the answer to this file first.")
    answer_format: Literal["code", "text", "humaneval"] = Field(
        "code", description="code: the longest fenced block (or the whole answer); text: as "
        "is; humaneval: a completion appended to the task's prompt (see docs/grading.md).")
    entry_point: str | None = Field(None, description="humaneval: the function under test.")
    timeout_s: float = Field(60.0, gt=0, le=86_400, description="Test run time limit.")

    @model_validator(mode="after")
    def _check(self) -> TestsArgs:
        if self.runner == "unittest":
            if self.command is not None:
                raise ValueError(
                    "the unittest runner takes no 'command' (evalfleet runs the hidden tests "
                    "itself and reads a per-test report, never an exit code); use runner: junit "
                    f"with a command that writes JUnit XML to ${REPORT_ENV}")
            if not self.tests:
                raise ValueError("no hidden test files to run: name them in 'tests' or add "
                                 "hidden files named test*.py")
            modules = [posixpath.splitext(posixpath.basename(t))[0] for t in self.tests]
            if len(set(modules)) != len(modules):
                raise ValueError("two test files have the same module name")
            shadowed = sorted(set(modules) & (set(sys.stdlib_module_names) | {"test"}))
            if shadowed:  # the standard library comes first on the runner's path
                raise ValueError(f"test file module names clash with the standard library: "
                                 f"{', '.join(shadowed)}")
        elif self.command is None:
            raise ValueError("runner junit needs a 'command'")
        if not self.expected_tests:
            raise ValueError("'expected_tests' is empty: list the test ids that decide the grade")
        if self.answer_format == "humaneval" and not self.entry_point:
            raise ValueError("answer_format humaneval needs 'entry_point'")
        for rel in [*self.tests, *([self.answer_file] if self.answer_file else [])]:
            try:
                check_relative(rel)
            except PathEscapeError as exc:
                raise ValueError(str(exc)) from None
        return self


def _module_doubles(path: str) -> list[str]:
    """What the import system would take for the module ``path`` (``x/m.py``) before the file
    itself, were an agent to leave it beside it: the package ``x/m/`` and extension modules
    ``x/m.<suffix>`` (an agent's ``test_hidden/__init__.py`` would be imported as the hidden
    ``test_hidden.py``)."""
    if not path.endswith(".py"):
        return []
    stem = path[:-3]
    suffixes = {*importlib.machinery.EXTENSION_SUFFIXES, ".so", ".abi3.so", ".pyd"}
    return [stem, *(stem + s for s in sorted(suffixes))]


@cache
def _harness_source() -> str:
    return (Path(__file__).with_name("_unittest_harness.py")).read_text(encoding="utf-8")


def _parse_json_report(data: bytes, nonce: str) -> tuple[dict[str, dict[str, str]] | None, str]:
    # Code under test can write this file (the runner cannot stop it): whatever is in it is
    # refused or read, never an exception of the scorer (that would exclude the run).
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None, "the test report is not valid JSON"
    found = str(doc.get("nonce", "")) if isinstance(doc, dict) else ""
    # As bytes: compare_digest refuses str with non-ASCII characters (TypeError).
    if not secrets.compare_digest(found.encode("utf-8", "replace"), nonce.encode()):
        return None, "the test report does not carry this attempt's nonce (not the runner's)"
    if doc.get("note"):
        return None, f"the test run was tampered with: {str(doc['note'])[:300]}"
    tests = doc.get("tests")
    if not isinstance(tests, dict):
        return None, "the test report has no test list"
    out: dict[str, dict[str, str]] = {}
    for tid, entry in tests.items():
        if isinstance(entry, dict):
            out[str(tid)] = {"status": str(entry.get("status", "")),
                             "detail": str(entry.get("detail", ""))}
    return out, ""


_RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def parse_junit(data: bytes) -> tuple[dict[str, dict[str, str]] | None, str]:
    """Per-test statuses from JUnit XML, keyed ``classname.name``; a repeated id keeps its worst
    status, so appending a passing copy of a failed test changes nothing."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return None, "the JUnit report declares a DOCTYPE or entities (refused)"
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return None, f"the JUnit report is not valid XML: {exc}"
    out: dict[str, dict[str, str]] = {}
    for case in root.iter("testcase"):
        name, cls = case.get("name", ""), case.get("classname", "")
        tid = f"{cls}.{name}" if cls else name
        status, detail = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed"}.get(child.tag, child.tag)
                detail = (child.get("message") or "") + "\n" + (child.text or "")
                break
        old = out.get(tid)
        if old is None or _RANK[status] > _RANK.get(old["status"], 0):
            out[tid] = {"status": status, "detail": detail}
    return out, ""


class TestsScorer:
    """Runs the hidden tests; score = passed expected tests / expected tests."""

    __test__ = False  # not a pytest class

    def __init__(self, args: TestsArgs) -> None:
        self.args = args

    def reserved_paths(self, hidden_files: dict[str, str]) -> list[str]:
        """Paths this scorer writes after the agent: no agent file may stand in their way, nor
        take the place of a Python module written there when it is imported by name."""
        written = [*hidden_files, *([self.args.answer_file] if self.args.answer_file else [])]
        return [*written, *(p for w in written for p in _module_doubles(w))]

    def _answer_text(self, ctx: ScoreContext) -> bytes:
        fmt = self.args.answer_format
        if fmt == "humaneval":
            text = humaneval_program(ctx.task.input, ctx.answer, self.args.entry_point or "")
        else:
            text = extract_code(ctx.answer) if fmt == "code" else ctx.answer
        # An answer is any str, lone surrogates included (JSON's "\ud800" decodes to one): what
        # UTF-8 cannot encode becomes "?", so the answer is graded instead of crashing the scorer.
        return text.encode("utf-8", errors="replace")

    async def score(self, ctx: ScoreContext) -> Score:
        sandbox = await ctx.sandbox.get()
        # The answer first, the hidden files last: nothing the agent wrote can replace them.
        for files, what in (({self.args.answer_file: self._answer_text(ctx)}
                             if self.args.answer_file else {}, "the answer file"),
                            (dict(ctx.task.hidden_files), "the hidden test files")):
            if not files:
                continue
            try:
                await sandbox.write_files(files)
            except (OSError, InfraError) as exc:
                ctx.trajectory.add("scorer", scorer="tests", error=f"cannot write {what}: {exc}")
                return Score(0.0, False, {"tests_passed": 0.0,
                                          "tests_total": float(len(self.args.expected_tests))},
                             f"cannot write {what} after the agent: {exc}")
        token = secrets.token_hex(8)
        nonce = secrets.token_hex(16)
        if self.args.runner == "unittest":
            name = f"report-{token}.json"
            # -B: nothing is cached for later; the snapshot never carries the agent's
            # __pycache__, so only bytecode compiled here from the files here can be loaded.
            # (A pycache_prefix would do the same but recompile the standard library on every
            # run: 0.4 s per scoring.)
            argv = ["python3", "-I", "-B",
                    "-c", _harness_source(), posixpath.join(sandbox.outdir, name),
                    sandbox.workdir, *self.args.tests]
            res = await sandbox.exec(argv, stdin=(nonce + "\n").encode(),
                                     timeout_s=self.args.timeout_s)
        else:
            assert self.args.command is not None
            name = f"report-{token}.xml"
            res = await sandbox.exec(self.args.command, timeout_s=self.args.timeout_s,
                                     env={REPORT_ENV: posixpath.join(sandbox.outdir, name)})
        # Nothing the tests started may still write the report while it is read.
        await sandbox.kill_all()
        statuses, problem = await self._read_report(sandbox, name, nonce)
        if statuses is None and res.exit_code in (126, 127):
            await self._check_runner_starts(sandbox, res)
        return self._verdict(ctx, res, statuses, problem)

    async def _read_report(self, sandbox: Sandbox, name: str,
                           nonce: str) -> tuple[dict[str, dict[str, str]] | None, str]:
        try:
            data = await sandbox.read_output(name, max_bytes=_MAX_REPORT_BYTES + 1)
        except FileNotFoundError:
            return None, "the test run wrote no report"
        except InfraError as exc:
            return None, f"the test report is unreadable: {exc}"
        if len(data) > _MAX_REPORT_BYTES:
            return None, "the test report is too large"
        if self.args.runner == "unittest":
            return _parse_json_report(data, nonce)
        return parse_junit(data)

    async def _check_runner_starts(self, sandbox: Sandbox, res: ExecResult) -> None:
        # 126/127 is also what code under test can exit with: only when the runner itself
        # cannot start in a sandbox where no agent code runs is it the infrastructure's fault.
        first = "python3" if self.args.runner == "unittest" else (self.args.command or [""])[0]
        if "/" in first and not first.startswith("/"):
            return  # a program in the working directory: what the agent left decides there
        probe = await sandbox.exec(["/bin/sh", "-c", 'command -v -- "$1" >/dev/null', "sh",
                                    first], timeout_s=30)
        if not probe.ok:
            raise InfraError(f"the scorer's test command cannot start (exit {res.exit_code}): "
                             f"{res.stderr.strip()[-300:]}")
        if first == "python3":
            probe = await sandbox.exec(["python3", "-I", "-c", "pass"], timeout_s=30)
            if not probe.ok:
                raise InfraError(f"python3 cannot start in the scoring sandbox (exit "
                                 f"{probe.exit_code}): {probe.stderr.strip()[-300:]}")

    def _verdict(self, ctx: ScoreContext, res: ExecResult,
                 statuses: dict[str, dict[str, str]] | None, problem: str) -> Score:
        expected = self.args.expected_tests
        got = statuses or {}
        passed = [t for t in expected if got.get(t, {}).get("status") == "passed"]
        failing = [t for t in expected if t not in set(passed)]
        metrics = {"tests_passed": float(len(passed)), "tests_total": float(len(expected))}
        if res.timed_out:
            metrics["tests_timed_out"] = 1.0
        per_test: dict[str, Any] = {
            t: {"status": got.get(t, {}).get("status", "missing"),
                "detail": got.get(t, {}).get("detail", "")[-_DETAIL_CHARS:]}
            for t in failing[:_SHOWN_FAILURES]}
        ctx.trajectory.add("scorer", scorer="tests", runner=self.args.runner,
                           exit_code=res.exit_code, timed_out=res.timed_out,
                           duration_s=round(res.duration_s, 4), report_problem=problem,
                           passed=len(passed), expected=len(expected), failing=per_test,
                           output=(res.stdout + "\n" + res.stderr)[-6000:])
        ok = not failing
        if ok:
            explanation = f"{len(passed)}/{len(expected)} expected tests passed"
        else:
            why = problem or ("the test run timed out" if res.timed_out else "")
            shown = ", ".join(failing[:5]) + (" ..." if len(failing) > 5 else "")
            explanation = (f"{len(passed)}/{len(expected)} expected tests passed; not passed: "
                           f"{shown}" + (f" ({why})" if why else ""))
        return Score(len(passed) / len(expected), ok, metrics, explanation)
