"""Evaluation plans."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from evalfleet._util import short_hash
from evalfleet.spec.agent import AgentSpec


class SuiteRef(BaseModel):
    """Which suite to evaluate: a built-in one or a path, plus an optional filter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    builtin: str | None = Field(None, description="Built-in suite: humaneval or repo-tasks.")
    path: str | None = Field(None, description="Suite folder or JSONL file, relative to the plan.")
    categories: tuple[str, ...] = Field((), description="Keep only these categories.")
    ids: tuple[str, ...] = Field((), description="Keep only these task ids.")
    limit: int | None = Field(None, ge=1, le=10_000_000, description="Keep the first N tasks.")

    @model_validator(mode="after")
    def _one_source(self) -> SuiteRef:
        if (self.builtin is None) == (self.path is None):
            raise ValueError("give exactly one of 'builtin' or 'path'")
        return self


class RateLimit(BaseModel):
    """Limits of one provider."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: float | None = Field(None, gt=0, le=1e7, description="Request limit.")
    tokens_per_minute: float | None = Field(None, gt=0, le=1e10, description="Token limit.")


class PoolSpec(BaseModel):
    """A pool of slots shared by the evals whose plans name it (execution/shares.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
                      description="The pool: evals naming the same pool share its slots.")
    slots: int = Field(ge=1, le=100_000, description="Attempts running at once over every "
                       "eval using the pool.")
    priority: int = Field(0, ge=-1000, le=1000, description="Higher is served first (a "
                          "release gate above a nightly).")
    share: float = Field(1.0, gt=0, le=1000, description="Weight among evals of the same "
                         "priority.")


class ExecutionSettings(BaseModel):
    """How runs are dispatched."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["local", "ray"] = Field(
        "local", description="Where attempts run: local (this process) or ray (worker actors "
        "of a Ray cluster; the extra evalfleet[ray], see docs/ray.md).")
    max_in_flight: int = Field(16, ge=1, le=10_000, description="Runs executing at once.")
    max_attempts: int = Field(5, ge=1, le=100, description="Attempts per run on infra errors.")
    lease_seconds: float = Field(120.0, ge=1, le=86_400, description="Lease length of a run.")
    heartbeat_seconds: float = Field(10.0, gt=0, le=3600, description="Lease renewal period.")
    backoff_base_s: float = Field(0.5, ge=0, le=600, description="First retry delay.")
    backoff_max_s: float = Field(30.0, ge=0, le=3600, description="Longest retry delay.")
    sandbox: Literal["auto", "local", "bwrap"] = Field("auto", description="Sandbox provider.")
    allow_open_network: bool = Field(
        False, description="Run tasks that forbid the network even where the sandbox cannot "
        "cut it (local without root); otherwise such a plan stops at start.")
    write_batch: int = Field(
        1024, ge=1, le=100_000, description="Results per commit batch at most; results "
        "waiting are also committed every half second, so only evals finishing more than "
        "about 2,000 runs a second fill a batch (fewer, larger files to merge).")
    quarantine_after: int = Field(
        3, ge=0, le=10_000, description="Quarantine a task once its runs' attempts ended in "
        "this many infrastructure failures (over all its runs in the eval): its runs not yet "
        "run end 'quarantined' and the eval goes on; 0 turns quarantine off.")
    pool: PoolSpec | None = Field(None, description="Share a pool of slots with other evals "
                                  "(priority, then fair share); see docs/scale.md.")

    @model_validator(mode="after")
    def _heartbeat_shorter(self) -> ExecutionSettings:
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("heartbeat_seconds must be shorter than lease_seconds")
        return self


class FaultSpec(BaseModel):
    """Faults the simulated model injects, as probabilities per request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_limit: float = Field(0.0, ge=0, le=1, description="Share answered 429 with Retry-After.")
    server_error: float = Field(0.0, ge=0, le=1, description="Share answered 500.")
    drop: float = Field(0.0, ge=0, le=1, description="Share whose connection is dropped.")
    hang: float = Field(0.0, ge=0, le=1, description="Share that never answers.")
    retry_after_s: float = Field(1.0, ge=0, le=600, description="Retry-After on 429s.")


class SimulatedModel(BaseModel):
    """One simulated model's behaviour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    skill: float = Field(0.7, ge=0, le=1, description="Success probability on a difficulty-3 task.")
    latency_s: float = Field(0.3, ge=0, le=600, description="Mean response latency.")


class SimulatorSpec(BaseModel):
    """A simulated OpenAI-compatible model server started with the eval (SIMULATED, not a model)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: dict[str, SimulatedModel] = Field(description="Served model names and behaviour.")
    faults: FaultSpec = Field(default_factory=FaultSpec, description="Injected faults.")
    seed: int | None = Field(None, description="Random seed; none means fresh randomness.")


SAMPLE_FRACTIONS = {"smoke": 0.05, "weekly": 0.20, "full": 1.0}
"""Default share of the suite each tier runs: 5% daily smoke, 20% weekly, the full suite at
release."""

STRATA_FIELDS = ("category", "difficulty", "domain", "repository")
"""Task fields a sample may be stratified by."""


