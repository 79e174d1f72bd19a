"""`evalfleet slice`: one structured question over every committed run, answered with intervals.

"The pass rate of coding tasks at difficulty 3 and above on the latest agent version, against the
version from two weeks ago, by repository" is::

    slice_runs(where=["category=coding", "difficulty>=3"], by=["repository"],
               agent="coder@latest", vs="coder@2 weeks ago")

How it is answered (docs/analysis.md, "Slices"):

* ``--where FIELD OP VALUE`` filters runs. FIELD comes from a fixed list of run columns
  (:data:`FIELDS`), so it can be written into the SQL; every VALUE is bound as a parameter and
  never becomes SQL text.
* Agent selectors ``NAME@VERSION``, ``NAME@latest`` (the version of the agent's most recent run)
  and ``NAME@N days ago`` / ``NAME@N weeks ago`` (the version of its most recent run finished at
  or before now - N: what was current then) are resolved over the runs in DuckDB; the answer says
  which version and which evals were taken.
* One DuckDB query reduces the rows to one line per (cell, side, task): scored runs, their mean
  metric, whether every run was binary, and the runs excluded (errors, cancellations). Nothing
  else reaches Python, whatever the number of runs.
* Per cell and side, the mean over tasks of per-task means with the report's interval
  (:func:`evalfleet.analysis.report.rate_dict`); with ``vs``, the paired difference on the tasks
  both sides scored in the cell with the test ``evalfleet compare`` would choose
  (:func:`evalfleet.analysis.compare.paired_test`), and Holm-adjusted p-values across cells.

Read-only: the store is opened with ``open_reader`` and DuckDB runs confined to the committed
results files (:func:`evalfleet.store.warehouse.connect`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from evalfleet.errors import SpecError
from evalfleet.settings import Settings, load_settings

if TYPE_CHECKING:
    import duckdb
    import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Field:
    """A run column a slice may filter or group by."""

    sql: str
    """Its SQL expression (fixed text, never user input)."""
    numeric: bool = False


FIELDS: dict[str, Field] = {
    "category": Field("category"),
    "difficulty": Field("difficulty", numeric=True),
    "domain": Field("coalesce(domain, '')"),
    "repository": Field("coalesce(repository, '')"),
    "task_id": Field("task_id"),
    "model": Field("model"),
    "model_tier": Field("model_tier"),
    "agent_name": Field("agent_name"),
    "agent_version": Field("agent_version"),
    "eval_id": Field("eval_id"),
    "plan_name": Field("plan_name"),
    "suite": Field("suite"),
    "status": Field("status"),
    "error_kind": Field("coalesce(error_kind, '')"),
    "sandbox": Field("coalesce(sandbox, '')"),
}
"""Fields of ``--where`` and ``--by``. A missing repository, domain, error kind or sandbox is
the empty string (``--where repository=`` selects tasks without one)."""

METRICS: dict[str, tuple[str, str]] = {
    # a run passes when its verdict says so; a run without a verdict passes at score 1 (as the
    # report's failing runs are counted)
    "pass_rate": ("CASE WHEN coalesce(passed, score >= 1) THEN 1.0 ELSE 0.0 END", "true"),
    "score": ("score", "passed IS NOT NULL"),
    "cost_per_run": ("coalesce(cost_usd, 0) + coalesce(infra_cost_usd, 0)", "false"),
    "latency": ("latency_s", "false"),
}
"""Per-run value of each metric, and whether the run counts as one binary trial."""
RATE_METRICS = frozenset({"pass_rate", "score"})
"""Metrics in [0, 1], which get the report's rate intervals and McNemar for binary K = 1."""

MIN_TASKS = 5
"""Fewest tasks for an estimate (each side) or a paired test. Below 5 no test compare chooses
can reach p < 0.05 (4 tasks all discordant one way: McNemar mid-p 1/16, exact permutation 1/8);
at 5, McNemar's mid-p can (1/32), the exact permutation test from 6 on (2/64)."""
MAX_BY = 2

