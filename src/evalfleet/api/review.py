"""Plan review: what a plan will cost, how long it will take and what it can detect, before
anything runs.

Read-only on the home (an absent home is no history, and nothing is created): a SQLite journal
in the default layout is read with ``sqlite3`` (:mod:`evalfleet.api.sources`; SQLAlchemy's
import alone would be a quarter of a second), any other through the store; the committed
Parquet files are read with one DuckDB query for all the plan's agents, and nothing else is
touched.

Where each figure comes from:

* **history**: committed runs in the home with the agent's fingerprint (``agent_fingerprint``)
  and the task's ``task_hash``. A task with history gets its own mean tokens (input, cached,
  output), priced at the agent's price now (price is outside the fingerprint, so runs charged
  at another price, free or unpriced, match too), and wall seconds; a task without gets
  the mean over the agent's history on other tasks. Infrastructure is re-priced at this plan's
  rate: each eval's ``infra_cost_usd`` is turned back into sandbox seconds with that eval's
  rate (or ``latency_s`` where it had none).
* **prices**: an agent without history is priced from its price (``price``, else the price
  table) and token estimates: ``plan.estimate`` where given, else the heuristic below. A model
  without a price is reported as unpriced, never as $0.
* A run's total is model + infrastructure, as in reports and budgets. Human review is
  expected, ``review_fraction x runs x review_usd_per_run`` (``plan.costs``), shown apart and
  in ``with_review_usd``; budgets never count it.
* Power is the minimum detectable effect of Miller (2024) Eq. 10, the formula of
  ``evalfleet plan power``, for the plan's task count and runs per task, from the agent's
  history variance components where there are 2+ tasks of it, assumed values otherwise.

The normal quantiles come from :class:`statistics.NormalDist` and the variance components from
per-task sums computed in SQL: the same numbers as ``evalfleet.stats`` (a test checks that),
without importing scipy or numpy, so a review answers in well under a second.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

from evalfleet.api.sources import ResultsSource, open_results
from evalfleet.cost.prices import AgentPrice, PriceTable, load_price_table
from evalfleet.cost.sampling import planned_tasks
from evalfleet.errors import SpecError, UnknownEvalError
from evalfleet.settings import Settings, load_settings
from evalfleet.spec.agent import AgentSpec
from evalfleet.spec.loaders import load_plan, load_suite_ref
from evalfleet.spec.plan import CostSettings, Plan
from evalfleet.spec.task import Task

__all__ = ["ASSUMED_SIGMA2", "ASSUMED_VAR_X", "CHARS_PER_TOKEN", "DEFAULT_CALL_SECONDS",
           "DEFAULT_OUTPUT_TOKENS", "DEFAULT_SYSTEM_TOKENS", "DEFAULT_TOOL_CALLS",
           "review_plan"]

CHARS_PER_TOKEN = 4
"""Heuristic: prompt tokens = characters / 4 (the simulator counts the same way)."""
DEFAULT_SYSTEM_TOKENS = 45
"""Heuristic: tokens of the openai adapter's default system prompt (its characters / 4)."""
DEFAULT_TOOL_CALLS = 5
"""Heuristic: model calls of a tool-using run (capped by the task's ``limits.max_steps``); a
single-turn agent (``tools: false``) makes one."""
DEFAULT_OUTPUT_TOKENS = 512
"""Heuristic: completion tokens per model call when the agent sets no ``max_tokens``."""
DEFAULT_CALL_SECONDS = 10.0
"""Heuristic: wall seconds per model call (the plan's simulator latency for a simulated model)."""
ASSUMED_VAR_X = 1.0 / 12.0
"""Assumed between-task variance of an agent's per-task success, without history: a binary
score at the worst case p = 0.5 has run variance 0.25; one third of it between tasks ..."""
ASSUMED_SIGMA2 = 1.0 / 6.0
"""... and two thirds within tasks (run noise; Miller's 2024 example sigma^2 = 1/6)."""
RHO = 0.5
"""Assumed correlation of an agent's per-task success with its next version's (plan power's
default)."""
ALPHA = 0.05
POWER = 0.8


# ---------------------------------------------------------------------------- history