class SampleSpec(BaseModel):
    """Run a deterministic stratified sample of the suite instead of all of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tier: Literal["smoke", "weekly", "full"] = Field(
        "full", description="smoke (daily, 5%), weekly (20%) or full (every task).")
    fraction: float | None = Field(None, gt=0, le=1,
                                   description="Share of each stratum to run; default by tier.")
    strata: tuple[Literal["category", "difficulty", "domain", "repository"], ...] = Field(
        ("category",), description="Task fields whose combinations are the strata.")
    seed: int | None = Field(
        None, ge=0, le=2**62,
        description="Which rotation of the suite to run; none takes it from the date (the day "
                    "for smoke, the ISO week for weekly), so successive runs cover the suite.")

    @property
    def share(self) -> float:
        """The fraction of each stratum this sample runs."""
        return self.fraction if self.fraction is not None else SAMPLE_FRACTIONS[self.tier]


class AdaptiveRuns(BaseModel):
    """Adaptive depth: extra runs go where they narrow the interval most."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int = Field(1, ge=1, le=1000, description="Runs every task gets first.")
    max: int = Field(10, ge=1, le=1000, description="Most runs any task gets.")
    target_halfwidth: float = Field(0.02, gt=0, le=0.5,
                                    description="Stop once the 95% interval of each agent's "
                                                "mean is this narrow (half its width).")

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveRuns:
        if self.max < self.min:
            raise ValueError("runs.max must be at least runs.min")
        return self


class CostSettings(BaseModel):
    """What a run costs besides its model calls."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    infra_usd_per_hour: float = Field(0.0, ge=0, le=10_000,
                                      description="On-demand price of one run's sandbox, per "
                                                  "hour it exists.")
    spot_usd_per_hour: float | None = Field(None, ge=0, le=10_000,
                                            description="Spot price, per sandbox hour.")
    capacity: Literal["on_demand", "spot"] = Field("on_demand",
                                                   description="Which of the two rates applies.")
    review_usd_per_run: float = Field(0.0, ge=0, le=10_000,
                                      description="Human review cost of one reviewed run.")
    review_fraction: float = Field(0.0, ge=0, le=1,
                                   description="Share of scored runs sent to human review.")

    @property
    def infra_rate(self) -> float:
        """Dollars per sandbox hour at the capacity in use."""
        if self.capacity == "spot":
            return self.spot_usd_per_hour if self.spot_usd_per_hour is not None \
                else self.infra_usd_per_hour
        return self.infra_usd_per_hour


class RunEstimate(BaseModel):
    """Per-run assumptions for `plan review` where no earlier eval of the task and agent exists."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens_in: int | None = Field(None, ge=0, le=100_000_000, description="Prompt tokens per run.")
    tokens_out: int | None = Field(None, ge=0, le=100_000_000,
                                   description="Completion tokens per run.")
    seconds: float | None = Field(None, ge=0, le=86_400, description="Wall seconds per run.")


class Plan(BaseModel):
    """An evaluation plan: suite, agents, repeats, budget, execution settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", description="Plan name.")
    description: str = Field("", description="What this plan is for.")
    suite: SuiteRef = Field(description="The suite and task filter.")
    agents: tuple[AgentSpec, ...] = Field(min_length=1, description="Agents to evaluate.")
    runs_per_task: int = Field(1, ge=1, le=1000, description="Repeats of each task per agent.")
    runs: AdaptiveRuns | None = Field(None, description="Adaptive depth instead of a fixed "
                                                        "runs_per_task.")
    sample: SampleSpec | None = Field(None, description="Run a stratified sample of the suite.")
    reuse: bool = Field(False, description="Take a run's result from an earlier committed run "
                                           "of the same task, agent, scorer, sandbox and repeat.")
    costs: CostSettings = Field(default_factory=CostSettings,
                                description="Infrastructure and human-review rates.")
    estimate: RunEstimate = Field(default_factory=RunEstimate,
                                  description="Per-run assumptions for plan review.")
    budget_usd: float | None = Field(None, gt=0, le=10_000_000,
                                     description="Stop scheduling once this much is spent.")
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings,
                                         description="Dispatch settings.")
    rate_limits: dict[str, RateLimit] = Field(default_factory=dict,
                                              description="Per-provider limits.")
    resources: dict[str, int] = Field(default_factory=dict,
                                      description="Capacity of scarce resources, e.g. gpu: 2.")
    simulator: SimulatorSpec | None = Field(None, description="Simulated model server to start.")
    base_dir: str = Field("", description="Folder the plan was loaded from (set by the loader).")

    @model_validator(mode="after")
    def _unique_agents(self) -> Plan:
        seen: set[str] = set()
        for agent in self.agents:
            if agent.label in seen:
                raise ValueError(f"agent {agent.label} is listed twice")
            seen.add(agent.label)
        if self.runs is not None and "runs_per_task" in self.model_fields_set:
            raise ValueError("give either runs_per_task (fixed) or runs (adaptive), not both")
        return self

    @model_serializer(mode="wrap")
    def _no_fixed_runs_when_adaptive(self, handler: SerializerFunctionWrapHandler
                                     ) -> dict[str, Any]:
        # the stored plan must load again: runs_per_task (its default) beside runs would not
        out: dict[str, Any] = handler(self)
        if self.runs is not None:
            out.pop("runs_per_task", None)
        return out

    @property
    def first_runs(self) -> int:
        """Runs per task created with the eval: runs_per_task, or runs.min when adaptive."""
        return self.runs.min if self.runs is not None else self.runs_per_task

    @property
    def services_hash(self) -> str:
        """Hash of the services the plan starts (the simulated model's spec), empty without
        any: part of the reuse key, since a run's outcome depends on the model it talked to."""
        if self.simulator is None:
            return ""
        return short_hash(self.simulator.model_dump(mode="json"))

    @property
    def max_runs(self) -> int:
        """The most runs a task can get."""
        return self.runs.max if self.runs is not None else self.runs_per_task

    def resolve(self, rel: str) -> Path:
        """A path from the plan, resolved against the plan's folder."""
        p = Path(rel)
        return (p if p.is_absolute() else Path(self.base_dir or ".") / p).resolve()
