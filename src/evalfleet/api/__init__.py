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
- :mod:`~evalfleet.api.power`: planning from power;
- :mod:`~evalfleet.api.review`: what a plan will cost, take and detect, before it runs;
- :mod:`~evalfleet.api.output`: JSON, Markdown and HTML output.
"""

from evalfleet.api.catalog import list_suites, list_tasks
from evalfleet.api.costs import costs
from evalfleet.api.driver import EvalSummary, ProgressHook, execute, resume, run
from evalfleet.api.evals import create_eval, run_ids
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
from evalfleet.api.review import review_plan
from evalfleet.api.validation import check_plan, validate_plan

__all__ = [
    "CLUSTER_KEYS",
    "EvalSummary",
    "ProgressHook",
    "check_plan",
    "compare",
    "compare_text",
    "costs",
    "create_eval",
    "dumps",
    "execute",
    "list_suites",
    "list_tasks",
    "open_reader",
    "open_store",
    "plan_power",
    "query",
    "report",
    "report_text",
    "resolve_eval_id",
    "resume",
    "review_plan",
    "run",
    "run_ids",
    "show_run",
    "status",
    "validate_plan",
]