_OPS = ("!=", ">=", "<=", "==", "=", ">", "<")
_WHERE = re.compile(
    r"^\s*(?P<field>[A-Za-z_][A-Za-z0-9_]*)\s*"
    r"(?:(?P<op>!=|>=|<=|==|=|>|<)|\s(?P<in>(?:not\s+)?in)\s)\s*(?P<value>.*?)\s*$",
    re.IGNORECASE | re.DOTALL)
_AGO = re.compile(r"^\s*(?P<n>\d{1,5})\s*(?P<unit>days?|weeks?)\s+ago\s*$", re.IGNORECASE)
_TS = "coalesce(finished_at, started_at)"


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``--where`` clause: a whitelisted field, an operator and bound values."""

    text: str
    field: str
    op: str
    values: tuple[str | int, ...]

    def sql(self, prefix: str) -> tuple[str, dict[str, Any]]:
        """The SQL of the clause with ``$prefix_i`` placeholders, and their values."""
        col = FIELDS[self.field].sql
        names = [f"{prefix}_{i}" for i in range(len(self.values))]
        params = dict(zip(names, self.values, strict=True))
        if self.op in ("in", "not in"):
            slots = ", ".join(f"${n}" for n in names)
            return f"{col} {self.op.upper()} ({slots})", params
        return f"{col} {self.op} ${names[0]}", params


@dataclass(frozen=True, slots=True)
class AgentSelector:
    """``NAME@VERSION``, ``NAME@latest`` or ``NAME@N days|weeks ago``."""

    text: str
    name: str
    version: str | None = None
    ago: timedelta | None = None

    @property
    def latest(self) -> bool:
        return self.version is None and self.ago is None


def parse_where(text: str) -> Condition:
    """Parse ``FIELD OP VALUE`` (OP: = != > >= < <=, ``in`` or ``not in`` a comma list).

    Raises:
        SpecError: no operator, an unknown field, a non-integer value for a numeric field, an
            ordering on a text field, or an empty ``in`` list.
    """
    m = _WHERE.match(text)
    if not m:
        raise SpecError(f"{text!r}: expected FIELD OP VALUE with OP one of "
                        f"{' '.join(_OPS[:6])}, in, not in (e.g. 'difficulty>=3')",
                        field="--where")
    name = m["field"].lower()
    field = FIELDS.get(name)
    if field is None:
        raise SpecError(f"{text!r}: unknown field '{m['field']}' (fields: "
                        f"{', '.join(FIELDS)})", field="--where")
    op = "=" if m["op"] == "==" else (m["op"] or " ".join(m["in"].lower().split()))
    raw = m["value"]
    if op in ("in", "not in"):
        inner = raw[1:-1] if raw[:1] + raw[-1:] in ("()", "[]") else raw
        items = [_unquote(v.strip()) for v in inner.split(",")]
        if any(v == "" for v in items):
            raise SpecError(f"{text!r}: '{op}' needs a comma-separated list of values",
                            field="--where")
    else:
        items = [_unquote(raw)]
        if op not in ("=", "!=") and not field.numeric:
            numeric = ", ".join(k for k, f in FIELDS.items() if f.numeric)
            raise SpecError(f"{text!r}: '{op}' needs a numeric field ({numeric}); "
                            f"'{name}' is text", field="--where")
    values: list[str | int] = []
    for v in items:
        if field.numeric:
            try:
                values.append(int(v))
            except ValueError:
                raise SpecError(f"{text!r}: '{name}' is a whole number, not {v!r}",
                                field="--where") from None
        else:
            values.append(v)
    return Condition(text, name, op, tuple(values))


def _unquote(v: str) -> str:
    """A value written in matching quotes ('x' or "x") without them."""
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
        return v[1:-1]
    return v


def parse_by(fields: Sequence[str]) -> tuple[str, ...]:
    """The ``--by`` fields (at most two, each once, from :data:`FIELDS`)."""
    out: list[str] = []
    for f in fields:
        name = f.strip().lower()
        if name not in FIELDS:
            raise SpecError(f"unknown field {f!r} (fields: {', '.join(FIELDS)})", field="--by")
        if name in out:
            raise SpecError(f"'{name}' given twice", field="--by")
        out.append(name)
    if len(out) > MAX_BY:
        raise SpecError(f"at most {MAX_BY} fields, got {len(out)}: {', '.join(out)}",
                        field="--by")
    return tuple(out)


def parse_agent(text: str, flag: str = "--agent") -> AgentSelector:
    """``NAME@VERSION``, ``NAME@latest`` or ``NAME@N days ago`` / ``NAME@N weeks ago``.

    A version literally named ``latest`` cannot be selected by name (``@latest`` means the most
    recent run's version).
    """
    name, at, rest = text.partition("@")
    name, rest = name.strip(), rest.strip()
    if not at or not name or not rest:
        raise SpecError(f"{text!r}: expected NAME@VERSION, NAME@latest or 'NAME@N days ago' "
                        "(or weeks)", field=flag)
    if rest.lower() == "latest":
        return AgentSelector(text, name)
    m = _AGO.match(rest)
    if m:
        n = int(m["n"])
        delta = timedelta(weeks=n) if m["unit"].lower().startswith("week") else timedelta(days=n)
        return AgentSelector(text, name, ago=delta)
    if rest.lower().endswith(" ago"):
        raise SpecError(f"{text!r}: write the age as 'N days ago' or 'N weeks ago'", field=flag)
    return AgentSelector(text, name, version=rest)


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise SpecError(f"unknown metric {metric!r} (choose {', '.join(METRICS)})",
                        field="--metric")
    return metric


# ---------------------------------------------------------------------------------------------


def slice_runs(*, agent: str, vs: str | None = None, where: Sequence[str] = (),
               by: Sequence[str] = (), metric: str = "pass_rate", evals: Sequence[str] = (),
               alpha: float = 0.05, min_tasks: int = MIN_TASKS,
               settings: Settings | None = None, now: datetime | None = None
               ) -> dict[str, Any]:
    """Answer a slice question over every committed run of the home (or of ``evals``).

    ``agent`` (and ``vs``) are selectors (:func:`parse_agent`); ``where`` holds
    ``FIELD OP VALUE`` clauses (:func:`parse_where`), ``by`` up to two fields; ``now`` is the
    clock for ``N days ago`` (default: the current time). Read-only.

    Returns the question, each side's resolved agent version with the evals its runs come from,
    one entry per cell (each side's estimate with its interval and excluded runs; the paired
    difference with its test, p and Holm-adjusted p), the flagged cells and the timing.

    Raises:
        SpecError: a bad flag (one line naming it), or an agent/version with no runs.
        UnknownEvalError: no evals in the home, or an unknown ``--eval``.
    """
    from evalfleet.api.sources import open_results, resolve_eval, version_spans

    t_start = time.perf_counter()
    conditions = [parse_where(w) for w in where]
    by_fields = parse_by(by)
    check_metric(metric)
    side_a = parse_agent(agent, "--agent")
    side_b = parse_agent(vs, "--vs") if vs is not None else None
    if not 0 < alpha < 1:
        raise SpecError(f"alpha must be in (0, 1), got {alpha}", field="--alpha")
    if min_tasks < 2:
        raise SpecError(f"must be at least 2, got {min_tasks}", field="--min-tasks")
    if any(not e for e in evals):
        raise SpecError("an empty eval id", field="--eval")
    clock = now or datetime.now(UTC)
    if clock.tzinfo is None:
        clock = clock.replace(tzinfo=UTC)

    settings = settings or load_settings()
    source = open_results(settings)  # without SQLAlchemy in the default layout
    try:
        eval_ids = sorted({resolve_eval(source, e) for e in evals})
        paths = (sorted({p for e in eval_ids for p in source.results_paths(e)}) if eval_ids
                 else source.all_results_paths())
        # the rollups' days tell which evals' rows can change the versions chosen
        spans = version_spans(source, sorted({side_a.name, *([side_b.name] if side_b else [])}),
                              paths)
    finally:
        source.close()

    # imported before the clock starts: the timing is DuckDB's and the statistics', not
    # scipy's and statsmodels' import
    import evalfleet.analysis.compare
    import evalfleet.analysis.report  # noqa: F401
    from evalfleet.store.warehouse import connect

    con = connect(settings.home, paths)
    try:
        t0 = time.perf_counter()
        sels = [(side_a, "--agent")] + ([(side_b, "--vs")] if side_b else [])
        resolved = _resolve_all(con, sels, eval_ids, clock, spans)
        resolved_a, resolved_b = resolved[0], (resolved[1] if side_b else None)
        t1 = time.perf_counter()
        rows = _cell_task_rows(con, conditions, by_fields, metric, resolved_a, resolved_b,
                               eval_ids)
        t2 = time.perf_counter()
    finally:
        con.close()
    cells = _cells(rows, by_fields, metric, paired=resolved_b is not None, alpha=alpha,
                   min_tasks=min_tasks,
                   same=resolved_b is not None and resolved_a["agent_version"]
                   == resolved_b["agent_version"] and resolved_a["agent_name"]
                   == resolved_b["agent_name"])
    t3 = time.perf_counter()
    notes: list[str] = []
    if resolved_b is not None and (resolved_a["agent_name"], resolved_a["agent_version"]) == (
            resolved_b["agent_name"], resolved_b["agent_version"]):
        notes.append(f"both sides are {resolved_a['agent_name']}@{resolved_a['agent_version']}"
                     ": no newer version ran since, so every difference is 0")
    if not cells:
        notes.append("no runs of the chosen agent versions match the question")
    return {
        "question": {"where": [c.text for c in conditions], "by": list(by_fields),
                     "metric": metric, "evals": eval_ids or None, "alpha": alpha,
                     "min_tasks": min_tasks, "now": clock.isoformat(timespec="seconds")},
        "agent": resolved_a, "vs": resolved_b,
        "cells": cells,
        "flagged": [c["label"] for c in cells if c.get("paired", {}).get("flagged")],
        "notes": notes,
        "timing": {"resolve_s": t1 - t0, "query_s": t2 - t1, "stats_s": t3 - t2,
                   "total_s": t3 - t_start, "files": len(paths)},
    }


NO_DAY = "1970-01-01"
"""The rollups' day of a row without a finish time (``evalfleet.store.rollups.NO_DAY``, not
imported: that module loads SQLAlchemy)."""

Span = tuple[str, str, str, str, str]
"""A rollups' summary of one (eval, agent name, agent version): its first and last UTC day."""