@dataclass(slots=True)
class _Sums:
    """Sums over committed runs of one agent on one task (or on all its tasks)."""

    n: int = 0
    cost: float = 0.0
    infra_seconds: float = 0.0
    tokens_in: float = 0.0
    tokens_out: float = 0.0
    latency: float = 0.0
    k: int = 0
    s: float = 0.0
    s2: float = 0.0
    binary: bool = True
    tokens_cached: float = 0.0

    def add(self, o: _Sums) -> None:
        self.n += o.n
        self.cost += o.cost
        self.infra_seconds += o.infra_seconds
        self.tokens_in += o.tokens_in
        self.tokens_out += o.tokens_out
        self.tokens_cached += o.tokens_cached
        self.latency += o.latency
        self.k += o.k
        self.s += o.s
        self.s2 += o.s2
        self.binary = self.binary and o.binary


@dataclass(slots=True)
class _History:
    """One agent's committed runs, by task hash."""

    tasks: dict[str, _Sums] = field(default_factory=dict)
    """Sums by task hash."""
    ids: set[str] = field(default_factory=set)
    """Task ids of those runs: only a planned task with one of them can match (hashing every
    task of a large suite would cost more than the rest of the review)."""

    def own(self, task: Task) -> _Sums | None:
        """The sums of ``task`` itself (same id and same content hash), if any."""
        return self.tasks.get(task.task_hash) if task.id in self.ids else None

    def overall(self) -> _Sums:
        out = _Sums()
        for s in self.tasks.values():
            out.add(s)
        return out


def _history(store: ResultsSource | None, agents: tuple[AgentSpec, ...]) -> dict[str, _History]:
    """Committed runs of the agents' fingerprints in the home: one DuckDB query for all."""
    if store is None:
        return {}
    paths = store.all_results_paths()
    if not paths:
        return {}
    from evalfleet.store.warehouse import SCORED_SQL, connect

    fps = sorted({a.fingerprint for a in agents})
    con = connect(store.home, paths)
    try:
        cols = {str(r[0]) for r in con.execute("SELECT name FROM pragma_table_info('runs')")
                .fetchall()}
        if not {"agent_fingerprint", "task_hash"} <= cols:
            return {}

        def col(name: str) -> str:
            return f"coalesce({name}, 0)" if name in cols else "0"

        # a reused row cost nothing and repeats its source: it is not a run's cost
        fresh = " AND reused_from IS NULL" if "reused_from" in cols else ""
        scored = SCORED_SQL
        marks = ", ".join("?" for _ in fps)
        rows = con.execute(f"""
            SELECT agent_fingerprint, eval_id, task_id, task_hash, count(*),
                   sum({col('cost_usd')}), sum({col('infra_cost_usd')}),
                   sum({col('tokens_in')}), sum({col('tokens_out')}), sum({col('latency_s')}),
                   count(*) FILTER (WHERE {scored}),
                   coalesce(sum(score) FILTER (WHERE {scored}), 0),
                   coalesce(sum(score * score) FILTER (WHERE {scored}), 0),
                   coalesce(bool_and(passed IS NOT NULL AND score IN (0, 1))
                            FILTER (WHERE {scored}), true),
                   sum({col('tokens_cached')})
            FROM runs
            WHERE agent_fingerprint IN ({marks}) AND status <> 'cancelled'{fresh}
            GROUP BY ALL""", fps).fetchall()
    finally:
        con.close()
    rates = _eval_rates(store, {str(r[1]) for r in rows if float(r[6]) > 0})
    out: dict[str, _History] = defaultdict(_History)
    for (fp, eval_id, task_id, task_hash, n, cost, infra, tin, tout, lat, k, s, s2, binary,
         cached) in rows:
        rate = rates.get(str(eval_id), 0.0)
        # sandbox seconds of all attempts, from the eval's own rate; else the final attempt's
        seconds = float(infra) * 3600.0 / rate if rate > 0 else float(lat)
        part = _Sums(int(n), float(cost), seconds, float(tin), float(tout), float(lat),
                     int(k), float(s), float(s2), bool(binary), float(cached))
        hist = out[str(fp)]
        hist.tasks.setdefault(str(task_hash), _Sums()).add(part)
        hist.ids.add(str(task_id))
    return dict(out)


def _eval_rates(store: ResultsSource, eval_ids: set[str]) -> dict[str, float]:
    """The infrastructure rate ($/sandbox hour) each eval ran at, from its stored plan."""
    rates: dict[str, float] = {}
    for eval_id in eval_ids:
        try:
            plan = store.eval_plan(eval_id)
            rates[eval_id] = CostSettings.model_validate(plan.get("costs") or {}).infra_rate
        except (UnknownEvalError, ValueError):
            rates[eval_id] = 0.0
    return rates


# ---------------------------------------------------------------------------- estimates


