"""What an eval cost, and where the money went.

Every results row carries ``cost_usd`` (model dollars of all the run's attempts, from metered
input, cached-input and output tokens) and ``infra_cost_usd`` (sandbox seconds of all attempts x
the plan's infra rate / 3600). Their sum is the run's total, which budgets and ``status`` count.
Human review is not metered (evalfleet has no review queue): its cost is the *expected*
``review_fraction x scored runs x review_usd_per_run`` from the plan's ``costs``.

The breakdowns (by task category, by model tier, by eval type) each partition the same rows, so
each one's parts add up to its totals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evalfleet import stats
from evalfleet.cost.prices import AgentPrice
from evalfleet.spec.agent import AgentSpec
from evalfleet.spec.plan import CostSettings, Plan
from evalfleet.store.warehouse import SCORED_SQL

"""The rows that count in scores (the report's definition), and so may be sent to review."""

_MONEY = ("model_usd", "infra_usd", "total_usd", "review_usd_expected", "total_with_review_usd")
_COUNTS = ("runs", "scored_runs", "successes", "tokens_in", "tokens_cached", "tokens_out")


def eval_type(plan: Plan) -> str:
    """The sample tier the eval ran (smoke, weekly, full); ``full`` without a sample."""
    return plan.sample.tier if plan.sample is not None else "full"


def columns(con: Any) -> set[str]:
    """The columns of the ``runs`` view (results written before a column existed lack it)."""
    return {d[0] for d in con.execute("SELECT * FROM runs LIMIT 0").description or []}


def _num(cols: set[str], name: str) -> str:
    return f"coalesce({name}, 0)" if name in cols else "0"


def spend_sql(cols: set[str], group: Sequence[str] = (), where: str = "TRUE") -> str:
    """The ``group`` expressions, then runs, scored runs, successes, model and infra dollars
    and tokens in, cached and out (:data:`SPEND_FIELDS`), one row per group, over the rows
    matching ``where``."""
    keys = "".join(f"{g}, " for g in group)
    tail = f" GROUP BY {', '.join(group)} ORDER BY {', '.join(group)}" if group else ""
    return (f"SELECT {keys}count(*), sum(CASE WHEN {SCORED_SQL} THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN passed THEN 1 ELSE 0 END), "
            f"coalesce(sum({_num(cols, 'cost_usd')}), 0), "
            f"coalesce(sum({_num(cols, 'infra_cost_usd')}), 0), "
            f"coalesce(sum({_num(cols, 'tokens_in')}), 0), "
            f"coalesce(sum({_num(cols, 'tokens_cached')}), 0), "
            f"coalesce(sum({_num(cols, 'tokens_out')}), 0) "
            f"FROM runs WHERE {where}{tail}")


SPEND_FIELDS = 8
"""Aggregates at the end of each :func:`spend_sql` row."""


def spend_row(values: Sequence[Any], costs: CostSettings) -> dict[str, Any]:
    """The aggregates of a :func:`spend_sql` row (its last :data:`SPEND_FIELDS` values) as a
    dictionary, with the expected review cost under ``costs``."""
    runs, scored, succ, model, infra, tin, tcached, tout = values[-SPEND_FIELDS:]
    review = costs.review_fraction * int(scored or 0) * costs.review_usd_per_run
    model, infra = float(model), float(infra)
    return {"runs": int(runs), "scored_runs": int(scored or 0), "successes": int(succ or 0),
            "model_usd": model, "infra_usd": infra, "total_usd": model + infra,
            "review_usd_expected": review, "total_with_review_usd": model + infra + review,
            "tokens_in": int(tin), "tokens_cached": int(tcached), "tokens_out": int(tout)}


def add_up(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The sum of spend dictionaries (money and counts)."""
    out: dict[str, Any] = {k: 0.0 for k in _MONEY}
    out.update({k: 0 for k in _COUNTS})
    for p in parts:
        for k in (*_MONEY, *_COUNTS):
            out[k] += p[k]
    return out


def _per_task_total(con: Any, cols: set[str], name: str,
                    version: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    tbl = con.execute(f"""
        SELECT avg({_num(cols, 'cost_usd')} + {_num(cols, 'infra_cost_usd')}) AS cost,
               avg(CASE WHEN passed THEN 1.0 ELSE 0.0 END) AS rate
        FROM runs WHERE agent_name = ? AND agent_version = ? AND {SCORED_SQL}
        GROUP BY task_id ORDER BY task_id""", [name, version]).fetchnumpy()
    # as arrays, not 50,000 Python tuples
    return (np.asarray(tbl["cost"], dtype=float), np.asarray(tbl["rate"], dtype=float))


def agent_cost(con: Any, spec: AgentSpec, plan: Plan,
               price: AgentPrice | None) -> dict[str, Any]:
    """One agent's cost section: model, infra, total and expected review dollars, tokens
    (in, cached, out), mean per run and per success (delta-method interval over tasks), by
    category; whether its model is unpriced and where its price came from."""
    cols = columns(con)
    where = "agent_name = ? AND agent_version = ?"
    params = [spec.name, spec.version]
    total = spend_row(con.execute(spend_sql(cols, (), where), params).fetchone(), plan.costs)
    cats = [{"category": r[0], **spend_row(r, plan.costs)}
            for r in con.execute(spend_sql(cols, ("category",), where), params).fetchall()]
    cps: dict[str, Any] = {"estimate": None, "se": None, "ci_low": None, "ci_high": None}
    per_task_cost, per_task_rate = _per_task_total(con, cols, spec.name, spec.version)
    if per_task_cost.size and total["successes"]:
        c = stats.cost_per_success(per_task_cost, per_task_rate)
        cps = {"estimate": _finite(c.estimate), "se": _finite(c.se),
               "ci_low": _finite(c.ci_low), "ci_high": _finite(c.ci_high), "method": c.method}
    return agent_cost_section(total, plan, spec, price, cps, cats)


def agent_cost_section(total: dict[str, Any], plan: Plan, spec: AgentSpec,
                       price: AgentPrice | None, cps: dict[str, Any],
                       cats: list[dict[str, Any]]) -> dict[str, Any]:
    """An agent's ``cost`` section from its totals, its cost per success (``cps``) and its
    breakdown by category: the price it was charged at and the means per run beside them."""
    runs = total["runs"]
    return {
        **total,
        "eval_type": eval_type(plan),
        "model_tier": spec.tier or "standard",
        "price_source": price.source if price is not None else None,
        "unpriced": bool(price is not None and price.unpriced),
        "mean_per_run": total["total_usd"] / runs if runs else None,
        "model_mean_per_run": total["model_usd"] / runs if runs else None,
        "infra_mean_per_run": total["infra_usd"] / runs if runs else None,
        "per_success": cps["estimate"], "per_success_ci": cps,
        "by_category": cats,
    }


def eval_cost(con: Any, plan: Plan, agent_costs: list[dict[str, Any]]) -> dict[str, Any]:
    """The eval's cost: totals, the rates used, and the breakdowns by model tier (the agents'
    tiers) and by task category, over every agent."""
    cols = columns(con)
    total = spend_row(con.execute(spend_sql(cols)).fetchone(), plan.costs)
    tiers: dict[str, list[dict[str, Any]]] = {}
    for a in agent_costs:
        tiers.setdefault(a["model_tier"], []).append(a)
    by_tier = [{"model_tier": tier, **add_up(parts)} for tier, parts in sorted(tiers.items())]
    by_cat = [{"category": r[0], **spend_row(r, plan.costs)}
              for r in con.execute(spend_sql(cols, ("category",))).fetchall()]
    return cost_section(total, plan, agent_costs, by_tier, by_cat)


def cost_section(total: dict[str, Any], plan: Plan, agent_costs: list[dict[str, Any]],
                 by_tier: list[dict[str, Any]], by_cat: list[dict[str, Any]]) -> dict[str, Any]:
    """The eval's ``cost`` section from its totals and breakdowns: the rates, the eval type
    and the mean per run beside them."""
    c = plan.costs
    return {
        **total,
        "eval_type": eval_type(plan),
        "rates": {"infra_usd_per_hour": c.infra_rate, "capacity": c.capacity,
                  "review_usd_per_run": c.review_usd_per_run,
                  "review_fraction": c.review_fraction},
        "review_note": "expected (review_fraction x scored runs x review_usd_per_run); "
                       "evalfleet has no review queue, so no review is metered",
        "mean_per_run": total["total_usd"] / total["runs"] if total["runs"] else None,
        "unpriced": any(a["unpriced"] for a in agent_costs),
        "by_tier": by_tier,
        "by_category": by_cat,
    }


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def cost_parts(con: Any, spec: AgentSpec, plan: Plan,
               price: AgentPrice | None) -> dict[str, Any]:
    """An agent report's ``cost`` and ``tokens`` sections."""
    cost = agent_cost(con, spec, plan, price)
    runs = cost["runs"]
    return {"cost": cost,
            "tokens": {"in": cost["tokens_in"], "cached": cost["tokens_cached"],
                       "out": cost["tokens_out"],
                       "mean_per_run": (cost["tokens_in"] + cost["tokens_out"]) / runs
                       if runs else None}}
