"""The top-level package's public API is exactly what we meant, resolves, and stays cheap to
import."""

from __future__ import annotations

import subprocess
import sys

import evalfleet
from evalfleet import api

PUBLIC = {
    "__version__",
    # running and reading evals
    "run", "resume", "status", "report", "compare", "query", "show_run", "check_plan",
    "plan_power", "list_suites", "list_tasks", "EvalSummary",
    # describing what runs
    "Plan", "Suite", "Task", "AgentSpec", "ScorerSpec", "Limits", "RunResult", "load_plan",
    "load_suite", "Settings", "load_settings",
    # errors
    "EvalfleetError", "SpecError", "StoreError", "UnknownEvalError", "RunError", "AgentError",
    "TaskTimeoutError", "InfraError", "RateLimitedError", "ScorerError", "ConfigError",
}

API = {"CLUSTER_KEYS", "EvalSummary", "ProgressHook", "check_plan", "compact", "compare",
       "compare_text",
       "costs", "create_eval", "dumps", "execute", "export_runs", "import_inspect",
       "import_jsonl", "list_suites", "list_tasks", "open_reader",
       "open_store", "plan_power", "query", "report", "report_text", "resolve_eval_id",
       "resume", "review_plan", "run", "run_ids", "set_reference", "show_run", "slice_runs",
       "status", "trends", "validate_plan",
       "pin_trajectory", "retention_apply", "retention_policy", "retention_show",
       "trajectory_pins", "unpin_trajectory"}


def test_top_level_names_are_exactly_the_public_api() -> None:
    assert set(evalfleet.__all__) == PUBLIC
    assert len(evalfleet.__all__) == len(PUBLIC)  # no name listed twice
    for name in PUBLIC:
        assert getattr(evalfleet, name) is not None, name
    assert evalfleet.run is api.run and evalfleet.report is api.report
    assert issubclass(evalfleet.ConfigError, evalfleet.RunError)


def test_unknown_top_level_name_is_an_attribute_error() -> None:
    try:
        evalfleet.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("evalfleet.no_such_name resolved")


def test_api_facade_names() -> None:
    assert set(api.__all__) == API
    for name in API:
        assert hasattr(api, name), name


def test_import_evalfleet_is_cheap() -> None:
    code = ("import sys, evalfleet\nevalfleet.Plan\n"
            "print([m for m in ('duckdb', 'pyarrow', 'scipy', 'statsmodels', 'sqlalchemy', "
            "'evalfleet.api', 'evalfleet.store') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_never_raised_exception_classes_are_gone() -> None:
    import evalfleet.errors as errors

    for name in ("BudgetExhaustedError", "MissingDependencyError", "CancelledRunError"):
        assert not hasattr(errors, name), name
