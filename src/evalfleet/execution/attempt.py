"""One attempt at a run: sandbox up, agent acts, scorer grades, sandbox down."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from evalfleet.agents.base import Agent, AgentContext, ModelGate, Usage
from evalfleet.cost.prices import PriceTable
from evalfleet.errors import AgentError, InfraError, RunError, SpecError, TaskTimeoutError
from evalfleet.sandbox.base import Sandbox, SandboxLimits, SandboxProvider
from evalfleet.sandbox.lazy import LazySandbox
from evalfleet.scoring.base import Score, ScoreContext, Scorer
from evalfleet.spec.agent import AgentSpec
from evalfleet.spec.task import Task
from evalfleet.spec.trajectory import Trajectory


@dataclass(slots=True)
class AttemptOutcome:
    """What one attempt produced: a score, or the error that ended it."""

    score: Score | None
    error: RunError | None
    usage: Usage
    trajectory: Trajectory
    sandbox: str
    started_at: float
    duration_s: float


def sandbox_limits(task: Task) -> SandboxLimits:
    """The sandbox limits a task asks for."""
    lim = task.limits
    return SandboxLimits(cpu_s=lim.cpu_s, memory_mb=lim.memory_mb, file_size_mb=lim.file_size_mb,
                         max_processes=lim.max_processes, max_output_bytes=lim.max_output_bytes,
                         network=task.network)


async def _provision(provider: SandboxProvider, task: Task, traj: Trajectory) -> Sandbox:
    try:
        sb = await provider.create(sandbox_limits(task))
    except RunError:
        raise
    except Exception as exc:
        raise InfraError(f"sandbox provisioning failed: {type(exc).__name__}: {exc}") from exc
    try:
        if task.files:
            await sb.write_files(task.files)
        for cmd in task.setup:
            res = await sb.exec(["/bin/sh", "-c", cmd], timeout_s=min(300.0, task.limits.timeout_s))
            traj.add("setup", command=cmd, exit_code=res.exit_code, stderr=res.stderr[-2000:])
            if not res.ok:
                raise InfraError(f"task set-up command failed (exit {res.exit_code}): {cmd}")
    except BaseException:
        await sb.close()
        raise
    traj.add("sandbox", provider=sb.provider, workdir=sb.workdir)
    return sb


async def run_attempt(*, task: Task, spec: AgentSpec, agent: Agent, scorer: Scorer,
                      provider: SandboxProvider, prices: PriceTable, gate: ModelGate,
                      run_id: str, attempt: int, variables: dict[str, str]) -> AttemptOutcome:
    """Run one attempt; never raises for agent, timeout or infrastructure failures."""
    traj = Trajectory()
    started = time.time()
    lazy = LazySandbox(lambda: _provision(provider, task, traj))
    ctx = AgentContext(task=task, spec=spec, run_id=run_id, attempt=attempt, sandbox=lazy,
                       trajectory=traj, prices=prices, gate=gate, variables=variables)
    score: Score | None = None
    error: RunError | None = None
    try:
        try:
            out = await asyncio.wait_for(agent.run(ctx), timeout=task.limits.timeout_s)
        except TimeoutError:
            if time.time() - started < task.limits.timeout_s * 0.99:
                raise InfraError("a timeout inside the agent's infrastructure") from None
            raise TaskTimeoutError(f"task time limit of {task.limits.timeout_s:g}s reached") \
                from None
        if out.extra:
            traj.add("agent_output", data=out.extra)
        score = await scorer.score(ScoreContext(task=task, answer=out.answer, sandbox=lazy,
                                                trajectory=traj))
    except RunError as exc:
        error = exc
    except SpecError as exc:
        error = AgentError(f"configuration problem: {exc}")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # an adapter bug is the agent's failure, not a crash of the eval
        error = AgentError(f"{type(exc).__name__}: {exc}"[:2000])
    finally:
        sb = lazy.created
        provider_name = sb.provider if sb is not None else ""
        try:
            await lazy.close()
        except Exception as exc:  # pragma: no cover - cleanup must not mask the result
            traj.add("sandbox_close_error", error=str(exc))
    if error is not None:
        traj.add("error", error_kind=error.error_kind, message=str(error))
    return AttemptOutcome(score=score, error=error, usage=ctx.usage, trajectory=traj,
                          sandbox=provider_name, started_at=started,
                          duration_s=time.time() - started)
