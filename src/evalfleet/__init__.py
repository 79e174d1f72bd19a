"""evalfleet: AI-agent evaluation as a production service.

The public API, for scripts and notebooks::

    import evalfleet

    summary = evalfleet.run("plan.yaml")
    rep = evalfleet.report(summary.eval_id)
    cmp = evalfleet.compare([f"{summary.eval_id}/agent@1", f"{summary.eval_id}/agent@2"])

Names are imported on first use, so ``import evalfleet`` stays cheap (the command line's
``--help`` loads none of the analysis or storage libraries).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalfleet._util.imports import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # running and reading evals
    "run": "evalfleet.api", "resume": "evalfleet.api", "status": "evalfleet.api",
    "report": "evalfleet.api", "compare": "evalfleet.api", "query": "evalfleet.api",
    "show_run": "evalfleet.api", "check_plan": "evalfleet.api", "plan_power": "evalfleet.api",
    "list_suites": "evalfleet.api", "list_tasks": "evalfleet.api",
    "EvalSummary": "evalfleet.api",
    # describing what runs
    "Plan": "evalfleet.spec", "Suite": "evalfleet.spec", "Task": "evalfleet.spec",
    "AgentSpec": "evalfleet.spec", "ScorerSpec": "evalfleet.spec", "Limits": "evalfleet.spec",
    "RunResult": "evalfleet.spec", "load_plan": "evalfleet.spec", "load_suite": "evalfleet.spec",
    "Settings": "evalfleet.settings", "load_settings": "evalfleet.settings",
    # errors
    "EvalfleetError": "evalfleet.errors", "SpecError": "evalfleet.errors",
    "StoreError": "evalfleet.errors", "UnknownEvalError": "evalfleet.errors",
    "RunError": "evalfleet.errors", "AgentError": "evalfleet.errors",
    "TaskTimeoutError": "evalfleet.errors", "InfraError": "evalfleet.errors",
    "RateLimitedError": "evalfleet.errors", "ScorerError": "evalfleet.errors",
    "ConfigError": "evalfleet.errors",
}

__all__ = [
    "AgentError",
    "AgentSpec",
    "ConfigError",
    "EvalSummary",
    "EvalfleetError",
    "InfraError",
    "Limits",
    "Plan",
    "RateLimitedError",
    "RunError",
    "RunResult",
    "ScorerError",
    "ScorerSpec",
    "Settings",
    "SpecError",
    "StoreError",
    "Suite",
    "Task",
    "TaskTimeoutError",
    "UnknownEvalError",
    "__version__",
    "check_plan",
    "compare",
    "list_suites",
    "list_tasks",
    "load_plan",
    "load_settings",
    "load_suite",
    "plan_power",
    "query",
    "report",
    "resume",
    "run",
    "show_run",
    "status",
]

if TYPE_CHECKING:
    from evalfleet.api import (
        EvalSummary,
        check_plan,
        compare,
        list_suites,
        list_tasks,
        plan_power,
        query,
        report,
        resume,
        run,
        show_run,
        status,
    )
    from evalfleet.errors import (
        AgentError,
        ConfigError,
        EvalfleetError,
        InfraError,
        RateLimitedError,
        RunError,
        ScorerError,
        SpecError,
        StoreError,
        TaskTimeoutError,
        UnknownEvalError,
    )
    from evalfleet.settings import Settings, load_settings
    from evalfleet.spec import (
        AgentSpec,
        Limits,
        Plan,
        RunResult,
        ScorerSpec,
        Suite,
        Task,
        load_plan,
        load_suite,
    )


__getattr__, __dir__ = lazy_exports('evalfleet', globals(), _EXPORTS)
