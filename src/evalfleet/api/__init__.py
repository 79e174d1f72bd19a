"""The library facade: everything the CLI (and a future server) does, as plain functions.

Each concept has one module, public so that other front ends can reach it without private
names:

- :mod:`~evalfleet.api.validation`: checking a plan across layers before anything runs;
- :mod:`~evalfleet.api.evals`: new evals and their runs' deterministic ids;
- :mod:`~evalfleet.api.journal_port`: the store seen through the dispatcher's journal port;
- :mod:`~evalfleet.api.driver`: driving an eval (run, resume) and how it ended;
- :mod:`~evalfleet.api.reads`: read-only status, reports, comparisons, queries, single runs;
- :mod:`~evalfleet.api.catalog`: the suites and tasks that can be run;
- :mod:`~evalfleet.api.costs`: spend across every eval of a home;
- :mod:`~evalfleet.api.imports` / :mod:`~evalfleet.api.exports`: Inspect AI logs and JSON Lines
  in, Parquet and CSV out;
- :mod:`~evalfleet.api.maintenance`: compaction of a home's results files;
- :mod:`~evalfleet.api.retention`: tiered retention of trajectories, and pinned ones;
- :mod:`~evalfleet.api.power`: planning from power;
- :mod:`~evalfleet.api.review`: what a plan will cost, take and detect, before it runs;
- :mod:`~evalfleet.api.slices`: one structured question over every run, with intervals;
- :mod:`~evalfleet.api.output`: JSON, Markdown and HTML output.

Names are imported when first used, so a command pays only for the modules it needs (the
driver's imports cost a reader a second).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalfleet._util.imports import lazy_exports

_EXPORTS: dict[str, str] = {
    "list_suites": "evalfleet.api.catalog",
    "list_tasks": "evalfleet.api.catalog",
    "costs": "evalfleet.api.costs",
    "EvalSummary": "evalfleet.api.driver",
    "ProgressHook": "evalfleet.api.driver",
    "execute": "evalfleet.api.driver",
    "resume": "evalfleet.api.driver",
    "run": "evalfleet.api.driver",
    "create_eval": "evalfleet.api.evals",
    "export_runs": "evalfleet.api.exports",
    "import_inspect": "evalfleet.api.imports",
    "import_jsonl": "evalfleet.api.imports",
    "compact": "evalfleet.api.maintenance",
    "run_ids": "evalfleet.api.evals",
    "compare_text": "evalfleet.api.output",
    "dumps": "evalfleet.api.output",
    "report_text": "evalfleet.api.output",
    "plan_power": "evalfleet.api.power",
    "CLUSTER_KEYS": "evalfleet.api.reads",
    "compare": "evalfleet.api.reads",
    "open_reader": "evalfleet.api.reads",
    "open_store": "evalfleet.api.reads",
    "query": "evalfleet.api.reads",
    "report": "evalfleet.api.reads",
    "resolve_eval_id": "evalfleet.api.reads",
    "show_run": "evalfleet.api.reads",
    "status": "evalfleet.api.reads",
    "review_plan": "evalfleet.api.review",
    "pin_trajectory": "evalfleet.api.retention",
    "retention_apply": "evalfleet.api.retention",
    "retention_policy": "evalfleet.api.retention",
    "retention_show": "evalfleet.api.retention",
    "trajectory_pins": "evalfleet.api.retention",
    "unpin_trajectory": "evalfleet.api.retention",
    "set_reference": "evalfleet.api.trends",
    "trends": "evalfleet.api.trends",
    "slice_runs": "evalfleet.api.slices",
    "check_plan": "evalfleet.api.validation",
    "validate_plan": "evalfleet.api.validation",
}

__all__ = [
    "CLUSTER_KEYS",
    "EvalSummary",
    "ProgressHook",
    "check_plan",
    "compact",
    "compare",
    "compare_text",
    "costs",
    "create_eval",
    "dumps",
    "execute",
    "export_runs",
    "import_inspect",
    "import_jsonl",
    "list_suites",
    "list_tasks",
    "open_reader",
    "open_store",
    "pin_trajectory",
    "plan_power",
    "query",
    "report",
    "report_text",
    "resolve_eval_id",
    "resume",
    "retention_apply",
    "retention_policy",
    "retention_show",
    "review_plan",
    "run",
    "run_ids",
    "set_reference",
    "show_run",
    "slice_runs",
    "status",
    "trajectory_pins",
    "trends",
    "unpin_trajectory",
    "validate_plan",
]

if TYPE_CHECKING:
    from evalfleet.api.catalog import list_suites, list_tasks
    from evalfleet.api.costs import costs
    from evalfleet.api.driver import EvalSummary, ProgressHook, execute, resume, run
    from evalfleet.api.evals import create_eval, run_ids
    from evalfleet.api.exports import export_runs
    from evalfleet.api.imports import import_inspect, import_jsonl
    from evalfleet.api.maintenance import compact
    from evalfleet.api.output import compare_text, dumps, report_text
    from evalfleet.api.power import plan_power
    from evalfleet.api.reads import (
        CLUSTER_KEYS,
        compare,
        open_reader,
        open_store,
        query,
        report,
        resolve_eval_id,
        show_run,
        status,
    )
    from evalfleet.api.retention import (
        pin_trajectory,
        retention_apply,
        retention_policy,
        retention_show,
        trajectory_pins,
        unpin_trajectory,
    )
    from evalfleet.api.review import review_plan
    from evalfleet.api.slices import slice_runs
    from evalfleet.api.trends import set_reference, trends
    from evalfleet.api.validation import check_plan, validate_plan


__getattr__, __dir__ = lazy_exports('evalfleet.api', globals(), _EXPORTS)