@dataclass(frozen=True, slots=True)
class _Unit:
    """Per-run means of one agent over the planned tasks."""

    model_usd: float | None
    seconds: float
    """Wall seconds of a run."""
    infra_seconds: float
    """Sandbox seconds billed per run (all attempts)."""
    tokens_in: float
    tokens_out: float
    calls: float
    sources: dict[str, str]


def _calls(agent: AgentSpec, task: Task) -> int:
    if agent.kind == "openai" and agent.args.get("tools") is False:
        return 1
    return min(DEFAULT_TOOL_CALLS, task.limits.max_steps)


def _system_tokens(agent: AgentSpec) -> float:
    if agent.kind != "openai":
        return 0.0
    prompt = agent.args.get("system_prompt")
    return len(prompt) / CHARS_PER_TOKEN if isinstance(prompt, str) else DEFAULT_SYSTEM_TOKENS


def _from_prices(plan: Plan, agent: AgentSpec, tasks: tuple[Task, ...], price: AgentPrice
                 ) -> _Unit:
    """Per-run means from the plan's estimate or the heuristic, priced at the agent's price."""
    n = len(tasks)
    calls = sum(_calls(agent, t) for t in tasks) / n
    est = plan.estimate
    sources: dict[str, str] = {}
    if est.tokens_in is not None:
        tin, sources["tokens_in"] = float(est.tokens_in), "plan.estimate.tokens_in"
    else:
        system = _system_tokens(agent)
        tin = sum(_calls(agent, t) * (len(t.input) / CHARS_PER_TOKEN + system)
                  for t in tasks) / n
        sources["tokens_in"] = (f"heuristic: (task input chars / {CHARS_PER_TOKEN} + system "
                                f"prompt {system:g} tokens) x model calls")
    max_tokens = agent.args.get("max_tokens") if agent.kind == "openai" else None
    per_call_out = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 \
        else DEFAULT_OUTPUT_TOKENS
    if est.tokens_out is not None:
        tout, sources["tokens_out"] = float(est.tokens_out), "plan.estimate.tokens_out"
    else:
        tout = calls * per_call_out
        what = "args.max_tokens" if per_call_out == max_tokens else "default"
        sources["tokens_out"] = f"heuristic: {per_call_out} ({what}) x model calls"
    sim = plan.simulator.models.get(agent.model or "") if plan.simulator else None
    if est.seconds is not None:
        seconds, sources["seconds"] = float(est.seconds), "plan.estimate.seconds"
    elif sim is not None:
        seconds = calls * sim.latency_s
        sources["seconds"] = f"heuristic: simulated latency {sim.latency_s:g} s x model calls"
    else:
        seconds = calls * DEFAULT_CALL_SECONDS
        sources["seconds"] = f"heuristic: {DEFAULT_CALL_SECONDS:g} s x model calls"
    sources["calls"] = ("1 (single turn, tools: false)" if calls == 1 and
                        agent.args.get("tools") is False else
                        f"heuristic: {DEFAULT_TOOL_CALLS} per tool-using run, at most "
                        "limits.max_steps")
    model = None if price.unpriced else price.cost(round(tin), round(tout))
    sources["model"] = _price_source(agent, price)
    return _Unit(model, seconds, seconds, tin, tout, calls, sources)


def prior_run_costs(plan: Plan, tasks: tuple[Task, ...], prices: PriceTable) -> list[float]:
    """Each agent's expected total cost of one run before any of its runs has finished: the
    plan review's estimate from prices and ``plan.estimate`` (model + infrastructure), 0 for an
    unpriced model or no tasks. The budget check uses it for the first runs of an eval, until
    real runs have finished and their mean replaces it."""
    if not tasks:
        return [0.0 for _ in plan.agents]
    rate = plan.costs.infra_rate / 3600.0
    out = []
    for agent in plan.agents:
        unit = _from_prices(plan, agent, tasks, prices.for_agent(agent))
        out.append((unit.model_usd or 0.0) + unit.infra_seconds * rate)
    return out


def _price_source(agent: AgentSpec, price: AgentPrice) -> str:
    tier = f" x tier {agent.tier} ({price.multiplier:g})" if price.multiplier != 1 else ""
    return {"table": f"price table ({agent.model}){tier}",
            "inline": f"the agent's own price{tier}",
            "free": "price: 0 (free)",
            "no-model": "no model (makes no priced calls)",
            "unpriced": f"UNPRICED: model {agent.model!r} has no price"}[price.source]


