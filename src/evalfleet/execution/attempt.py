"""One attempt at a run, in two stages: the agent acts in its sandbox; then, with every process
of the agent stage dead, the scorer grades in a fresh sandbox holding the agent's files."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Collection
from dataclasses import dataclass

from evalfleet._util.paths import PathEscapeError, check_relative
from evalfleet.agents.base import Agent, AgentContext, ModelGate, Usage
from evalfleet.cost.prices import PriceTable
from evalfleet.errors import (
    AgentError,
    InfraError,
    RunError,
    ScorerError,
    SpecError,
    TaskTimeoutError,
)
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
    isolation: str = ""
    """How each stage was isolated, e.g. ``bwrap`` or ``agent:in-driver; scorer:in-driver``."""


def sandbox_limits(task: Task) -> SandboxLimits:
    """The sandbox limits a task asks for."""
    lim = task.limits
    return SandboxLimits(cpu_s=lim.cpu_s, memory_mb=lim.memory_mb, file_size_mb=lim.file_size_mb,
                         max_processes=lim.max_processes, disk_mb=lim.disk_mb,
                         max_output_bytes=lim.max_output_bytes, network=task.network)


async def _create(provider: SandboxProvider, task: Task, *, network: bool = True) -> Sandbox:
    """A sandbox with the task's limits; ``network=False`` keeps it off the network even when
    the task may use it (the scoring sandbox holds the hidden tests)."""
    limits = sandbox_limits(task)
    if not network:
        limits = dataclasses.replace(limits, network=False)
    try:
        return await provider.create(limits)
    except RunError:
        raise
    except Exception as exc:
        raise InfraError(f"sandbox provisioning failed: {type(exc).__name__}: {exc}") from exc


async def _provision(provider: SandboxProvider, task: Task, traj: Trajectory,
                     stage: str = "agent") -> Sandbox:
    """A new sandbox with the task's files, after the task's set-up commands."""
    sb = await _create(provider, task)
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
    traj.add("sandbox", stage=stage, provider=sb.provider, workdir=sb.workdir)
    return sb


def _in_the_way(path: str, reserved: Collection[str]) -> bool:
    """Whether an agent's file at ``path`` would stand where a reserved file or its folder goes."""
    return any(path == r or path.startswith(r + "/") or r.startswith(path + "/")
               for r in reserved)


def _is_clean(path: str) -> bool:
    try:
        check_relative(path)
    except PathEscapeError:
        return False
    return True


class _Stages:
    """The two sandboxes of an attempt: the agent's, and a fresh one for the scorer.

    The agent's sandbox is created on the agent's first use. When the agent is done every one of
    its processes is killed; the scoring sandbox, created on the scorer's first use, receives a
    snapshot of the agent's files (the task's files plus the agent's changes) without anything
    at or around the paths the scorer writes afterwards. Task set-up is not re-run there: its
    effects on the working directory are in the snapshot. When the agent never used a sandbox,
    the scoring sandbox is provisioned as the agent's would have been.
    """

    def __init__(self, provider: SandboxProvider, task: Task, traj: Trajectory,
                 reserved: Collection[str]) -> None:
        self.provider, self.task, self.traj, self.reserved = provider, task, traj, reserved
        self.agent = LazySandbox(self._agent_sandbox)
        self.scoring = LazySandbox(self._scoring_sandbox)
        self.names: list[str] = []
        self.isolation: list[str] = []

    def _note(self, sb: Sandbox, stage: str) -> None:
        self.names.append(sb.provider)
        iso = str(getattr(sb, "isolation", "") or sb.provider)
        if stage == "agent":
            self.isolation.append(iso)
        elif iso not in self.isolation:  # said once when both stages are alike
            self.isolation.append(f"scorer:{iso}")

    async def _agent_sandbox(self) -> Sandbox:
        sb = await _provision(self.provider, self.task, self.traj)
        self._note(sb, "agent")
        return sb

    async def end_agent_stage(self) -> None:
        """Kill every process the agent left; its files stay for the scorer."""
        sb = self.agent.created
        if sb is not None:
            await sb.kill_all()

    async def _scoring_sandbox(self) -> Sandbox:
        # The scoring sandbox never has the network: the hidden tests are in it, and code under
        # test could send them out (to an agent's later runs) as easily as read them.
        agent_sb = self.agent.created
        if agent_sb is None:
            if not self.task.network:
                sb = await _provision(self.provider, self.task, self.traj, stage="scorer")
                self._note(sb, "scorer")
                return sb
            # Set-up may need the network: it runs in a sandbox of its own, copied from.
            setup_sb = await _provision(self.provider, self.task, self.traj, stage="setup")
            try:
                files = await setup_sb.snapshot()
            finally:
                await setup_sb.close()
        else:
            files = await agent_sb.snapshot()
            await self.agent.close()
        kept = {p: b for p, b in files.items()
                if _is_clean(p) and not _in_the_way(p, self.reserved)}
        dropped = sorted(set(files) - set(kept))
        sb = await _create(self.provider, self.task, network=False)
        try:
            await sb.write_files(kept)
        except (OSError, InfraError, SpecError) as exc:
            await sb.close()
            raise AgentError(f"the files the agent left cannot be copied for scoring: {exc}") \
                from None
        self.traj.add("sandbox", stage="scorer", provider=sb.provider, workdir=sb.workdir,
                      files=len(kept), dropped=dropped[:50])
        self._note(sb, "scorer")
        return sb

    async def close(self) -> None:
        for lazy in (self.agent, self.scoring):
            try:
                await lazy.close()
            except Exception as exc:  # pragma: no cover - cleanup must not mask the result
                self.traj.add("sandbox_close_error", error=str(exc))


