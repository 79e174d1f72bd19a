"""The evalfleet exception tree.

```
EvalfleetError
├── SpecError                 bad plan, suite, task or argument (exit 2): file, line, field
├── StoreError                journal / warehouse problems
│   └── UnknownEvalError      no eval with that id (exit code 2)
└── RunError                  one attempt at a run failed; ``error_kind`` drives policy
    ├── AgentError            agent raised or gave invalid output  (terminal, counts as fail)
    ├── TaskTimeoutError      the task's own time limit            (terminal, counts as fail)
    ├── InfraError            sandbox, model 429/5xx, connection   (transient, retried)
    │   └── RateLimitedError  the provider said 429 (Retry-After)
    ├── ScorerError           the task's scorer broke, not the agent (terminal, not counted)
    └── ConfigError           credentials, unknown model, 401/403  (stops the eval, exit 2)
```

A budget stop is not an exception: the eval ends with status ``budget_stopped`` (exit code 3)
and its never-started runs are recorded as ``cancelled``.

Every exception keeps its constructor arguments in ``args`` so it survives pickling (Ray
re-raises worker exceptions on the driver).
"""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorKind = Literal["agent_error", "task_timeout", "infra_error", "scorer_error", "config_error",
                    "cancelled"]


class EvalfleetError(Exception):
    """Base of every error evalfleet raises on purpose."""

    exit_code: ClassVar[int] = 1


class SpecError(EvalfleetError):
    """Bad user input: a plan, suite, task or argument. The message names file, line and field."""

    exit_code: ClassVar[int] = 2

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        super().__init__(message, source, line, field)
        self.message = message
        self.source = source
        self.line = line
        self.field = field

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_spec_error, (self.message, self.source, self.line, self.field))

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = self.source + (f":{self.line}" if self.line else "")
        fld = f" field '{self.field}'" if self.field else ""
        prefix = f"{where}:{fld}" if where else (fld.strip() + ":" if fld else "")
        return f"{prefix} {self.message}".strip()


def _rebuild_spec_error(message: str, source: str | None, line: int | None,
                        field: str | None) -> SpecError:
    return SpecError(message, source=source, line=line, field=field)


class StoreError(EvalfleetError):
    """The journal or warehouse is unusable or inconsistent."""


class UnknownEvalError(StoreError):
    """No eval with the given id exists under this home."""

    exit_code: ClassVar[int] = 2




class RunError(EvalfleetError):
    """One attempt at a run failed. Subclasses set ``error_kind`` and ``transient``."""

    error_kind: ClassVar[ErrorKind] = "agent_error"
    transient: ClassVar[bool] = False


class AgentError(RunError):
    """The agent raised, produced invalid output or exceeded its step or token limit."""

    error_kind: ClassVar[ErrorKind] = "agent_error"


class TaskTimeoutError(RunError):
    """The task's own time limit was reached."""

    error_kind: ClassVar[ErrorKind] = "task_timeout"


class InfraError(RunError):
    """Infrastructure failed (sandbox, model API, connection, worker); the run is retried."""

    error_kind: ClassVar[ErrorKind] = "infra_error"
    transient: ClassVar[bool] = True


class RateLimitedError(InfraError):
    """The provider refused with 429; ``retry_after`` seconds if it said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after)
        self.retry_after = retry_after

    def __str__(self) -> str:
        return str(self.args[0])


class ScorerError(RunError):
    """The task's scorer raised, timed out or returned no valid number through no act of the
    agent; the run is missing data, excluded from the agent's score and reported."""

    error_kind: ClassVar[ErrorKind] = "scorer_error"


class ConfigError(RunError):
    """The eval is misconfigured (missing credentials, unknown model, 401/403 from a provider):
    no run can succeed, so the eval stops with exit code 2 instead of scoring the agent 0."""

    error_kind: ClassVar[ErrorKind] = "config_error"
    exit_code: ClassVar[int] = 2
