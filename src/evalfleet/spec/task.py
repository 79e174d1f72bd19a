"""Tasks and suites."""

from __future__ import annotations

import ast
import posixpath
import re
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evalfleet._util import short_hash
from evalfleet._util.paths import PathEscapeError, check_relative

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,199}$"

GRADING_VERSION = "1"
"""Version of how evalfleet's built-in scorers turn an answer into a verdict (test harness,
answer extraction, tamper checks). Bump it when a release may grade the same answer
differently: results graded before then are no longer reused (``reuse: true``)."""


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
    memory_mb: int = Field(1024, ge=16, le=262_144,
                           description="Memory of all the run's processes together, its files "
                                       "in the sandbox included (also per process).")
    file_size_mb: int = Field(64, ge=1, le=65_536, description="Largest file a process may write.")
    max_processes: int = Field(64, ge=1, le=4096,
                               description="Processes and threads the run may hold at once.")
    disk_mb: int = Field(1024, ge=1, le=1_048_576,
                         description="Total size of the run's files: work dir, home, tmp.")
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


def _base_names(cls: ast.ClassDef) -> list[str]:
    names = []
    for base in cls.bases:
        if isinstance(base, ast.Name):
            names.append(base.id)
        elif isinstance(base, ast.Attribute):
            names.append(base.attr)
    return names


def unittest_ids(module: str, source: str) -> list[str]:
    """The ids ``module.Class.method`` unittest gives the tests a test file defines.

    A test class is a top-level class deriving from a ``...TestCase`` class, directly or through
    classes of the same file; its tests are the methods named ``test*``, inherited ones included.
    Tests that unittest would find only at run time (generated methods, ``load_tests``) are not
    seen: list those in ``expected_tests``.

    Raises:
        ValueError: the source is not valid Python.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"hidden test file of module '{module}' is not valid Python: "
                         f"{exc.msg} (line {exc.lineno})") from None
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def is_test_class(name: str, seen: frozenset[str]) -> bool:
        return any(b.endswith("TestCase") or (b in classes and b not in seen
                                               and is_test_class(b, seen | {b}))
                   for b in _base_names(classes[name]))

    def methods(name: str, seen: frozenset[str]) -> set[str]:
        own = {n.name for n in classes[name].body
               if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
               and n.name.startswith("test")}
        for b in _base_names(classes[name]):
            if b in classes and b not in seen:
                own |= methods(b, seen | {b})
        return own

    return [f"{module}.{name}.{m}" for name in classes if is_test_class(name, frozenset({name}))
            for m in sorted(methods(name, frozenset({name})))]


def _with_expected_tests(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the unittest ``tests`` scorer's test files and expected ids filled in from
    the hidden files, so that they are part of the task (and of its hash)."""
    scorer = data.get("scorer")
    kind: Any
    if isinstance(scorer, ScorerSpec):
        kind, args = scorer.kind, dict(scorer.args)
    elif isinstance(scorer, dict) and isinstance(scorer.get("args", {}), dict):
        kind, args = scorer.get("kind"), dict(scorer.get("args") or {})
    else:
        return data
    hidden = data.get("hidden_files") or {}
    if kind != "tests" or args.get("runner", "unittest") != "unittest" or "command" in args \
            or not isinstance(hidden, dict):
        return data
    if "tests" not in args:
        args["tests"] = sorted(p for p in hidden if isinstance(p, str) and p.endswith(".py")
                               and posixpath.basename(p).startswith("test"))
    if "expected_tests" not in args and isinstance(args["tests"], list):
        ids: list[str] = []
        for rel in args["tests"]:
            text = hidden.get(rel)
            if not isinstance(text, str):
                raise ValueError(f"tests scorer: test file '{rel}' is not a hidden file")
            ids += unittest_ids(posixpath.splitext(posixpath.basename(rel))[0], text)
        if not ids:
            raise ValueError("tests scorer: no unittest test method found in the hidden test "
                             "files; list the test ids in 'expected_tests'")
        args["expected_tests"] = ids
    return {**data, "scorer": {"kind": kind, "args": args}}


def _check_text_scorer(scorer: ScorerSpec, target: str | list[str] | None) -> None:
    if scorer.kind not in ("exact", "includes", "regex"):
        return
    pattern = scorer.args.get("pattern") if scorer.kind == "regex" else None
    if target is None and pattern is None:
        raise ValueError(f"the {scorer.kind} scorer needs a 'target'")
    if scorer.kind == "regex":
        sources = [pattern] if pattern is not None else \
            ([target] if isinstance(target, str) else list(target or []))
        for src in sources:
            if not isinstance(src, str):
                continue  # the scorer's own argument check reports it
            try:
                re.compile(src)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {src!r}: {exc}") from None


_SHARED_LIMITS: dict[tuple[Any, ...], Limits] = {}
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

    @model_validator(mode="before")
    @classmethod
    def _derive_expected_tests(cls, data: Any) -> Any:
        return _with_expected_tests(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _check_scorer_inputs(self) -> Task:
        _check_text_scorer(self.scorer, self.target)
        return self

    @field_validator("limits")
    @classmethod
    def _share_limits(cls, v: Limits) -> Limits:
        # tasks of a suite nearly always share their limits: keep one object, not one per task
        # keyed by the field values: a pydantic model's own __eq__ costs 70 us a task
        return _SHARED_LIMITS.setdefault(tuple(v.__dict__.values()), v)

    @field_validator("scorer")
    @classmethod
    def _share_scorer(cls, v: ScorerSpec) -> ScorerSpec:
        # repr, not model_dump_json (cheaper); equal args in another order merely share less
        return _SHARED_SCORERS.setdefault(repr((v.kind, v.args)), v)

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