def narrow(sels: Sequence[tuple[AgentSelector, str]], spans: Sequence[Span], now: datetime
           ) -> tuple[list[set[str]], set[str]] | None:
    """From the rollups' days alone, the versions each selector may mean and the evals whose
    rows decide among them; None when the days cannot tell (then every row is scanned).

    ``spans`` are ``(eval, name, version, first day, last day)`` for every (eval, agent name,
    agent version) of the selectors' names in scope, and must cover exactly the rows the
    slice reads. A version's first eval start is on the first day of its first eval, so
    versions whose first days differ are ordered by the days alone; only versions tied on the
    latest day (and, for a selector with an age, those whose runs at or before the cutoff all
    fall on the cutoff's day) need their exact times, which come from the rows of their evals
    only. A row without a finish time (day 1970-01-01) has no day to go by.
    """
    if any(sp[3] == NO_DAY for sp in spans):
        return None
    eval_day: dict[str, str] = {}
    for e, _, _, day, _ in spans:
        eval_day[e] = min(eval_day.get(e, day), day)
    allowed: list[set[str]] = []
    scan: set[str] = set()
    for sel, _ in sels:
        mine = [sp for sp in spans if sp[1] == sel.name]
        first: dict[str, str] = {}
        for e, _, v, _, _ in mine:
            first[v] = min(first.get(v, eval_day[e]), eval_day[e])
        if sel.version is not None:
            keep = {sel.version}
        elif sel.ago is None:
            top = max(first.values(), default=None)
            keep = {v for v, d in first.items() if d == top}
        else:
            cut = (now - sel.ago).astimezone(UTC).date().isoformat()
            earliest = {v: min(sp[3] for sp in mine if sp[2] == v) for v in first}
            sure = [first[v] for v, d in earliest.items() if d < cut]
            floor = max(sure, default="")  # the best version surely run by the cutoff
            keep = {v for v, d in earliest.items() if d <= cut and first[v] >= floor}
        if not keep & set(first):
            return None  # nothing to choose from: the scan says why (known versions, agents)
        allowed.append(keep)
        scan |= {sp[0] for sp in mine if sp[2] in keep}
    return allowed, scan