def _from_history(agent: AgentSpec, tasks: tuple[Task, ...], hist: _History,
                  price: AgentPrice) -> tuple[_Unit, dict[str, int]]:
    """Per-run means from the agent's history: each task's own, else the agent's mean."""
    overall = hist.overall()
    total = _Sums()
    matched = 0
    for t in tasks:
        own = hist.own(t)
        s = own if own is not None else overall
        matched += own is not None
        # weight each task equally (runs per task are equal in the plan); model dollars are
        # the history's tokens at the agent's price now (its price is outside the fingerprint:
        # runs charged at another price, free or unpriced, match it too)
        total.cost += price.cost(int(s.tokens_in), int(s.tokens_out),
                                 int(s.tokens_cached)) / s.n
        total.infra_seconds += s.infra_seconds / s.n
        total.tokens_in += s.tokens_in / s.n
        total.tokens_out += s.tokens_out / s.n
        total.latency += s.latency / s.n
    n = len(tasks)
    calls = sum(_calls(agent, t) for t in tasks) / n
    basis = (f"history: {overall.n:,} committed runs of this agent on {len(hist.tasks):,} "
             f"tasks; {matched:,} of the {n:,} planned tasks have their own")
    if matched < n:
        basis += "; the others take the agent's mean over its history"
    sources = {"model": basis, "seconds": basis, "tokens_in": basis, "tokens_out": basis,
               "calls": "heuristic (history does not record model calls)"}
    model = None if price.unpriced else total.cost / n
    if price.unpriced:
        sources["model"] = _price_source(agent, price)
    info = {"runs": overall.n, "tasks": len(hist.tasks), "tasks_matched": matched}
    return _Unit(model, total.latency / n, total.infra_seconds / n, total.tokens_in / n,
                 total.tokens_out / n, calls, sources), info


# ---------------------------------------------------------------------------- power


@dataclass(frozen=True, slots=True)
class _Components:
    """Variance components of one agent's history (``evalfleet.stats.variance_components``
    from per-task sums)."""

    between: float
    within: float
    var_means: float
    mean: float
    n_tasks: int
    k_mean: float
    binary: bool


def _task_moments(s: _Sums) -> tuple[float, float]:
    mean = s.s / s.k
    var = max(0.0, (s.s2 - s.k * mean * mean) / (s.k - 1)) if s.k >= 2 else math.nan
    return mean, var


