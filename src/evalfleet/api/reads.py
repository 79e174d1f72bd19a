"""Reading evals, read-only: status, reports, comparisons, queries and single runs.

Everything here opens the store with ``open_reader`` (creates, sweeps and locks nothing), so
it is safe to call while a driver runs the same eval; ``open_store`` is for the driver.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from evalfleet.api.sources import StoreSource, open_results, resolve_eval
from evalfleet.cost.budget import Stratum, project_by_agent, project_total
from evalfleet.cost.prices import load_price_table
from evalfleet.errors import SpecError, UnknownEvalError
from evalfleet.settings import Settings, load_settings
from evalfleet.spec.plan import Plan
from evalfleet.store.liveness import driver_alive

if TYPE_CHECKING:
    from evalfleet.analysis.compare import Side
    from evalfleet.store import Store

# Analysis (scipy, statsmodels, duckdb) is imported where it is used, so that running an eval
# does not pay its import time and memory (about 100 MB) in the driver.


CLUSTER_KEYS = ("repository", "category")
"""Coarser keys a report or comparison may cluster the SE by."""


def open_store(settings: Settings) -> Store:
    """The store of the configured home, for writing (creates the home 0700 if missing).

    Raises:
        SpecError: the home, or the nearest of its parents that exists, is not a directory,
            or the home cannot be created or opened (``--home``).
    """
    home = settings.home
    existing = home
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == home else f" ({existing} is not a directory)"
        raise SpecError(f"home {home} is not a directory{where}", field="--home")
    try:
        from evalfleet.store import Store

        return Store(home, settings.journal_url, warehouse_url=settings.warehouse_url)
    except OSError as exc:  # a read-only file system, no permission
        raise SpecError(f"cannot use home {home}: {exc.strerror or exc}",
                        field="--home") from None


def open_reader(settings: Settings) -> Store:
    """The store of the configured home, read-only: creates, sweeps and locks nothing.

    Raises:
        UnknownEvalError: the home or its journal does not exist ("no evals in HOME").
    """
    from evalfleet.store import Store

    return Store.open_readonly(settings.home, settings.journal_url,
                               warehouse_url=settings.warehouse_url)


def resolve_eval_id(store: Store, eval_id: str) -> str:
    """An exact eval id, or a unique prefix of one."""
    return resolve_eval(StoreSource(store), eval_id)


def status(eval_id: str | None = None, *, settings: Settings | None = None) -> dict[str, Any]:
    """Status of every eval, or of one with per-agent progress (read-only)."""
    settings = settings or load_settings()
    store = open_reader(settings)
    try:
        if eval_id is None:
            return {"evals": [status_row(store, e) for e in store.journal.list_evals()]}
        eval_id = resolve_eval_id(store, eval_id)
        row = store.journal.get_eval(eval_id)
        out = status_row(store, row)
        prog = store.journal.progress(eval_id)["agents"]
        plan = Plan.model_validate(row["plan"])
        by_agent = project_by_agent(strata_of(store, eval_id))
        out["budget_usd"] = plan.budget_usd
        out["agents"] = [{"agent_name": a.name, "agent_version": a.version, "model": a.model,
                          **prog.get(i, {}), "budget_usd": a.budget_usd,
                          "projected_usd": _usd(by_agent.get(i))}
                         for i, a in enumerate(plan.agents)]
        out["duplicates_dropped"] = row["duplicates_dropped"]
        from evalfleet.api.metrics import eval_progress

        # workers, in flight, retries, quarantined tasks (with their errors), ETA
        out.update(eval_progress(store, eval_id, row))
        return out
    finally:
        store.close()


def strata_of(store: Store, eval_id: str) -> dict[tuple[int, str | None], Stratum]:
    """The eval's projection strata from the journal: (agent index, task category) -> planned,
    done, executed and spent (category None: runs recorded before the journal had strata)."""
    return {k: Stratum(planned, done, ran, spent)
            for k, (planned, done, ran, spent) in store.journal.strata(eval_id).items()}


def _usd(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def status_row(store: Store, e: dict[str, Any]) -> dict[str, Any]:
    prog = store.journal.progress(e["eval_id"])["agents"].values()
    strata = strata_of(store, e["eval_id"])
    return {
        "eval_id": e["eval_id"], "plan_name": e["plan_name"], "status": live_status(e),
        "planned": e["planned"], "done": sum(a["done"] for a in prog),
        "errored": sum(a["errored"] for a in prog), "running": sum(a["running"] for a in prog),
        "cancelled": sum(a["cancelled"] for a in prog),
        "cost_usd": round(sum(a["cost_usd"] for a in prog), 6),
        # spent / done x planned by (agent, task category); by agent for runs recorded
        # before the journal kept categories; None until a run has run
        "projected_usd": _usd(project_total(strata)),
        "projected_by": "agent" if any(k[1] is None for k in strata) else "stratum",
        "started_at": _iso(e.get("started_at") or e.get("created_at")),
        "finished_at": _iso(e.get("finished_at")),
    }


def live_status(e: dict[str, Any]) -> str:
    """The eval's status, ``interrupted`` for one ``running`` whose driver is gone."""
    if e["status"] == "running" and not driver_alive(e.get("driver"), e.get("driver_heartbeat")):
        return "interrupted"  # the driver died without saying so (crash, SIGKILL)
    return str(e["status"])