def _resolve_all(con: duckdb.DuckDBPyConnection, sels: list[tuple[AgentSelector, str]],
                 eval_ids: list[str], now: datetime,
                 spans: Sequence[Span] | None = None) -> list[dict[str, Any]]:
    """The agent version each selector means, and the evals holding its runs.

    One scan: runs of the selectors' agent names grouped by (name, version, eval) with their
    count, first and last time, and for each selector with an age the last time at or before
    its cutoff. The choice is then made on those few groups. With the rollups' ``spans``
    (:func:`narrow`), the scan reads only the evals that can change the choice.
    """
    narrowed = narrow(sels, spans, now) if spans is not None else None
    allowed: list[set[str] | None] = [None] * len(sels)
    if narrowed is not None:
        allowed[:], within = narrowed[0], sorted(narrowed[1])
        eval_ids = within if not eval_ids else [e for e in eval_ids if e in narrowed[1]]
    scope, params = _eval_scope(eval_ids)
    names = sorted({s.name for s, _ in sels})
    params.update({f"n_{i}": n for i, n in enumerate(names)})
    cut_cols = []
    for j, (sel, _) in enumerate(sels):
        if sel.ago is not None:
            params[f"cut_{j}"] = (now - sel.ago).timestamp()
            cut_cols.append(f", epoch(max({_TS}) FILTER (WHERE {_TS} <= to_timestamp($cut_{j})))")
        else:
            cut_cols.append(", NULL")
    groups = con.execute(f"""
        SELECT agent_name, agent_version, eval_id, count(*), epoch(min({_TS})),
               epoch(max({_TS})){''.join(cut_cols)}
        FROM runs WHERE agent_name IN ({', '.join(f'$n_{i}' for i in range(len(names)))})
        {scope} GROUP BY ALL""", params).fetchall()
    return [_choose(con, sel, flag, j, groups, eval_ids, now, allowed[j])
            for j, (sel, flag) in enumerate(sels)]


