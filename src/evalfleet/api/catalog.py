"""What can be run: the built-in suites and a suite's tasks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalfleet.errors import SpecError
from evalfleet.spec.loaders import load_suite_ref
from evalfleet.spec.task import Suite


def _suite_summary(suite: Suite, ref: str) -> dict[str, Any]:
    cats: dict[str, int] = {}
    for t in suite.tasks:
        cats[t.category] = cats.get(t.category, 0) + 1
    return {"suite": ref, "name": suite.name, "version": suite.version,
            "description": suite.description, "tasks": len(suite.tasks),
            "categories": dict(sorted(cats.items()))}


def list_suites() -> list[dict[str, Any]]:
    """The built-in suites a plan can name (``suite: {builtin: NAME}``), with their task counts
    and categories. A plan may also point at a suite folder or JSONL file (``suite: {path}``)."""
    from evalfleet.spec.loaders import BUILTIN_SUITES
    from evalfleet.spec.plan import SuiteRef

    return [_suite_summary(load_suite_ref(SuiteRef(builtin=name)), name)
            for name in BUILTIN_SUITES]


def list_tasks(suite_ref: str, *, categories: Sequence[str] = ()) -> dict[str, Any]:
    """A suite's tasks (id, category, difficulty, scorer kind): ``suite_ref`` is a built-in
    suite's name or the path of a suite folder or JSONL file.

    Raises:
        SpecError: no such suite, or a category it does not have.
    """
    from evalfleet.spec.loaders import BUILTIN_SUITES, filter_suite
    from evalfleet.spec.plan import SuiteRef

    if suite_ref in BUILTIN_SUITES:
        ref = SuiteRef(builtin=suite_ref, categories=tuple(categories))
    elif Path(suite_ref).exists():
        ref = SuiteRef(path=str(Path(suite_ref).resolve()), categories=tuple(categories))
    else:
        raise SpecError(f"no suite '{suite_ref}': give a built-in suite "
                        f"({', '.join(BUILTIN_SUITES)}) or a suite folder or JSONL file",
                        field="SUITE")
    suite = load_suite_ref(ref.model_copy(update={"categories": ()}))
    summary = _suite_summary(suite, suite_ref)
    suite = filter_suite(suite, ref)
    summary["tasks_listed"] = [
        {"id": t.id, "category": t.category, "difficulty": t.difficulty,
         "scorer": t.scorer.kind, "network": t.network, "timeout_s": t.limits.timeout_s}
        for t in suite.tasks]
    return summary
