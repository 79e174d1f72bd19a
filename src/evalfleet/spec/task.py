"""Tasks and suites."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evalfleet._util import short_hash
from evalfleet._util.paths import PathEscapeError, check_relative

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,199}$"


class ScorerSpec(BaseModel):
    """Which scorer grades a task, by registry name, with JSON arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(description="Scorer name: tests, exact, includes, regex, python or a plugin.")
    args: dict[str, Any] = Field(default_factory=dict, description="Scorer arguments.")


class Limits(BaseModel):
    """Resource limits for one run of a task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(120.0, gt=0, le=86_400, description="Wall-clock limit of the run.")
    cpu_s: int = Field(60, gt=0, le=86_400, description="CPU seconds per sandbox process.")
    memory_mb: int = Field(1024, ge=16, le=262_144, description="Address-space limit per process.")
    file_size_mb: int = Field(64, ge=1, le=65_536, description="Largest file a process may write.")
    max_processes: int = Field(64, ge=1, le=4096, description="Processes the sandbox may run.")
    max_output_bytes: int = Field(1_000_000, ge=1024, le=1 << 30,
                                  description="Stdout/stderr kept per command (rest truncated).")
    max_steps: int = Field(20, ge=1, le=10_000, description="Model calls an agent may make.")


def _check_paths(files: dict[str, str]) -> dict[str, str]:
    for rel in files:
        try:
            check_relative(rel)
        except PathEscapeError as exc:
            raise ValueError(str(exc)) from None
    return files


_SHARED_LIMITS: dict[Limits, Limits] = {}
_SHARED_SCORERS: dict[str, ScorerSpec] = {}


class Task(BaseModel):
    """One problem of a suite. ``task_hash`` covers everything that affects the outcome."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_ID_PATTERN, description="Unique id within the suite.")
    input: str = Field(description="The prompt or instruction given to the agent.")
    category: str = Field("general", min_length=1, max_length=100, description="Report category.")
    difficulty: int = Field(3, ge=1, le=5, description="Difficulty from 1 (easy) to 5 (hard).")
    domain: str = Field("", max_length=100, description="Broad domain, e.g. code or math.")
    tags: tuple[str, ...] = Field((), description="Free-form labels.")
    metadata: dict[str, Any] = Field(default_factory=dict,
                                     description="Extra facts, e.g. repository.")
    files: dict[str, str] = Field(default_factory=dict,
                                  description="Files written into the sandbox before the agent.")
    hidden_files: dict[str, str] = Field(default_factory=dict,
                                         description="Files written only for the scorer.")
    setup: tuple[str, ...] = Field((), description="Shell commands run before the agent.")
    target: str | list[str] | None = Field(None, description="Expected answer for text scorers.")
    scorer: ScorerSpec = Field(description="How the run is graded.")
    limits: Limits = Field(default_factory=Limits, validate_default=True,
                           description="Resource limits.")
    resources: dict[str, int] = Field(default_factory=dict,
                                      description="Scarce resources held, e.g. gpu: 1.")
    network: bool = Field(False, description="Whether sandbox code may use the network.")

    _check_files = field_validator("files", "hidden_files")(_check_paths)

    @field_validator("limits")
    @classmethod
    def _share_limits(cls, v: Limits) -> Limits:
        # tasks of a suite nearly always share their limits: keep one object, not one per task
        return _SHARED_LIMITS.setdefault(v, v)

    @field_validator("scorer")
    @classmethod
    def _share_scorer(cls, v: ScorerSpec) -> ScorerSpec:
        return _SHARED_SCORERS.setdefault(v.model_dump_json(), v)

    @field_validator("resources")
    @classmethod
    def _check_resources(cls, v: dict[str, int]) -> dict[str, int]:
        for name, count in v.items():
            if count < 0 or count > 1024:
                raise ValueError(f"resource '{name}' must be between 0 and 1024, got {count}")
        return v

    @cached_property
    def task_hash(self) -> str:
        """Hash of everything that affects a run's outcome."""
        return short_hash(self.model_dump(mode="json", exclude={"tags", "metadata"}))

    @property
    def repository(self) -> str:
        """The task's repository, from metadata, or an empty string."""
        return str(self.metadata.get("repository", ""))




class Suite(BaseModel):
    """A named, versioned set of tasks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, description="Suite name.")
    version: str = Field("1", description="Suite version.")
    description: str = Field("", description="What the suite measures.")
    tasks: tuple[Task, ...] = Field(description="The tasks, in a stable order.")

    @cached_property
    def suite_hash(self) -> str:
        """Hash of the name, version and every task hash."""
        return short_hash(self.name, self.version, [t.task_hash for t in self.tasks])

    @cached_property
    def by_id(self) -> dict[str, Task]:
        """Tasks keyed by id."""
        return {t.id: t for t in self.tasks}