def _choose(con: duckdb.DuckDBPyConnection, sel: AgentSelector, flag: str, j: int,
            groups: list[tuple[Any, ...]], eval_ids: list[str], now: datetime,
            allowed: set[str] | None = None) -> dict[str, Any]:
    # ``allowed``: the versions the rollups left (the groups then hold only their evals)
    mine = [g for g in groups if g[0] == sel.name and (allowed is None or g[1] in allowed)]
    if sel.version is not None:
        version, how = sel.version, "named"
    else:
        col = 5 if sel.ago is None else 6 + j  # last run, or last run at or before the cutoff
        timed = [(float(g[col]), str(g[1])) for g in mine if g[col] is not None]
        if not timed:
            when = (f" finished at or before {_iso((now - sel.ago).timestamp())} "
                    f"({sel.text.partition('@')[2].strip()})" if sel.ago is not None else "")
            raise SpecError(f"no run of agent '{sel.name}'{when}{_in_evals(eval_ids)}"
                            f"{_known_agents(con, eval_ids)}", field=flag)
        # the newest version among those that ran (by the cutoff): the one whose first eval
        # started last, and among versions first run in the same eval (an A/B eval of a base
        # and a candidate), the greater version in natural order ("10" after "9"); re-running
        # an old version as a baseline today does not make it the latest
        start = _eval_starts(groups)
        first = {v: min(start[str(g[2])] for g in mine if str(g[1]) == v) for _, v in timed}
        version = max(first, key=lambda v: (first[v], _natural(v)))
        at = max(t for t, v in timed if v == version)
        how = (f"newest version run, last at {_iso(at)}" if sel.ago is None else
               f"newest version run at or before {_iso((now - sel.ago).timestamp())}: "
               f"last at {_iso(at)}")
    found = sorted((g for g in mine if g[1] == version),
                   key=lambda g: (g[5] is not None, g[5] or 0.0, g[2]))
    if not found:
        raise SpecError(f"no runs of {sel.name}@{version}{_in_evals(eval_ids)}"
                        f"{_known_versions(con, sel.name, eval_ids)}", field=flag)
    return {"selector": sel.text, "agent_name": sel.name, "agent_version": version,
            "chosen_by": how,
            "evals": [{"eval_id": g[2], "runs": int(g[3]), "first_run": _iso(g[4]),
                       "last_run": _iso(g[5])} for g in found]}


