"""Budgets and projected totals: the eval's budget stops leasing with room for the runs in
flight, an agent's budget stops only that agent, resume with more budget finishes exactly once,
and the projected total (spent / done x planned by stratum) in `status` is what a hand
computation from the committed rows gives; an older journal is migrated by the writer and read
as it is by readers."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Column, MetaData, Table, select

from evalfleet import api
from evalfleet.cli import main
from evalfleet.cost.budget import Budgets, Stratum, Tally, project_total
from evalfleet.settings import Settings
from evalfleet.spec.loaders import load_plan, load_suite_ref
from evalfleet.spec.plan import Plan
from evalfleet.store.journal import MIGRATIONS, Journal
from evalfleet.store.schema import batches, evals, runs, runs_v1

N_TASKS = 24
IN_FLIGHT = 4
INFRA_USD_PER_HOUR = 60.0  # a sandbox second costs about what a model call does here


def _plan(path: Path, *, agents: list[dict[str, Any]], budget: float | None = None,
          n_tasks: int = N_TASKS) -> Path:
    plan: dict[str, Any] = {
        "name": path.stem, "suite": {"builtin": "humaneval", "limit": n_tasks},
        "runs_per_task": 1, "agents": agents,
        "execution": {"max_in_flight": IN_FLIGHT},
        "costs": {"infra_usd_per_hour": INFRA_USD_PER_HOUR},
        "simulator": {"models": {"sim-large": {"skill": 0.8, "latency_s": 0.02}}, "seed": 1},
    }
    if budget is not None:
        plan["budget_usd"] = budget
    path.write_text(yaml.safe_dump(plan))
    return path


def _agent(name: str, budget: float | None = None) -> dict[str, Any]:
    a: dict[str, Any] = {"name": name, "version": "1", "kind": "openai", "model": "sim-large",
                         "args": {"base_url": "{simulator}", "api_key_env": None,
                                  "tools": False}}
    if budget is not None:
        a["budget_usd"] = budget
    return a


def _cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["evalfleet", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _status_json(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                 home: Path, eval_id: str) -> dict[str, Any]:
    capsys.readouterr()
    assert _cli(monkeypatch, "status", eval_id, "--home", str(home), "--json") == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def _rows(settings: Settings, eval_id: str) -> list[dict[str, Any]]:
    """The committed result rows: run, agent, category, total cost."""
    cols, rows = api.query("SELECT run_id, agent_name, category, cost_usd, infra_cost_usd "
                           "FROM runs", eval_id=eval_id, settings=settings)
    return [dict(zip(cols, r, strict=True)) for r in rows]


def _journal_runs(home: Path, eval_id: str) -> list[tuple[str, str, int]]:
    j = Journal.open_readonly(home)
    try:
        with j.engine.connect() as conn:
            return [(r, s, i) for r, s, i in conn.execute(
                select(runs.c.run_id, runs.c.status, runs.c.agent_index)
                .where(runs.c.eval_key == j.eval_key(eval_id)))]
    finally:
        j.close()


def _only_eval(settings: Settings) -> str:
    (ev,) = api.status(settings=settings)["evals"]
    return str(ev["eval_id"])


@pytest.fixture(scope="module")
def unit_cost(tmp_path_factory: pytest.TempPathFactory) -> tuple[float, float]:
    """(total, most expensive run) of the plan's runs for one agent, measured without budget:
    what the budgets below are set from."""
    tmp = tmp_path_factory.mktemp("calibrate")
    settings = Settings(home=tmp / "home")
    summary = api.run(_plan(tmp / "calibrate.yaml", agents=[_agent("a")]), settings=settings)
    assert summary.status == "completed" and summary.done == N_TASKS
    rows = _rows(settings, summary.eval_id)
    costs = [r["cost_usd"] + r["infra_cost_usd"] for r in rows]
    assert min(r["infra_cost_usd"] for r in rows) > 0  # the budget has infra cost to count
    return sum(costs), max(costs)


@pytest.mark.slow
def test_eval_budget_stops_about_half_then_resume_completes_exactly_once(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], unit_cost: tuple[float, float]) -> None:
    total, _ = unit_cost
    budget = total / 2
    home = str(settings.home)
    plan = _plan(tmp_path / "half.yaml", agents=[_agent("a")], budget=budget)
    assert _cli(monkeypatch, "run", str(plan), "--home", home, "--quiet") == 3
    eval_id = _only_eval(settings)
    st = _status_json(monkeypatch, capsys, settings.home, eval_id)
    assert st["status"] == "budget_stopped"
    assert 0 < st["done"] < N_TASKS and st["cancelled"] == N_TASKS - st["done"]
    rows = _rows(settings, eval_id)
    costs = [r["cost_usd"] + r["infra_cost_usd"] for r in rows]
    # every result kept; the spend (model + infra) passes the budget by at most the runs that
    # were in flight when it stopped
    assert len(rows) == st["done"]
    assert abs(sum(costs) - st["cost_usd"]) < 1e-5
    assert sum(costs) <= budget + IN_FLIGHT * max(costs)

    # resumed with room for half a run at the mean cost of the runs the first driver did:
    # nothing starts (the first runs of a driver would start unchecked without that mean)
    mean = st["cost_usd"] / st["done"]
    assert _cli(monkeypatch, "resume", eval_id, "--budget", str(st["cost_usd"] + mean / 2),
                "--home", home, "--quiet") == 3
    assert _status_json(monkeypatch, capsys, settings.home, eval_id)["done"] == st["done"]

    assert _cli(monkeypatch, "resume", eval_id, "--budget", str(10 * total), "--home", home,
                "--quiet") == 0
    after = _status_json(monkeypatch, capsys, settings.home, eval_id)
    assert after["status"] == "completed" and after["cancelled"] == 0
    journal = _journal_runs(settings.home, eval_id)
    assert len(journal) == N_TASKS and {s for _, s, _ in journal} == {"done"}
    ids = [r["run_id"] for r in _rows(settings, eval_id)]
    assert len(ids) == N_TASKS and len(set(ids)) == N_TASKS  # each run committed exactly once
    assert set(ids) == {rid for rid, _, _ in journal}
    assert api.status(eval_id, settings=settings)["duplicates_dropped"] == 0


def _hand_projection(rows: list[dict[str, Any]], planned: dict[tuple[str, str], int]) -> float:
    """sum over (agent, category) of spent / done x planned; a stratum without a run takes its
    agent's mean, then the eval's."""
    spent: dict[tuple[str, str], float] = {}
    done: dict[tuple[str, str], int] = {}
    for r in rows:
        k = (r["agent_name"], r["category"])
        spent[k] = spent.get(k, 0.0) + r["cost_usd"] + r["infra_cost_usd"]
        done[k] = done.get(k, 0) + 1
    eval_mean = sum(spent.values()) / sum(done.values())
    out = 0.0
    for k, n in planned.items():
        if done.get(k):
            out += spent[k] / done[k] * n
            continue
        mine = [h for h in done if h[0] == k[0]]
        mean = (sum(spent[h] for h in mine) / sum(done[h] for h in mine)) if mine else eval_mean
        out += mean * n
    return out


@pytest.mark.slow
def test_agent_budget_stops_only_that_agent_and_status_projects_by_stratum(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], unit_cost: tuple[float, float]) -> None:
    total, _ = unit_cost
    b_budget = total / 3  # about a third of b's runs
    home = str(settings.home)
    path = _plan(tmp_path / "two.yaml", agents=[_agent("a"), _agent("b", budget=b_budget)])
    assert _cli(monkeypatch, "run", str(path), "--home", home, "--quiet") == 3
    eval_id = _only_eval(settings)
    st = _status_json(monkeypatch, capsys, settings.home, eval_id)
    a, b = st["agents"]
    assert st["status"] == "budget_stopped"
    assert a["done"] == a["planned"] == N_TASKS and a["cancelled"] == 0  # the eval went on
    assert 0 < b["done"] < N_TASKS and b["cancelled"] == N_TASKS - b["done"]
    assert b["budget_usd"] == pytest.approx(b_budget)
    rows = _rows(settings, eval_id)
    b_costs = [r["cost_usd"] + r["infra_cost_usd"] for r in rows if r["agent_name"] == "b"]
    assert sum(b_costs) <= b_budget + IN_FLIGHT * max(b_costs)

    # the projection by hand: planned per (agent, category) from the suite, the rest from the
    # committed rows
    plan = load_plan(path)
    suite = load_suite_ref(plan.suite, plan)
    planned: dict[tuple[str, str], int] = {}
    for task in suite.tasks:
        for agent in ("a", "b"):
            planned[(agent, task.category)] = planned.get((agent, task.category), 0) + 1
    assert len({c for _, c in planned}) > 1  # more than one category: strata matter
    assert st["projected_by"] == "stratum"
    assert st["projected_usd"] == pytest.approx(_hand_projection(rows, planned), abs=1e-5)
    for agent in (a, b):
        name = agent["agent_name"]
        mine = {k: n for k, n in planned.items() if k[0] == name}
        assert agent["projected_usd"] == pytest.approx(
            _hand_projection([r for r in rows if r["agent_name"] == name], mine), abs=1e-5)

    assert _cli(monkeypatch, "resume", eval_id, "--agent-budget", f"b@1={10 * total}",
                "--home", home, "--quiet") == 0
    after = _status_json(monkeypatch, capsys, settings.home, eval_id)
    assert after["status"] == "completed" and after["done"] == 2 * N_TASKS
    assert after["agents"][1]["budget_usd"] == pytest.approx(10 * total)
    ids = [r["run_id"] for r in _rows(settings, eval_id)]
    assert len(ids) == len(set(ids)) == 2 * N_TASKS
    # complete: the projection is what was spent
    assert after["projected_usd"] == pytest.approx(after["cost_usd"], abs=1e-5)


def test_a_budget_reached_by_the_last_runs_stops_nothing(make_plan: Callable[..., Path],
                                                         settings: Settings) -> None:
    # three runs, four may fly, and the plan estimates a run at $0: the first wave is all of
    # them, and their infrastructure seconds pass the tiny budget; no run was left unrun, so
    # the eval is completed, not budget_stopped
    plan = make_plan(n_tasks=3, budget_usd=1e-9, costs={"infra_usd_per_hour": 1000},
                     execution={"max_in_flight": 4}, estimate={"seconds": 0})
    summary = api.run(plan, settings=settings)
    assert summary.cost_usd > 1e-9
    assert summary.status == "completed" and summary.done == 3


def test_resume_runs_budget_cancelled_runs_whatever_status_a_crash_left(
        make_plan: Callable[..., Path], settings: Settings) -> None:
    # an agent's budget cancelled runs, then the driver died: the eval says running (or
    # interrupted after Ctrl-C), not budget_stopped; resume must still run them
    plan = load_plan(make_plan(n_tasks=4))
    store = api.open_store(settings)
    try:
        eval_id = api.create_eval(store, plan, api.validate_plan(plan))
        assert store.journal.cancel_pending(eval_id, agent_index=0) == 4
        store.journal.set_status(eval_id, "running")
    finally:
        store.close()
    summary = api.resume(eval_id, settings=settings)
    assert summary.status == "completed" and summary.done == 4


def test_resume_agent_budget_mistakes_are_one_line_errors(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    plan = Plan.model_validate(yaml.safe_load(_plan(tmp_path / "p.yaml", agents=[_agent("a")],
                                                    n_tasks=2).read_text()))
    store = api.open_store(settings)
    try:
        eval_id = api.create_eval(store, plan, api.validate_plan(plan))
    finally:
        store.close()
    home = str(settings.home)
    for bad, says in ((["--agent-budget", "nobody@1=5"], "no agent nobody@1"),
                      (["--agent-budget", "a@1"], "AGENT@VERSION=DOLLARS"),
                      (["--agent-budget", "a@1=lots"], "AGENT@VERSION=DOLLARS"),
                      (["--agent-budget", "a@1=-3"], "budget -3 for a@1")):
        capsys.readouterr()
        assert _cli(monkeypatch, "resume", eval_id, *bad, "--home", home, "--quiet") == 2, bad
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err, (bad, err)
    # nothing was changed or run by a refused resume
    assert api.status(eval_id, settings=settings)["agents"][0]["budget_usd"] is None
    assert api.status(eval_id, settings=settings)["done"] == 0


# --- the arithmetic ---------------------------------------------------------------------------

def test_expected_cost_is_the_agents_mean_then_the_evals_then_zero() -> None:
    b = Budgets.start(10.0, [None, 2.0, None])
    assert b.expected(0) == 0.0 and not b.eval_blocks({0: 100})  # nothing known: unchecked
    b.add(0, 1.0)
    b.add(0, 3.0)
    assert b.expected(0) == 2.0 and b.expected(1) == 2.0  # b has none: the eval's mean
    b.add(1, 0.5)
    assert b.expected(1) == 0.5 and b.expected(2) == pytest.approx(4.5 / 3)
    # spent 4.5; two of agent 0 in flight (4.0 expected) and one more (2.0) pass $10
    assert b.eval_blocks({0: 1}, next_agent=0) is False  # 4.5 + 2 + 2 = 8.5
    assert b.eval_blocks({0: 2}, next_agent=0) is True  # 4.5 + 4 + 2 = 10.5
    # agent 1: spent 0.5 of 2.0; 2 in flight + 1 more at 0.5 = 2.0 is not past it, 3 is
    assert b.agent_blocks(1, 2) is False and b.agent_blocks(1, 3) is True
    # resumed: the earlier drivers' runs give the means at once
    r = Budgets.start(10.0, [None, 2.0, None], {0: Tally(2, 4.0), 1: Tally(1, 0.5)})
    assert r.eval.spent_usd == 4.5 and r.expected(0) == 2.0 and r.agents[1].spent_usd == 0.5
    r.charge(1, 1.5)  # a run that will run again: counted as spent, not in the mean
    assert r.agents[1].exhausted and r.expected(1) == 0.5


def test_projection_by_stratum_with_fallbacks_and_reused_runs() -> None:
    strata = {
        (0, "x"): Stratum(planned=10, done=2, ran=2, spent_usd=4.0),  # 2.0 a run -> 20
        (0, "y"): Stratum(planned=5, done=0, ran=0, spent_usd=0.0),  # agent 0's mean 2.0 -> 10
        (1, "x"): Stratum(planned=4, done=0, ran=0, spent_usd=0.0),  # eval's mean 2.0 -> 8
    }
    assert project_total(strata) == pytest.approx(38.0)
    strata[(1, "y")] = Stratum(planned=4, done=4, ran=1, spent_usd=1.0)  # 3 reused at $0
    # agent 1's mean is 1.0 (one run ran); (1, x) -> 4; (1, y) is complete -> 1
    assert project_total(strata) == pytest.approx(20 + 10 + 4 + 1)
    assert project_total({(0, "x"): Stratum(planned=3)}) is None  # nothing ran yet


# --- the journal ------------------------------------------------------------------------------

def test_lease_skips_agents_and_cancel_pending_targets_one(tmp_path: Path) -> None:
    j = Journal.open(tmp_path)
    j.create_eval(eval_id="e", plan_name="p", plan_json="{}", suite_name="s", suite_hash="h",
                  planned=6, rows=[(f"r{i}", f"t{i // 2}", i % 2, 0, "c") for i in range(6)])
    got = j.lease("e", "me", 10, 60, skip_agents={1})
    assert {lr.agent_index for lr in got} == {0} and len(got) == 3
    j.release("e", "me", [got[0].run_id])  # one of them back to pending, the others held
    assert j.lease_state("e")[:2] == (4, 2)
    assert j.cancel_pending("e", agent_index=1) == 3
    assert j.cancel_pending("e") == 1  # the released run of agent 0
    assert j.strata("e") == {(0, "c"): (3, 0, 0, 0.0), (1, "c"): (3, 0, 0, 0.0)}
    j.close()


def _old_journal(home: Path) -> None:
    """A journal as the release before strata created it: its tables, without the stratum
    column or the migrations table, holding one eval with two committed runs."""
    old = MetaData()
    for table in (evals, batches):
        table.to_metadata(old)
    Table("runs", old, *[Column(c.name, c.type, primary_key=c.primary_key,
                                nullable=c.nullable) for c in runs_v1.c if c.name != "stratum"])
    home.mkdir(parents=True)
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{home / 'journal.db'}")
    old.create_all(engine)
    plan = Plan.model_validate({"name": "old", "suite": {"builtin": "humaneval", "limit": 2},
                                "agents": [_agent("a"), _agent("b")]})
    with engine.begin() as conn:
        conn.execute(old.tables["evals"].insert().values(
            eval_id="old", plan_name="old", plan_json=plan.model_dump_json(), suite_name="s",
            suite_hash="h", status="interrupted", planned=4, created_at=time.time(),
            duplicates_dropped=0))
        conn.execute(old.tables["runs"].insert(), [
            {"run_id": "r0", "eval_id": "old", "seq": 0, "task_id": "t0", "agent_index": 0,
             "repeat": 0, "status": "done", "attempts": 1, "cost_usd": 0.3, "outcome": "completed"},
            {"run_id": "r1", "eval_id": "old", "seq": 1, "task_id": "t0", "agent_index": 1,
             "repeat": 0, "status": "done", "attempts": 1, "cost_usd": 0.1, "outcome": "completed"},
            {"run_id": "r2", "eval_id": "old", "seq": 2, "task_id": "t1", "agent_index": 0,
             "repeat": 0, "status": "pending", "attempts": 0, "cost_usd": None, "outcome": None},
            {"run_id": "r3", "eval_id": "old", "seq": 3, "task_id": "t1", "agent_index": 1,
             "repeat": 0, "status": "pending", "attempts": 0, "cost_usd": None, "outcome": None},
        ])
    engine.dispose()


def _columns(home: Path) -> set[str]:
    with sqlite3.connect(home / "journal.db") as db:
        return {r[1] for r in db.execute("PRAGMA table_info(runs)")}


def test_old_journal_is_read_as_it_is_then_migrated_by_the_writer(
        settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home = settings.home
    _old_journal(home)
    # a reader changes nothing, and projects by agent: 0.3 x 2 + 0.1 x 2
    st = _status_json(monkeypatch, capsys, home, "old")
    assert "stratum" not in _columns(home)
    assert st["projected_by"] == "agent" and st["projected_usd"] == pytest.approx(0.8)
    assert [a["projected_usd"] for a in st["agents"]] == pytest.approx([0.6, 0.2])

    capsys.readouterr()
    assert _cli(monkeypatch, "status", "--home", str(home)) == 0
    table = capsys.readouterr().out
    assert "projected" in table and "~$0.8000" in table  # ~: by agent only

    j = Journal.open(home)  # the writer migrates
    assert "stratum" in _columns(home)
    with sqlite3.connect(home / "journal.db") as db:
        assert {r[0] for r in db.execute("SELECT name FROM migrations")} == \
            {m.name for m in MIGRATIONS}
    assert j.migrate() == []  # once only
    assert j.strata("old") == {(0, None): (2, 1, 1, 0.3), (1, None): (2, 1, 1, 0.1)}
    j.create_eval(eval_id="new", plan_name="p", plan_json="{}", suite_name="s",
                  suite_hash="h", planned=1, rows=[("n0", "t0", 0, 0, "strings")])
    assert j.strata("new") == {(0, "strings"): (1, 0, 0, 0.0)}
    j.close()
    assert Journal.open(home).migrate() == []
    st = _status_json(monkeypatch, capsys, home, "old")  # old runs still project by agent
    assert st["projected_by"] == "agent" and st["projected_usd"] == pytest.approx(0.8)


def test_a_new_journal_records_its_migrations_without_applying_them(tmp_path: Path) -> None:
    j = Journal.open(tmp_path)
    assert "stratum" in _columns(tmp_path)
    with sqlite3.connect(tmp_path / "journal.db") as db:
        assert db.execute("SELECT count(*) FROM migrations").fetchone()[0] == len(MIGRATIONS)
    j.close()



def test_progress_line_shows_spent_of_budget_projection_and_stops() -> None:
    from rich.console import Console

    from evalfleet.cli.progress import RichProgress
    from evalfleet.execution.dispatcher import DispatchStats

    stats = DispatchStats(planned=8, cost_usd=1.5, budget_usd=4.0)
    stats.strata = {(0, "x"): Stratum(planned=8)}
    console = Console(record=True, width=200)
    progress = RichProgress(console)
    progress._stats = stats
    console.print(progress._render())
    stats.strata[(0, "x")] = Stratum(planned=8, done=3, ran=3, spent_usd=1.5)
    stats.agents_stopped.append("b@1")
    console.print(progress._render())
    text = console.export_text()
    assert "$1.50 of $4.00, projected ?" in text  # nothing ran yet: no projection
    assert "$1.50 of $4.00, projected $4.00" in text  # 1.5 / 3 x 8
    assert "budget reached for b@1" in text