def _sample_var(xs: list[float]) -> float:
    if len(xs) < 2:
        return math.nan
    if max(xs) == min(xs):
        return 0.0
    m = sum(xs) / len(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def _components(hist: _History, only: set[str] | None = None) -> _Components | None:
    tasks = [s for h, s in sorted(hist.tasks.items()) if s.k > 0 and (only is None or h in only)]
    if len(tasks) < 2:
        return None
    moments = [_task_moments(s) for s in tasks]
    means = [m for m, _ in moments]
    several = [v for (_, v), s in zip(moments, tasks, strict=True) if s.k >= 2]
    within = sum(several) / len(several) if several else math.nan
    var_means = _sample_var(means)
    if math.isnan(within):
        between = math.nan
    else:
        noise = sum((v if s.k >= 2 else within) / s.k
                    for (_, v), s in zip(moments, tasks, strict=True)) / len(tasks)
        between = max(0.0, var_means - noise)
    return _Components(between, within, var_means, sum(means) / len(means), len(tasks),
                       sum(s.k for s in tasks) / len(tasks), all(s.binary for s in tasks))


def _z() -> float:
    nd = NormalDist()
    return nd.inv_cdf(1.0 - ALPHA / 2.0) + nd.inv_cdf(POWER)


def _mde_rows(omega2: float, s_a: float, s_b: float, ks: list[int], n_tasks: int,
              upper_bound: bool) -> list[dict[str, Any]]:
    """Miller (2024) Eq. 10 for each K: delta = z sqrt((omega^2 + s_a/K + s_b/K) / n)."""
    rows = []
    for k in ks:
        variance = omega2 + s_a / k + s_b / k
        se = math.sqrt(variance / n_tasks)
        rows.append({"k": k, "variance": variance,
                     "mde": _z() * se if variance > 0 else None, "mde_se": se,
                     "upper_bound": upper_bound and k > 1})
    return rows


def _agent_power(agent: AgentSpec, hist: _History | None, ks: list[int], n_tasks: int
                 ) -> dict[str, Any]:
    """This agent against a future version of itself (plan power with one agent)."""
    comp = _components(hist) if hist is not None else None
    if comp is None:
        omega2, sigma2 = 2.0 * (1.0 - RHO) * ASSUMED_VAR_X, ASSUMED_SIGMA2
        return {"source": "assumed", "omega2": omega2, "sigma2_base": sigma2,
                "sigma2_new": sigma2, "separable": True,
                "basis": (f"assumed Var(x) = {ASSUMED_VAR_X:.4f}, sigma^2 = "
                          f"{ASSUMED_SIGMA2:.4f} (a binary score at p = 0.5), omega^2 = "
                          f"2 (1 - rho) Var(x) with rho = {RHO:g}"
                          + ("" if hist is None else "; history has fewer than 2 scored "
                             "tasks")),
                "rows": _mde_rows(omega2, sigma2, sigma2, ks, n_tasks, False)}
    where = (f"from history of {agent.label}: {comp.n_tasks:,} tasks x {comp.k_mean:.3g} runs; "
             f"omega^2 = 2 (1 - rho) Var(x) with ASSUMED rho = {RHO:g}")
    if not math.isnan(comp.within):
        omega2 = 2.0 * (1.0 - RHO) * comp.between
        return {"source": "history", "omega2": omega2, "sigma2_base": comp.within,
                "sigma2_new": comp.within, "separable": True, "basis": where,
                "rows": _mde_rows(omega2, comp.within, comp.within, ks, n_tasks, False)}
    p = comp.mean
    total = p * (1.0 - p) if comp.binary else comp.var_means
    omega2 = 2.0 * (1.0 - RHO) * total
    return {"source": "history", "omega2": omega2, "sigma2_base": None, "sigma2_new": None,
            "separable": False,
            "basis": where + "; one run per task: sigma^2 not separable, rows for K > 1 are "
                             "upper bounds",
            "rows": _mde_rows(omega2, 0.0, 0.0, ks, n_tasks, True)}


def _pair_power(base: AgentSpec, new: AgentSpec, h_base: _History | None,
                h_new: _History | None, ks: list[int], n_tasks: int) -> dict[str, Any]:
    """Two of the plan's agents, paired on the same tasks."""
    label = f"{new.label} vs {base.label}"
    ids: list[str] = []
    if h_base is not None and h_new is not None:
        ids = sorted(h for h in set(h_base.tasks) & set(h_new.tasks)
                     if h_base.tasks[h].k > 0 and h_new.tasks[h].k > 0)
    if h_base is not None and h_new is not None and len(ids) >= 2:
        a, b = h_base, h_new
        ma = [_task_moments(a.tasks[h]) for h in ids]
        mb = [_task_moments(b.tasks[h]) for h in ids]
        wa, wb = _within_noise(ma, [a.tasks[h].k for h in ids]), \
            _within_noise(mb, [b.tasks[h].k for h in ids])
        var_d = _sample_var([x[0] - y[0] for x, y in zip(ma, mb, strict=True)])
        basis = f"from history: {len(ids):,} tasks both agents ran"
        if not (math.isnan(wa[0]) or math.isnan(wb[0])):
            omega2 = max(0.0, var_d - wa[1] - wb[1])
            return {"pair": label, "source": "history", "omega2": omega2,
                    "sigma2_base": wa[0], "sigma2_new": wb[0], "separable": True,
                    "basis": basis, "rows": _mde_rows(omega2, wa[0], wb[0], ks, n_tasks, False)}
        return {"pair": label, "source": "history", "omega2": var_d, "sigma2_base": None,
                "sigma2_new": None, "separable": False,
                "basis": basis + "; one run per task: rows for K > 1 are upper bounds",
                "rows": _mde_rows(var_d, 0.0, 0.0, ks, n_tasks, True)}
    sigmas = []
    for h in (h_base, h_new):
        comp = _components(h) if h is not None else None
        sigmas.append(comp.within if comp is not None and not math.isnan(comp.within)
                      else ASSUMED_SIGMA2)
    omega2 = 2.0 * (1.0 - RHO) * ASSUMED_VAR_X
    return {"pair": label, "source": "assumed", "omega2": omega2, "sigma2_base": sigmas[0],
            "sigma2_new": sigmas[1], "separable": True,
            "basis": (f"assumed omega^2 = {omega2:.4f} (fewer than 2 tasks both agents ran); "
                      "sigma^2 from each agent's history where it has 2+ runs per task"),
            "rows": _mde_rows(omega2, sigmas[0], sigmas[1], ks, n_tasks, False)}


def _within_noise(moments: list[tuple[float, float]], ks: list[int]) -> tuple[float, float]:
    several = [v for (_, v), k in zip(moments, ks, strict=True) if k >= 2]
    if not several:
        return math.nan, math.nan
    within = sum(several) / len(several)
    noise = sum((v if k >= 2 else within) / k
                for (_, v), k in zip(moments, ks, strict=True)) / len(ks)
    return within, noise


# ---------------------------------------------------------------------------- review


def _range(lo: float | None, hi: float | None) -> dict[str, float | None]:
    return {"min": lo, "max": hi}


def _scale(x: float | None, n: int) -> float | None:
    return None if x is None else x * n


def _open(settings: Settings) -> ResultsSource | None:
    """The home's history, read-only (:mod:`evalfleet.api.sources`: without SQLAlchemy in the
    default layout); None where nothing has run."""
    try:
        return open_results(settings)
    except UnknownEvalError:  # no home or no journal: nothing has run there, no history
        return None


def review_plan(plan_path: str | Path, *, workers: int | None = None,
                settings: Settings | None = None) -> dict[str, Any]:
    """What a plan will cost, how long it will take and what it can detect, per agent and in
    total, saying where each figure comes from. Runs nothing and creates nothing.

    Args:
        plan_path: The plan YAML.
        workers: Runs executing at once (default: the plan's ``execution.max_in_flight``).
        settings: The home to take history from (an absent home: prices only).

    Raises:
        SpecError: an invalid plan or suite (the same message as ``plan check``), or
            ``workers`` below 1.
    """
    settings = settings or load_settings()
    if workers is not None and workers < 1:
        raise SpecError(f"workers must be at least 1, got {workers}", field="--workers")
    plan = load_plan(plan_path)
    try:
        suite = load_suite_ref(plan.suite, plan)
    except SpecError as exc:
        if exc.source is None:
            raise SpecError(exc.message, source=str(plan_path), field=exc.field) from None
        raise
    tasks = planned_tasks(plan, suite)
    if not tasks:
        raise SpecError("the plan selects no tasks", source=str(plan_path), field="suite")
    n_tasks = len(tasks)
    k_lo, k_hi = plan.first_runs, plan.max_runs
    adaptive = plan.runs is not None
    prices = load_price_table(settings.prices)
    store = _open(settings)
    try:
        history = _history(store, plan.agents)
        reuse = _reuse(plan, tasks, store, settings) if plan.reuse else None
    finally:
        if store is not None:
            store.close()
    costs = plan.costs
    rate = costs.infra_rate
    review_unit = costs.review_fraction * costs.review_usd_per_run
    ks = sorted({k_lo, k_hi})
    agents: list[dict[str, Any]] = []
    units: list[_Unit] = []
    for i, agent in enumerate(plan.agents):
        price = prices.for_agent(agent)
        hist = history.get(agent.fingerprint)
        if hist is not None and hist.tasks:
            unit, info = _from_history(agent, tasks, hist, price)
            source: str = "history"
        else:
            unit, info, source = _from_prices(plan, agent, tasks, price), None, "prices"
        units.append(unit)
        infra_unit = unit.infra_seconds * rate / 3600.0
        total_unit = None if unit.model_usd is None else unit.model_usd + infra_unit
        runs_lo, runs_hi = n_tasks * k_lo, n_tasks * k_hi
        unit_d = {"model_usd": unit.model_usd, "infra_usd": infra_unit,
                  "review_usd": review_unit, "total_usd": total_unit,
                  "with_review_usd": None if total_unit is None else total_unit + review_unit,
                  "tokens_in": unit.tokens_in, "tokens_out": unit.tokens_out,
                  "seconds": unit.seconds, "sandbox_seconds": unit.infra_seconds,
                  "model_calls": unit.calls}
        cost = {key: _range(_scale(unit_d[key], runs_lo), _scale(unit_d[key], runs_hi))
                for key in ("model_usd", "infra_usd", "review_usd", "total_usd",
                            "with_review_usd")}
        sources = dict(unit.sources)
        sources["infra"] = (f"{sources['seconds'] if source == 'prices' else 'history'}: "
                            f"sandbox seconds x plan.costs infra rate ${rate:g}/h "
                            f"({costs.capacity})")
        sources["review"] = (f"plan.costs: review_fraction {costs.review_fraction:g} x runs x "
                             f"review_usd_per_run ${costs.review_usd_per_run:g}")
        entry: dict[str, Any] = {
            "index": i, "label": agent.label, "model": agent.model,
            "fingerprint": agent.fingerprint, "source": source, "history": info,
            "price": {"source": price.source, "unpriced": price.unpriced},
            "runs": _range(runs_lo, runs_hi), "unit": unit_d, "cost": cost,
            "sources": sources, "budget": _budget(agent.budget_usd, cost["total_usd"]),
            "power": _agent_power(agent, hist, ks, n_tasks),
        }
        if reuse is not None:
            entry["reuse"] = reuse["agents"][i]
        agents.append(entry)
    total = {key: _range(*(_sum([a["cost"][key][end] for a in agents])
                           for end in ("min", "max")))
             for key in ("model_usd", "infra_usd", "review_usd", "total_usd",
                         "with_review_usd")}
    runs_total = _range(n_tasks * k_lo * len(agents), n_tasks * k_hi * len(agents))
    unpriced = [a["label"] for a in agents if a["price"]["unpriced"]]
    warnings = [f"agent {lbl}: its model has no price, so model and total cost are unknown "
                "(give it 'price: 0' if it is free, or a price mapping)" for lbl in unpriced]
    priced_total = _range(*(sum(a["cost"][k][end] or 0.0 for a in agents
                                for k in ("model_usd", "infra_usd"))
                            for end in ("min", "max")))
    pairs = [_pair_power(plan.agents[0], other, history.get(plan.agents[0].fingerprint),
                         history.get(other.fingerprint), ks, n_tasks)
             for other in plan.agents[1:]]
    notes = []
    if adaptive:
        notes.append(f"adaptive depth (runs: min {k_lo}, max {k_hi}): every count and cost is "
                     "a range from min to max runs per task; the extra runs go where they "
                     "narrow the interval most, so the real figure lies in between")
    n_workers = workers if workers is not None else plan.execution.max_in_flight
    out: dict[str, Any] = {
        "plan": str(plan_path), "name": plan.name, "home": str(settings.home),
        "history": any(a["source"] == "history" for a in agents),
        "suite": {"name": suite.name, "tasks": len(suite.tasks), "tasks_planned": n_tasks,
                  "sample": None if plan.sample is None else
                  {"tier": plan.sample.tier, "share": plan.sample.share}},
        "adaptive": adaptive, "runs_per_task": _range(k_lo, k_hi), "runs": runs_total,
        "agents": agents,
        "total": {**total, "priced_usd": priced_total,
                  "unit_usd": _range(*(_per(total["total_usd"][end], runs_total[end])
                                       for end in ("min", "max"))),
                  "after_reuse_usd": None if reuse is None else _range(
                      *(_minus(total["total_usd"][end], reuse["saved_usd"][end])
                        for end in ("min", "max")))},
        "unpriced": unpriced,
        "wall": _wall(plan, agents, units, n_workers,
                      "--workers" if workers is not None else "execution.max_in_flight"),
        "budget": _budget(plan.budget_usd, total["total_usd"]),
        "power": {"alpha": ALPHA, "power": POWER, "two_sided": True, "n_tasks": n_tasks,
                  "ks": ks, "method": "Miller 2024 Eq. 10 (as evalfleet plan power)",
                  "pairs": pairs},
        "reuse": None if reuse is None else {k: v for k, v in reuse.items() if k != "agents"},
        "warnings": warnings, "notes": notes,
    }
    return out


def _per(x: float | None, n: float | None) -> float | None:
    return None if x is None or not n else x / n


def _minus(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None else max(0.0, x - y)


def _sum(xs: list[float | None]) -> float | None:
    return None if any(x is None for x in xs) else sum(x for x in xs if x is not None)


def _budget(limit: float | None, total: dict[str, float | None]) -> dict[str, Any]:
    lo, hi = total["min"], total["max"]
    if limit is None:
        return {"limit_usd": None, "fits": None, "note": "no budget"}
    if hi is None or lo is None:
        return {"limit_usd": limit, "fits": None, "note": "unknown: a model is unpriced"}
    if hi <= limit:
        return {"limit_usd": limit, "fits": True,
                "note": f"fits (${hi:,.4g} of ${limit:,.4g}; budgets count model + "
                        "infrastructure, never review)"}
    if lo <= limit:
        return {"limit_usd": limit, "fits": False,
                "note": f"fits at the minimum runs (${lo:,.4g}) but not the maximum "
                        f"(${hi:,.4g}); the budget stops the extra runs"}
    return {"limit_usd": limit, "fits": False,
            "note": f"over budget: ${lo:,.4g} > ${limit:,.4g}; the eval will stop scheduling "
                    f"after about {limit / lo:.0%} of its runs"}


def _wall(plan: Plan, agents: list[dict[str, Any]], units: list[_Unit], workers: int,
          workers_source: str) -> dict[str, Any]:
    """Wall time: run-seconds over the workers, or a provider's rate limit if that is slower."""
    out: dict[str, Any] = {"workers": workers, "workers_source": workers_source}
    for end in ("min", "max"):
        bounds = [("workers", sum(a["runs"][end] * u.seconds
                                  for a, u in zip(agents, units, strict=True)) / workers)]
        per_key: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for spec, a, u in zip(plan.agents, agents, units, strict=True):
            acc = per_key[spec.rate_limit_key]
            acc[0] += a["runs"][end] * u.calls
            acc[1] += a["runs"][end] * (u.tokens_in + u.tokens_out)
        for key, (requests, tokens) in sorted(per_key.items()):
            limit = plan.rate_limits.get(key)
            if limit is None:
                continue
            if limit.requests_per_minute:
                bounds.append((f"rate_limits.{key}.requests_per_minute",
                               60.0 * requests / limit.requests_per_minute))
            if limit.tokens_per_minute:
                bounds.append((f"rate_limits.{key}.tokens_per_minute",
                               60.0 * tokens / limit.tokens_per_minute))
        bound, seconds = max(bounds, key=lambda b: b[1])
        out[end] = {"seconds": seconds, "bound": bound,
                    "bounds": {name: s for name, s in bounds}}
    return out


def _repeats_in(store: ResultsSource, paths: list[str], agents: tuple[AgentSpec, ...]) -> int:
    """1 + the deepest repeat of the agents' committed runs in the home (0: none)."""
    if not paths:
        return 0
    from evalfleet.store.warehouse import connect

    fps = sorted({a.fingerprint for a in agents})
    con = connect(store.home, paths)
    try:
        cols = {str(r[0]) for r in con.execute("SELECT name FROM pragma_table_info('runs')")
                .fetchall()}
        if not {"agent_fingerprint", "repeat"} <= cols:
            return 0
        row = con.execute(f"SELECT max(\"repeat\") FROM runs WHERE agent_fingerprint IN "
                          f"({', '.join('?' for _ in fps)})", fps).fetchone()
    finally:
        con.close()
    return 0 if row is None or row[0] is None else int(row[0]) + 1


def _reuse(plan: Plan, tasks: tuple[Task, ...], store: ResultsSource | None,
           settings: Settings) -> dict[str, Any]:
    """Runs an eval with ``reuse: true`` would take from earlier committed runs."""
    n = len(plan.agents)
    empty = {"runs": _range(0, 0), "saved_usd": _range(0.0, 0.0)}
    if store is None:
        return {"sandbox": None, **empty, "agents": [dict(empty) for _ in range(n)]}
    paths = store.all_results_paths()
    from evalfleet.api.validation import hidden_from_sandboxes
    from evalfleet.errors import InfraError
    from evalfleet.sandbox import get_provider
    from evalfleet.store.reuse import find_sources, plan_keys

    try:
        sandbox = get_provider(settings.sandbox or plan.execution.sandbox,
                               hidden_paths=hidden_from_sandboxes(plan, settings.home)).name
    except InfraError:
        sandbox = "none"
    # a source has the key's repeat, so repeats past the home's deepest have none: a deep plan
    # (runs: {max: 1000}) over a large suite must not build a key for every repeat
    keys = plan_keys(tasks, plan.agents, sandbox,
                     range(min(plan.max_runs, _repeats_in(store, paths, plan.agents))),
                     plan.services_hash)
    found = find_sources(store.home, paths, keys)
    index = {a.fingerprint: i for i, a in enumerate(plan.agents)}
    per = [[0, 0, 0.0, 0.0] for _ in range(n)]
    for k, src in found.items():
        key = keys[k]
        acc = per[index[key.agent_fingerprint]]
        acc[1] += 1
        acc[3] += src.cost_usd
        if key.repeat < plan.first_runs:
            acc[0] += 1
            acc[2] += src.cost_usd
    agents = [{"runs": _range(int(a[0]), int(a[1])), "saved_usd": _range(a[2], a[3])}
              for a in per]
    return {"sandbox": sandbox,
            "runs": _range(sum(int(a[0]) for a in per), sum(int(a[1]) for a in per)),
            "saved_usd": _range(sum(a[2] for a in per), sum(a[3] for a in per)),
            "saving_is": "what the reused runs cost when they ran (model + infra)",
            "agents": agents}
