"""Scripted python agents for tests, demos of failure handling, and benchmarks."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalfleet.agents.base import AgentContext, AgentOutput
    from evalfleet.execution.attempt import AttemptOutcome
    from evalfleet.sandbox.base import SandboxProvider
    from evalfleet.spec.task import Task


def noop(task: dict[str, Any]) -> str:
    """Answers ``ok`` at once."""
    return "ok"


async def noop_async(task: dict[str, Any]) -> str:
    """Answers ``ok`` at once (async)."""
    return "ok"


def echo_target(task: dict[str, Any], answers: dict[str, str] | None = None) -> str:
    """Answers from a table keyed by task id (default: the task id itself)."""
    return str((answers or {}).get(task["id"], task["id"]))


def counting(task: dict[str, Any], log: str, sleep_s: float = 0.0) -> str:
    """Appends the task id to ``log`` (one line per execution, O_APPEND), then answers ``ok``.

    Tests count executions from this file, independently of the journal.
    """
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (task["id"] + "\n").encode())
    finally:
        os.close(fd)
    if sleep_s:
        time.sleep(sleep_s)
    return "ok"


def hang(task: dict[str, Any]) -> str:
    """Never returns in reasonable time."""
    time.sleep(3600)
    return "late"


async def hang_async(task: dict[str, Any]) -> str:
    """Never returns in reasonable time (async, cancellable)."""
    import asyncio

    await asyncio.sleep(3600)
    return "late"


def boom(task: dict[str, Any]) -> str:
    """Raises, as a buggy agent would."""
    raise RuntimeError("agent bug")


def flaky_infra(task: dict[str, Any], marker_dir: str, failures: int = 1) -> str:
    """Raises an InfraError the first ``failures`` times per task, then answers ``ok``."""
    from pathlib import Path

    from evalfleet.errors import InfraError

    path = Path(marker_dir) / task["id"].replace("/", "_")
    n = int(path.read_text()) if path.exists() else 0
    path.write_text(str(n + 1))
    if n < failures:
        raise InfraError("simulated infrastructure failure")
    return "ok"


def task_rate(task: dict[str, Any], marker_dir: str,
              rates: dict[str, float] | None = None) -> str:
    """Answers ``ok`` with a pass chance that depends on the task, deterministically.

    The chance is ``rates[task id]``, else chosen by a hash of the id among 1, 0 and 1/2 (a
    task always passed, always failed, or passed half the time). The k-th call for a task
    (counted in ``marker_dir``) passes when a hash of (task id, k) falls under the chance, so
    the same calls give the same answers in every eval.
    """
    import hashlib
    from pathlib import Path

    tid = task["id"]
    digest = hashlib.sha256(tid.encode()).digest()
    chance = (rates or {}).get(tid, (1.0, 0.0, 0.5)[digest[0] % 3])
    path = Path(marker_dir) / hashlib.sha256(tid.encode()).hexdigest()[:16]
    k = int(path.read_text()) if path.exists() else 0
    path.write_text(str(k + 1))
    draw = int.from_bytes(hashlib.sha256(f"{tid}:{k}".encode()).digest()[:8], "big") / 2**64
    return "ok" if draw < chance else "no"


def huge_answer(task: dict[str, Any]) -> str:
    """Returns 50 MB of text."""
    return "x" * 50_000_000


_active = 0
max_active = 0
"""Highest number of :func:`track_concurrency` calls seen at once in this process."""


async def track_concurrency(task: dict[str, Any], sleep_s: float = 0.05) -> str:
    """Records how many instances run at once (module global ``max_active``)."""
    import asyncio

    global _active, max_active
    _active += 1
    max_active = max(max_active, _active)
    try:
        await asyncio.sleep(sleep_s)
    finally:
        _active -= 1
    return "ok"


class ScriptedAgent:
    """An agent object (not a python-callable agent) that acts in the sandbox like a coding agent:
    writes ``files``, runs ``commands`` there (``/bin/sh -c``), then answers ``answer``.

    Used to grade what a hostile or honest agent leaves behind, through the real two-stage
    attempt (see :func:`grade`).
    """

    def __init__(self, files: dict[str, str] | None = None, commands: tuple[str, ...] = (),
                 answer: str = "done") -> None:
        self.files = dict(files or {})
        self.commands = commands
        self.answer = answer

    async def run(self, ctx: AgentContext) -> AgentOutput:
        """Act in the sandbox (only when there is something to do), then answer."""
        from evalfleet.agents.base import AgentOutput

        if self.files or self.commands:
            sandbox = await ctx.sandbox.get()
            if self.files:
                await sandbox.write_files(self.files)
            for cmd in self.commands:
                await sandbox.exec(["/bin/sh", "-c", cmd], timeout_s=30)
        return AgentOutput(self.answer)


async def grade(task: Task, provider: SandboxProvider, *, files: dict[str, str] | None = None,
                commands: tuple[str, ...] = (), answer: str = "done") -> AttemptOutcome:
    """One real attempt at ``task`` by a :class:`ScriptedAgent`: its AttemptOutcome."""
    from evalfleet.agents.base import NoGate
    from evalfleet.cost.prices import PriceTable
    from evalfleet.execution.attempt import run_attempt
    from evalfleet.scoring.registry import create_scorer
    from evalfleet.spec.agent import AgentSpec

    spec = AgentSpec(name="scripted", kind="command", args={"command": ["true"]})
    return await run_attempt(task=task, spec=spec, agent=ScriptedAgent(files, commands, answer),
                             scorer=create_scorer(task.scorer), provider=provider,
                             prices=PriceTable({}, {}, ""), gate=NoGate(), run_id="graded",
                             attempt=1, variables={})