def _iso(t: float | None) -> str | None:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds") if t else None


def report(eval_id: str, *, settings: Settings | None = None, cluster: str | None = None,
           max_tasks: int | None = None, summary: bool = False) -> dict[str, Any]:
    """The report of an eval, complete or partial (read-only).

    ``cluster`` (repository or category) clusters the overall SE by that key (CR1);
    ``max_tasks`` keeps only the first (worst) tasks of each agent's per-task list;
    ``summary`` leaves out the intervals the end-of-run summary does not print (the latency
    quantiles' and the cost per success's).

    In the default layout the journal is read with sqlite3 (:func:`open_results`): importing
    SQLAlchemy would cost about a quarter of a second of the command.
    """
    check_cluster(cluster)
    settings = settings or load_settings()
    source = open_results(settings)
    try:
        eval_id = resolve_eval(source, eval_id)
        row = source.get_eval(eval_id)
        plan = Plan.model_validate(row["plan"])
        from evalfleet.analysis.report import build_report

        # budget-cancelled runs live only in the journal: one count by agent (not
        # status_row, whose progress and strata read every run of the eval: seconds at 1M)
        cancelled = source.cancelled_by_agent(eval_id)
        status = live_status(row)
        rep = build_report(home=source.home, paths=source.results_paths(eval_id),
                           eval_row={**row, "status": status,
                                     "cancelled": sum(cancelled.values()),
                                     "cancelled_by_agent": [
                                         cancelled.get(i, 0) for i in range(len(plan.agents))]},
                           plan=plan, cluster=cluster, max_tasks=max_tasks,
                           # an unpriced model's $0 is not a measurement: cost.unpriced says so
                           prices=load_price_table(settings.prices),
                           # finds a full baseline of a sampled eval, in whatever warehouse
                           catalog=source, paths_of=source.results_paths, summary=summary)
        for agent_rep, spec in zip(rep["agents"], plan.agents, strict=True):
            agent_rep["model"] = spec.model
        # poison tasks: not run any more, their runs missing data (execution/quarantine.py);
        # their runs never run are not "missing" (left to run) but quarantined
        rep["quarantined_tasks"] = quarantined = source.quarantined(eval_id)
        cov = rep["coverage"]
        cov["quarantined"] = n = sum(q["runs_quarantined"] for q in quarantined)
        cov["missing"] = max(cov["missing"] - n, 0)
        return rep
    finally:
        source.close()


def check_cluster(cluster: str | None) -> None:
    if cluster is not None and cluster not in CLUSTER_KEYS:
        raise SpecError(f"cannot cluster by '{cluster}' (choose {', '.join(CLUSTER_KEYS)})",
                        field="--cluster")


def resolve_side(store: Store, ref: str) -> Side:
    """``EVAL_ID``, ``EVAL_ID/AGENT@VERSION`` or ``AGENT@VERSION`` (its latest eval) as a Side."""
    eval_part, _, agent_part = ref.partition("/")
    if not agent_part and "@" in ref:
        name, _, version = ref.partition("@")
        for e in store.journal.list_evals():  # newest first
            agents = Plan.model_validate(store.journal.get_eval(e["eval_id"])["plan"]).agents
            for i, a in enumerate(agents):
                if a.name == name and a.version == version:
                    return _side(store, e["eval_id"], i, a.name, a.version)
        raise UnknownEvalError(f"no eval has agent {ref}")
    eval_id = resolve_eval_id(store, eval_part)
    agents = Plan.model_validate(store.journal.get_eval(eval_id)["plan"]).agents
    if not agent_part:
        if len(agents) != 1:
            raise SpecError(f"eval {eval_id} has {len(agents)} agents; name one as "
                            f"{eval_id}/AGENT@VERSION (one of: "
                            f"{', '.join(a.label for a in agents)})")
        return _side(store, eval_id, 0, agents[0].name, agents[0].version)
    for i, a in enumerate(agents):
        if a.label == agent_part or (a.name == agent_part and len(agents) == 1):
            return _side(store, eval_id, i, a.name, a.version)
    raise SpecError(f"eval {eval_id} has no agent {agent_part} (it has: "
                    f"{', '.join(a.label for a in agents)})")


def _side(store: Store, eval_id: str, index: int, name: str, version: str) -> Side:
    from evalfleet.analysis.compare import Side

    return Side(eval_id=eval_id, agent_name=name, agent_version=version,
                paths=store.results_paths(eval_id),
                planned_tasks=store.journal.planned_tasks(eval_id, index))


