"""The agent stage ends with every one of its processes dead, before anything is scored."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest

from evalfleet.execution.attempt import _Stages
from evalfleet.sandbox import LocalSandboxProvider
from evalfleet.spec.task import ScorerSpec, Task
from evalfleet.spec.trajectory import Trajectory


def _alive(pid: int) -> bool:
    """Running (a killed process may stay a zombie until its new parent reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def _detached_pid_after_agent_stage(provider: LocalSandboxProvider) -> tuple[int, bool]:
    task = Task(id="t", input="x", target="x", scorer=ScorerSpec(kind="exact"))
    stages = _Stages(provider, task, Trajectory(), reserved=[])
    try:
        sb = await stages.agent.get()
        await sb.exec(["/bin/sh", "-c", "setsid sh -c 'echo $$ > pid; exec sleep 300' "
                       "</dev/null >/dev/null 2>&1 &"], timeout_s=10)
        pid = 0
        for _ in range(250):
            try:
                pid = int((await sb.read_file("pid")).decode())
                break
            except (FileNotFoundError, ValueError):
                await asyncio.sleep(0.02)
        if not pid or not _alive(pid):
            pytest.skip("this sandbox already ends detached processes with each command")
        await stages.end_agent_stage()
        alive_after = _alive(pid)  # before the scorer's sandbox exists
        assert await stages.scoring.get() is not sb
        return pid, alive_after
    finally:
        await stages.close()


def test_a_detached_process_is_dead_when_the_scoring_stage_starts() -> None:
    # local runs commands as host processes, so their pids can be checked from here (bwrap's
    # live in a pid namespace that dies with each command anyway).
    base = Path(tempfile.mkdtemp(prefix="evalfleet-test-stages-"))
    try:
        pid, alive = asyncio.run(_detached_pid_after_agent_stage(LocalSandboxProvider(base)))
        assert not alive, f"process {pid} of the agent survived into scoring"
    finally:
        shutil.rmtree(base, ignore_errors=True)