def _eval_starts(groups: list[tuple[Any, ...]]) -> dict[str, float]:
    """When each eval's first run happened (over every agent of the scan)."""
    out: dict[str, float] = {}
    for g in groups:
        if g[4] is not None:
            out[str(g[2])] = min(out.get(str(g[2]), float(g[4])), float(g[4]))
    return out


def _natural(version: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that orders digit runs as numbers: 2 < 9 < 10 < 10a."""
    return tuple((0, int(part)) if part.isdigit() else (1, part)
                 for part in re.findall(r"\d+|\D+", version))


def _eval_scope(eval_ids: list[str]) -> tuple[str, dict[str, Any]]:
    if not eval_ids:
        return "", {}
    names = [f"ev_{i}" for i in range(len(eval_ids))]
    return (f"AND eval_id IN ({', '.join(f'${n}' for n in names)})",
            dict(zip(names, eval_ids, strict=True)))


def _in_evals(eval_ids: list[str]) -> str:
    return f" in eval(s) {', '.join(eval_ids)}" if eval_ids else " in this home"


def _known_agents(con: duckdb.DuckDBPyConnection, eval_ids: list[str]) -> str:
    scope, params = _eval_scope(eval_ids)
    names = [r[0] for r in con.execute(
        f"SELECT DISTINCT agent_name FROM runs WHERE true {scope} ORDER BY 1 LIMIT 11",
        params).fetchall()]
    return f" (agents: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''})" \
        if names else ""


def _known_versions(con: duckdb.DuckDBPyConnection, name: str, eval_ids: list[str]) -> str:
    scope, params = _eval_scope(eval_ids)
    params["name"] = name
    rows = [r[0] for r in con.execute(
        f"SELECT agent_version FROM runs WHERE agent_name = $name {scope} "
        f"GROUP BY 1 ORDER BY max({_TS}) DESC NULLS LAST LIMIT 11", params).fetchall()]
    if not rows:
        return _known_agents(con, eval_ids)
    return f" (versions of {name}, newest first: {', '.join(rows[:10])}" \
           f"{', ...' if len(rows) > 10 else ''})"


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(float(t), UTC).isoformat(
        timespec="seconds")


def _cell_task_rows(con: duckdb.DuckDBPyConnection, conditions: list[Condition],
                    by_fields: tuple[str, ...], metric: str, a: dict[str, Any],
                    b: dict[str, Any] | None, eval_ids: list[str]
                    ) -> dict[str, npt.NDArray[Any]]:
    """One row per (cell, side, task): scored runs, mean metric, binary, excluded runs."""
    import numpy as np

    from evalfleet.analysis.report import SCORED

    scope, params = _eval_scope(eval_ids)
    params.update(a_name=a["agent_name"], a_version=a["agent_version"])
    sides = "agent_name = $a_name AND agent_version = $a_version"
    if b is not None:
        params.update(b_name=b["agent_name"], b_version=b["agent_version"])
        sides = f"({sides}) OR (agent_name = $b_name AND agent_version = $b_version)"
    clauses = []
    for i, c in enumerate(conditions):
        sql, p = c.sql(f"w{i}")
        clauses.append(f"AND ({sql})")
        params.update(p)
    by_cols = [f"{FIELDS[f].sql} AS by_{i}" for i, f in enumerate(by_fields)]
    by_names = [f"by_{i}" for i in range(len(by_fields))]
    value, binary = METRICS[metric]
    inner = ", ".join([*by_cols,
                       "CASE WHEN agent_name = $a_name AND agent_version = $a_version "
                       "THEN 0 ELSE 1 END AS side",
                       "task_id", f"coalesce(({SCORED}), false) AS ok", f"{value} AS v",
                       f"({binary}) AS bin", "status"])
    keys = ", ".join([*by_names, "side", "task_id"])
    sql = f"""
        SELECT {keys},
               count(*) FILTER (WHERE ok) AS n,
               avg(v) FILTER (WHERE ok) AS mean,
               coalesce(bool_and(bin) FILTER (WHERE ok), true) AS binary,
               count(*) FILTER (WHERE NOT ok AND status = 'cancelled') AS cancelled,
               count(*) FILTER (WHERE NOT ok AND status IS DISTINCT FROM 'cancelled')
                   AS errored
        FROM (SELECT {inner} FROM runs WHERE ({sides}) {' '.join(clauses)} {scope})
        GROUP BY {keys} ORDER BY {keys}"""
    tbl = con.execute(sql, params).fetchnumpy()
    return {k: np.asarray(v) for k, v in tbl.items()}


def _cells(rows: dict[str, npt.NDArray[Any]], by_fields: tuple[str, ...], metric: str, *,
           paired: bool, alpha: float, min_tasks: int, same: bool) -> list[dict[str, Any]]:
    """Each cell's estimates, paired difference and Holm-adjusted p (see the module doc)."""
    import numpy as np

    from evalfleet import stats

    n_rows = int(rows["task_id"].size)
    by_values = [rows[f"by_{i}"].tolist() for i in range(len(by_fields))]
    keys = list(zip(*by_values, strict=True)) if by_fields else [()] * n_rows
    order: dict[tuple[Any, ...], list[int]] = {}
    for i, k in enumerate(keys):
        order.setdefault(k, []).append(i)
    side = rows["side"] if n_rows else np.array([], dtype=int)
    cells: list[dict[str, Any]] = []
    for key in sorted(order, key=lambda k: tuple((v is None, v) for v in k)):
        idx = np.asarray(order[key], dtype=int)
        cell: dict[str, Any] = {"cell": dict(zip(by_fields, key, strict=True)),
                                "label": ", ".join(f"{f}={v}" for f, v in
                                                   zip(by_fields, key, strict=True)) or "all"}
        ia = idx[side[idx] == 0]
        ib = ia if same else idx[side[idx] == 1]
        cell["agent"] = _side(rows, ia, metric, min_tasks)
        if paired:
            cell["vs"] = _side(rows, ib, metric, min_tasks)
            cell["paired"] = _paired(rows, ia, ib, metric, min_tasks)
        cells.append(cell)
    if paired:
        tested = [c for c in cells if c["paired"].get("p_value") is not None]
        holm = stats.adjust_pvalues([c["paired"]["p_value"] for c in tested], "holm",
                                    alpha=alpha)
        for j, c in enumerate(tested):
            p = c["paired"]
            p["p_holm"] = float(holm.adjusted[j])
            p["flagged"] = bool(holm.reject[j]) and p["estimate"] is not None \
                and p["estimate"] != 0
            p["direction"] = (None if not p["flagged"] else
                              "up" if p["estimate"] > 0 else "down")
    return cells


def _scored(rows: dict[str, npt.NDArray[Any]], idx: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The rows of ``idx`` whose task has at least one scored run."""
    kept: npt.NDArray[Any] = idx[rows["n"][idx] > 0]
    return kept


def _side(rows: dict[str, npt.NDArray[Any]], idx: npt.NDArray[Any], metric: str,
          min_tasks: int) -> dict[str, Any]:
    """One side of one cell: the report's estimate over its tasks, and its excluded runs."""

    from evalfleet import stats
    from evalfleet.analysis.report import mean_dict, rate_dict

    excluded = {"errored": int(rows["errored"][idx].sum()),
                "cancelled": int(rows["cancelled"][idx].sum())}
    s = _scored(rows, idx)
    n = int(s.size)
    base: dict[str, Any] = {"n_tasks": n, "n_runs": int(rows["n"][s].sum()),
                            "excluded": excluded}
    if n < min_tasks:
        return {**base, "mean": None, "se": None, "ci_low": None, "ci_high": None,
                "method": f"too few tasks: {n} scored (an estimate needs {min_tasks})"}
    values = rows["mean"][s].astype(float)
    if metric in RATE_METRICS:
        est = rate_dict(values, rows["n"][s], rows["binary"][s])
    else:
        est = mean_dict(stats.mean_with_se(values))
        if not est["se"]:  # SE 0 (or none): a point would claim certainty
            est.update(ci_low=None, ci_high=None,
                       method=f"{est['method']}; SE 0, so no interval: a point would claim "
                              "certainty")
    est.pop("n_clusters", None)
    return {**base, **{k: v for k, v in est.items() if k != "n_tasks"}}


def _binary_k1(rows: dict[str, npt.NDArray[Any]], idx: npt.NDArray[Any]) -> bool:
    """One run per task, each with a verdict and a 0/1 value (compare's McNemar design)."""
    import numpy as np

    if idx.size == 0:
        return False
    v = rows["mean"][idx].astype(float)
    return (bool(np.all(rows["binary"][idx])) and int(rows["n"][idx].max()) == 1
            and bool(np.all((v == 0.0) | (v == 1.0))))


def _paired(rows: dict[str, npt.NDArray[Any]], ia: npt.NDArray[Any], ib: npt.NDArray[Any],
            metric: str, min_tasks: int) -> dict[str, Any]:
    """AGENT - VS on the tasks both sides scored in the cell, with compare's test."""
    import numpy as np

    from evalfleet.analysis.compare import paired_test

    sa, sb = _scored(rows, ia), _scored(rows, ib)
    pos_b = {t: i for t, i in zip(rows["task_id"][sb].tolist(), sb.tolist(), strict=True)}
    pa_, pb_ = [], []
    for t, i in zip(rows["task_id"][sa].tolist(), sa.tolist(), strict=True):
        j = pos_b.get(t)
        if j is not None:
            pa_.append(i)
            pb_.append(j)
    xa, xb = np.asarray(pa_, dtype=int), np.asarray(pb_, dtype=int)
    n = int(xa.size)
    if n < min_tasks:
        return {"n_tasks": n, "estimate": None, "ci_low": None, "ci_high": None,
                "p_value": None, "p_holm": None, "test": None, "flagged": False,
                "method": f"too few paired tasks: {n} scored on both sides (a test needs "
                          f"{min_tasks})"}
    binary = metric in RATE_METRICS and _binary_k1(rows, xa) and _binary_k1(rows, xb)
    out = paired_test(rows["mean"][xa].astype(float), rows["mean"][xb].astype(float),
                      binary_k1=binary)
    keep = ("estimate", "se", "ci_low", "ci_high", "p_value", "n_tasks", "correlation",
            "mean_base", "mean_new", "test", "method", "mcnemar")
    res = {k: out[k] for k in keep if k in out}
    res["mean_vs"] = res.pop("mean_base")
    res["mean_agent"] = res.pop("mean_new")
    res.update(p_holm=None, flagged=False)
    return res
