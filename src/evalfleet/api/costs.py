"""Spend across every eval of a home, read-only: by eval type, model tier and task category.

Like the other readers it opens the store with ``open_reader``: it creates, sweeps and locks
nothing, and may run while a driver writes.
"""

from __future__ import annotations

import time
from typing import Any

from evalfleet.api.reads import open_reader
from evalfleet.cost.prices import load_price_table
from evalfleet.errors import SpecError
from evalfleet.settings import Settings, load_settings
from evalfleet.spec.plan import Plan

MAX_DAYS = 36_500.0
"""The longest ``--since`` window accepted (a century)."""


def costs(*, settings: Settings | None = None, since_days: float | None = None) -> dict[str, Any]:
    """What every eval of the home (or those created in the last ``since_days`` days) cost.

    Model and infrastructure dollars are summed from the committed results rows; human review
    is the expected ``review_fraction x scored runs x review_usd_per_run`` of each eval's plan.
    Each breakdown (``by_eval_type``, ``by_model_tier``, ``by_category``) partitions the same
    rows, so its parts add up to ``total``. ``unpriced`` lists the agents whose model has no
    price now (their model dollars are unknown, not 0).

    Raises:
        SpecError: ``since_days`` is not a positive number of days.
        UnknownEvalError: the home has no journal.
    """
    if since_days is not None and not 0 < since_days <= MAX_DAYS:
        raise SpecError(f"must be a number of days in (0, {MAX_DAYS:g}], not "
                        f"{since_days:g}", field="--since")
    settings = settings or load_settings()
    # analysis (duckdb, scipy) is imported where it is used, as in the other readers
    from evalfleet.analysis.cost import add_up, columns, eval_type, spend_row, spend_sql
    from evalfleet.store.warehouse import connect

    prices = load_price_table(settings.prices)
    store = open_reader(settings)
    try:
        cutoff = time.time() - since_days * 86_400 if since_days is not None else None
        rows = [e for e in store.journal.list_evals()
                if cutoff is None or float(e.get("created_at") or 0) >= cutoff]
        plans = {e["eval_id"]: Plan.model_validate(store.journal.get_eval(e["eval_id"])["plan"])
                 for e in rows}
        paths = sorted(p for e in rows for p in store.results_paths(e["eval_id"]))
        con = connect(store.home, paths)
        try:
            groups = con.execute(spend_sql(
                columns(con), ("eval_id", "coalesce(model_tier, 'standard')",
                               "coalesce(category, '')"))).fetchall() if paths else []
        finally:
            con.close()
    finally:
        store.close()
    # one part per (eval, model tier, category): its keys and its spend
    parts: list[tuple[dict[str, str], dict[str, Any]]] = []
    for g in groups:
        plan = plans.get(g[0])
        if plan is not None:
            parts.append(({"eval_type": eval_type(plan), "model_tier": str(g[1]),
                           "category": str(g[2])}, spend_row(g, plan.costs)))
    evals_by_type: dict[str, int] = {}
    for plan in plans.values():
        evals_by_type[eval_type(plan)] = evals_by_type.get(eval_type(plan), 0) + 1

    def by(key: str) -> list[dict[str, Any]]:
        return [{key: k, **add_up([sp for keys, sp in parts if keys[key] == k])}
                for k in sorted({keys[key] for keys, _ in parts})]

    return {
        "home": str(settings.home), "since_days": since_days, "evals": len(plans),
        "total": add_up([sp for _, sp in parts]),
        "by_eval_type": [{**row, "evals": evals_by_type.get(row["eval_type"], 0)}
                         for row in by("eval_type")],
        "by_model_tier": by("model_tier"),
        "by_category": by("category"),
        "unpriced": [{"eval_id": eid, "agent": a.label, "model": a.model}
                     for eid, plan in plans.items() for a in prices.unpriced(plan.agents)],
        "review_note": "review is expected (review_fraction x scored runs x "
                       "review_usd_per_run of each plan), not metered",
    }
