"""The agent stage ends with every one of its processes dead, before anything is scored."""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
from pathlib import Path

from evalfleet.execution.attempt import _Stages
from evalfleet.sandbox import LocalSandboxProvider
from evalfleet.spec.task import ScorerSpec, Task
from evalfleet.spec.trajectory import Trajectory


def _running(cmdline: bytes) -> list[int]:
    """Host pids of running (not zombie) processes with exactly this command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cmdline").read_bytes() != cmdline:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


async def _left_after_agent_stage(provider: LocalSandboxProvider, seconds: str) -> list[int]:
    mark = f"sleep\0{seconds}\0".encode()
    task = Task(id="t", input="x", target="x", scorer=ScorerSpec(kind="exact"))
    stages = _Stages(provider, task, Trajectory(), reserved=[])
    try:
        sb = await stages.agent.get()
        await sb.exec(["/bin/sh", "-c", f"setsid sh -c 'exec sleep {seconds}' "
                       "</dev/null >/dev/null 2>&1 &"], timeout_s=10)
        # The sandbox may already end a detached process with the command that started it;
        # either way none may be left once the agent stage ends.
        for _ in range(50):
            if _running(mark):
                break
            await asyncio.sleep(0.02)
        await stages.end_agent_stage()
        left = _running(mark)  # before the scorer's sandbox exists
        assert await stages.scoring.get() is not sb
        return left
    finally:
        await stages.close()


def test_a_detached_process_is_dead_when_the_scoring_stage_starts() -> None:
    # local runs commands as host processes: the driver sees them in its /proc.
    base = Path(tempfile.mkdtemp(prefix="evalfleet-test-stages-"))
    seconds = f"299.{random.randrange(10**6):06d}"
    try:
        left = asyncio.run(_left_after_agent_stage(LocalSandboxProvider(base), seconds))
        assert left == [], f"processes {left} of the agent survived into scoring"
    finally:
        shutil.rmtree(base, ignore_errors=True)