def compare(refs: Sequence[str], *, settings: Settings | None = None, margin: float = 0.01,
            alpha: float = 0.05, cluster: str | None = None) -> dict[str, Any]:
    """Paired comparison of BASE (first) with NEW (the others) on their shared tasks."""
    if len(refs) < 2:
        raise SpecError("compare needs a BASE and at least one NEW")
    if not 0 <= margin < 1:
        raise SpecError(f"margin must be in [0, 1) as a fraction, got {margin}", field="--margin")
    check_cluster(cluster)
    settings = settings or load_settings()
    store = open_reader(settings)
    try:
        from evalfleet.analysis.compare import compare as compare_sides

        sides = [resolve_side(store, r) for r in refs]
        out = compare_sides(store.home, sides, margin=margin, alpha=alpha, cluster=cluster)
        out["status"] = {s.eval_id: status_row(store, store.journal.get_eval(s.eval_id))["status"]
                         for s in sides}
        return out
    finally:
        store.close()


def query(sql: str, *, eval_id: str | None = None,
          settings: Settings | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """One SELECT over the view ``runs`` of the committed results (of one eval, or all).

    Read-only and confined: the SQL must be a single SELECT, and DuckDB runs it in memory with
    access to nothing but the committed Parquet files (no COPY, ATTACH, other files, settings).

    Raises:
        SpecError: the SQL is not one SELECT, or DuckDB refused or failed it.
        UnknownEvalError: no such eval, or no evals in the home.
    """
    from evalfleet.store.warehouse import check_read_only
    from evalfleet.store.warehouse import query as run_query

    check_read_only(sql)  # before touching the store: a refused query reads nothing
    settings = settings or load_settings()
    # the tables ``rollups`` and ``evals`` come from the journal through the store; a query
    # that cannot name them reads the files' list without SQLAlchemy (default layout)
    journal_tables = re.search(r"rollups|evals", sql, re.IGNORECASE) is not None
    source = (StoreSource(open_reader(settings)) if journal_tables
              else open_results(settings))
    try:
        if eval_id is not None:  # "--eval ''" (an unset variable) is an error, not "all"
            paths = source.results_paths(resolve_eval(source, eval_id))
        else:
            paths = source.all_results_paths()
        journal = source.store.journal if isinstance(source, StoreSource) else None
        return run_query(settings.home, paths, sql, journal)
    finally:
        source.close()


def show_run(run_ref: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """One committed run, read-only: its results row, its trajectory's events in order, and
    the scorer's reports (the trajectory events of kind ``scorer``).

    ``run_ref`` is a run id or a unique prefix of one (matched literally).

    Raises:
        SpecError: no committed run matches, or the prefix matches several.
        UnknownEvalError: the home has no evals.
    """
    import pyarrow.compute as pc

    from evalfleet.store import fs
    from evalfleet.store.warehouse import require_files

    if not run_ref:
        raise SpecError("give a run id (or a unique prefix of one)", field="RUN_ID")
    settings = settings or load_settings()
    store = open_reader(settings)
    try:
        found: dict[str, str] = {}  # run id -> results file (relative to the warehouse root)
        require_files(store.home, store.all_results_paths())
        for rel in store.journal.live_results_paths():
            with fs.parquet_file(store.root, rel) as pf:
                ids = pf.read(columns=["run_id"]).column("run_id")
            hits = ids.filter(pc.starts_with(ids, pattern=run_ref)).to_pylist()
            found.update({rid: rel for rid in hits})
        if not found:
            raise SpecError(f"no committed run '{run_ref}' in {store.home} (runs appear once "
                            "committed; `evalfleet query` lists run ids)", field="RUN_ID")
        if len(found) > 1:
            some = ", ".join(sorted(found)[:5])
            raise SpecError(f"'{run_ref}' matches {len(found)} runs: {some}"
                            f"{', ...' if len(found) > 5 else ''}", field="RUN_ID")
        (run_id, rel), = found.items()
        with fs.parquet_file(store.root, rel) as pf:
            table = pf.read()
        row = table.filter(pc.equal(table.column("run_id"), run_id)).to_pylist()[0]
        row["metrics"] = dict(row.get("metrics") or [])
        uri = row.get("trajectory_uri")
        trajectory = store.read_trajectory(uri, run_id) if uri else None
        removed = ""
        if uri == "":  # retention removed it (docs/retention.md); NULL: it never had one
            from evalfleet.api.retention import removed_note

            removed = removed_note(store, str(row["eval_id"]))
    finally:
        store.close()
    events = list((trajectory or {}).get("events", []))
    return {"run": row, "events": events,
            "dropped_events": (trajectory or {}).get("dropped_events", 0),
            "trajectory_found": trajectory is not None or not uri,
            "trajectory_removed": removed,
            "scorer_reports": [e for e in events if e.get("kind") == "scorer"]}