def _check_score(score: object) -> Score:
    """The one place a grade is validated: a Score, a finite value in [0, 1], a bool or None
    for ``passed``, finite metrics; anything else is the scorer's fault (ScorerError)."""
    if not isinstance(score, Score):
        raise ScorerError(f"the scorer returned {type(score).__name__}, not a Score")
    try:
        value = float(score.value)
    except (TypeError, ValueError):
        raise ScorerError(f"the scorer returned the value {score.value!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ScorerError(f"the scorer returned the value {score.value!r}, not one in [0, 1]")
    passed: object = score.passed  # python scorers are user code: check, don't trust
    if passed is not None and not isinstance(passed, bool):
        raise ScorerError(f"the scorer returned passed={passed!r:.100}, not a bool")
    for key, metric in score.metrics.items():
        if not isinstance(metric, int | float) or not math.isfinite(metric):
            raise ScorerError(f"the scorer returned the metric {key}={metric!r}")
    score.value = value
    return score


async def _grade(scorer: Scorer, ctx: ScoreContext) -> Score:
    """The scorer's grade; a scorer that breaks is a ScorerError, not the agent's failure."""
    try:
        return _check_score(await scorer.score(ctx))
    except RunError:
        raise
    except SpecError as exc:
        raise ScorerError(f"scorer configuration problem: {exc}") from None
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise ScorerError(f"the scorer raised {type(exc).__name__}: {exc}"[:2000]) from None


async def run_attempt(*, task: Task, spec: AgentSpec, agent: Agent, scorer: Scorer,
                      provider: SandboxProvider, prices: PriceTable, gate: ModelGate,
                      run_id: str, attempt: int, variables: dict[str, str]) -> AttemptOutcome:
    """Run one attempt; never raises for agent, timeout, scorer or infrastructure failures."""
    traj = Trajectory()
    started = time.time()
    reserve = getattr(scorer, "reserved_paths", None)
    reserved = list(reserve(dict(task.hidden_files)) if callable(reserve) else task.hidden_files)
    stages = _Stages(provider, task, traj, reserved)
    ctx = AgentContext(task=task, spec=spec, run_id=run_id, attempt=attempt, sandbox=stages.agent,
                       trajectory=traj, prices=prices, gate=gate, variables=variables)
    score: Score | None = None
    error: RunError | None = None
    try:
        try:
            # the limit cancels the agent in this task (no task of its own per attempt)
            limit = asyncio.timeout(task.limits.timeout_s)
            try:
                async with limit:
                    out = await agent.run(ctx)
            except TimeoutError:
                if not limit.expired():  # raised by the agent's own client, not our limit
                    raise InfraError("a timeout inside the agent's infrastructure") from None
                raise TaskTimeoutError(f"task time limit of {task.limits.timeout_s:g}s reached") \
                    from None
            if out.extra:
                traj.add("agent_output", data=out.extra)
        except SpecError as exc:
            raise AgentError(f"configuration problem: {exc}") from None
        except (RunError, asyncio.CancelledError):
            raise
        except Exception as exc:  # an adapter bug is the agent's failure, not a crash of the eval
            raise AgentError(f"{type(exc).__name__}: {exc}"[:2000]) from None
        await stages.end_agent_stage()
        score = await _grade(scorer, ScoreContext(task=task, answer=out.answer,
                                                  sandbox=stages.scoring, trajectory=traj))
    except RunError as exc:
        error = exc
    finally:
        await stages.close()
    if error is not None:
        traj.add("error", error_kind=error.error_kind, message=str(error))
    notes = list(stages.isolation)
    if spec.kind == "python":
        notes.insert(0, "agent:in-driver")
    if task.scorer.kind == "python":
        notes.append("scorer:in-driver")
    return AttemptOutcome(score=score, error=error, usage=ctx.usage, trajectory=traj,
                          sandbox=stages.names[0] if stages.names else "", started_at=started,
                          duration_s=time.time() - started, isolation="; ".join(notes))
