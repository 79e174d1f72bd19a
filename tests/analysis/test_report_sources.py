"""`evalfleet report` reads the journal with sqlite3 in the default layout (store/snapshot.py)
and through the store (SQLAlchemy) otherwise: both give the same report, and the snapshot's
reads answer as the journal's own, on the compact runs table and on the one before it.

The home holds a full eval of a@1 (the baseline), a sampled eval of a@2 (whose difference
estimator finds that baseline among the evals of the home) and an eval written through the
store with budget-cancelled runs of one agent and a quarantined task of the other.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.store.test_journal_compact import _old_journal
from tests.store.test_journal_contract import Backend

from conftest import cli_in_process, write_jsonl_suite
from evalfleet import api
from evalfleet.errors import UnknownEvalError
from evalfleet.settings import Settings
from evalfleet.spec import RunResult, load_plan
from evalfleet.store import Journal, RowContext, Store, driver_name
from evalfleet.store.snapshot import JournalSnapshot


@dataclass(frozen=True)
class Home:
    settings: Settings
    evals: dict[str, str]
    """label -> eval id: base, sampled, stopped"""


def _plan(tmp: Path, name: str, suite: Path, agents: list[dict[str, Any]],
          **fields: Any) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "suite": {"path": str(suite)},
                                    "agents": agents, **fields}, sort_keys=False))
    return path


def _agent(name: str, version: str, passing: list[str]) -> dict[str, Any]:
    return {"name": name, "version": version, "kind": "python",
            "args": {"callable": "evalfleet.testing.agents:echo_target",
                     "kwargs": {"answers": {t: "ok" for t in passing}}}}


def _stopped(tmp: Path, suite: Path, settings: Settings) -> str:
    """Two agents x 16 tasks x 2 runs: half of the runs committed (passes, failures, an infra
    error), the rest of agent 1 cancelled by its budget, one task of agent 0 quarantined."""
    plan = load_plan(_plan(tmp, "stopped", suite,
                           [_agent("s", "1", []), _agent("s", "2", [])], runs_per_task=2))
    suite_obj = api.validate_plan(plan)
    store = Store(settings.home)
    driver = driver_name()
    try:
        eval_id = api.create_eval(store, plan, suite_obj)
        store.journal.claim_driver(eval_id, driver, 3600)
        ctx = RowContext(eval_id, plan.name, suite_obj, plan.agents)
        leased = store.journal.lease(eval_id, driver, 32, 3600)
        now = time.time()
        results = []
        for i, lr in enumerate(leased):
            common: dict[str, Any] = {
                "run_id": lr.run_id, "task_id": lr.task_id, "agent_index": lr.agent_index,
                "repeat": lr.repeat, "started_at": now, "finished_at": now + 1,
                "cost_usd": 0.01 * (i % 7), "latency_s": 1 + i}
            if i % 11 == 5:
                results.append(RunResult(status="errored", error_kind="infra_error",
                                         error="sandbox did not start", **common))
            else:
                ok = i % 3 != 0
                results.append(RunResult(status="completed", score=float(ok), passed=ok,
                                         **common))
        store.commit(ctx, results)
        assert store.journal.cancel_pending(eval_id, agent_index=1) > 0
        pending = store.journal.lease(eval_id, driver, 1, 3600)
        task = pending[0].task_id
        store.journal.record_failures(eval_id, [(pending[0].run_id, task, a, f"boom {a}")
                                                for a in (1, 2, 3)])
        assert store.journal.quarantine_task(eval_id, task, 3, [pending[0].run_id]) >= 1
        store.journal.set_status(eval_id, "budget_stopped", finished=True)
        store.journal.release_driver(eval_id, driver)
    finally:
        store.close()
    return eval_id


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    tmp = tmp_path_factory.mktemp("report-sources")
    settings = Settings(home=tmp / "home")
    suite = write_jsonl_suite(tmp / "s.jsonl", 16, categories=2)
    old = [f"t{i:05d}" for i in range(0, 16, 2)] + ["t00001"]
    new = [*old, "t00003", "t00005"]
    evals = {}
    for label, path in (
            ("base", _plan(tmp, "full", suite, [_agent("a", "1", old)], runs_per_task=2)),
            ("sampled", _plan(tmp, "smoke", suite, [_agent("a", "2", new)], runs_per_task=2,
                              sample={"tier": "smoke", "fraction": 0.5, "seed": 1}))):
        summary = api.run(path, settings=settings)
        assert summary.status == "completed"
        evals[label] = summary.eval_id
    evals["stopped"] = _stopped(tmp, suite, settings)
    return Home(settings, evals)


def _through_the_store(settings: Settings) -> Settings:
    """The same home read through the store (SQLAlchemy), as a journal URL makes it."""
    url = f"sqlite:///{(settings.home / 'journal.db').absolute()}"
    return settings.model_copy(update={"journal_url": url})


def test_the_snapshot_and_the_store_give_the_same_report(home: Home) -> None:
    store_settings = _through_the_store(home.settings)
    for label, eval_id in home.evals.items():
        for kw in ({}, {"cluster": "category", "max_tasks": 3}, {"max_tasks": 0}):
            a = api.report(eval_id, settings=home.settings, **kw)
            b = api.report(eval_id, settings=store_settings, **kw)
            assert a == b, (label, kw)
        # a unique prefix of the eval id
        assert api.report(eval_id[:-2], settings=home.settings) == api.report(
            eval_id[:-2], settings=store_settings) == api.report(eval_id, settings=store_settings)
    # what the journal alone knows reached the report: the baseline, cancelled runs and
    # the quarantined task with its evidence
    fs = api.report(home.evals["sampled"], settings=home.settings)["agents"][0]["full_suite"]
    assert fs["kind"] == "difference" and fs["baseline"]["eval_id"] == home.evals["base"]
    rep = api.report(home.evals["stopped"], settings=home.settings)
    assert rep["coverage"]["cancelled"] > 0 and rep["coverage"]["quarantined"] >= 1
    assert rep["agents"][1]["excluded"]["cancelled"] == rep["coverage"]["cancelled"]
    (q,) = rep["quarantined_tasks"]
    assert [e["error"] for e in q["errors"]] == ["boom 1", "boom 2", "boom 3"]
    assert rep["status"] == "budget_stopped"
    for settings in (home.settings, store_settings):
        with pytest.raises(UnknownEvalError, match="no eval 'zz-none'"):
            api.report("zz-none", settings=settings)


def _reads(j: Journal | JournalSnapshot, eval_ids: list[str]) -> list[Any]:
    """Everything a report asks the journal, for each eval."""
    out: list[Any] = [j.list_evals()]
    for e in eval_ids:
        out.append((j.get_eval(e), j.cancelled_by_agent(e), j.quarantined(e),
                    j.quarantined(e, evidence=1)))
    return out


def test_the_snapshot_reads_as_the_journal(home: Home) -> None:
    ids = list(home.evals.values())
    journal = Journal.open_readonly(home.settings.home)
    snap = JournalSnapshot(home.settings.home)
    try:
        got, want = _reads(snap, ids), _reads(journal, ids)
        assert got == want
        assert [type(v) for v in got[1][0].values()] == [type(v) for v in want[1][0].values()]
        assert any(r[1] for r in got[1:]) and any(r[2] for r in got[1:])
        with pytest.raises(UnknownEvalError, match="no eval 'zz' in this home"):
            snap.get_eval("zz")
        assert snap.cancelled_by_agent("zz") == {} and snap.quarantined("zz") == []
    finally:
        journal.close()
        snap.close()


def test_the_snapshot_stores_status_as_the_schema_does() -> None:
    """The snapshot reads status codes by the journal schema's list (an index into it): the
    two lists are one object, defined once."""
    from evalfleet.store import schema, snapshot

    assert snapshot.RUN_STATUSES is schema.RUN_STATUSES


def test_the_snapshot_reads_a_journal_before_the_compact_runs_table(tmp_path: Path) -> None:
    """A journal no writer of this version migrated yet keeps the eval id and status names in
    its runs: the snapshot reads it as the journal's reader does."""
    _old_journal(Backend("sqlite", tmp_path, None))
    con = sqlite3.connect(tmp_path / "journal.db")
    with con:  # a quarantined task of eval a, with its run ended so and its evidence
        con.execute("UPDATE runs SET status = 'quarantined', outcome = 'quarantined' "
                    "WHERE run_id = 'a4'")
        con.execute("INSERT INTO quarantined_tasks VALUES ('a', 't4', 2, 1.5)")
        con.executemany("INSERT INTO task_failures (eval_id, task_id, run_id, attempt, "
                        "error, at) VALUES ('a', 't4', 'a4', ?, ?, 1.0)",
                        [(1, "first"), (2, "second")])
    con.close()
    journal = Journal.open_readonly(tmp_path)
    snap = JournalSnapshot(tmp_path)
    try:
        assert not journal.compact
        got = _reads(snap, ["a", "b"])
        assert got == _reads(journal, ["a", "b"])
        assert got[1][1] == {0: 1}  # the cancelled run
        assert got[1][2][0]["runs_quarantined"] == 1
        assert [e["error"] for e in got[1][3][0]["errors"]] == ["second"]
    finally:
        journal.close()
        snap.close()


def test_report_process_never_imports_sqlalchemy(home: Home) -> None:
    """`evalfleet report --json` reads the journal with sqlite3 in the default layout: its
    process loads neither SQLAlchemy (a quarter of a second) nor statsmodels or pandas."""
    argv = ["report", home.evals["stopped"], "--home", str(home.settings.home), "--json"]
    out, loaded, err = cli_in_process(argv)
    assert json.loads(out)["quarantined_tasks"], err[-2000:]
    tops = {m.split(".")[0] for m in loaded}
    assert "duckdb" in tops and not tops & {"sqlalchemy", "statsmodels", "pandas"}, tops


@pytest.mark.parametrize("driver_lives", [True, False])
def test_a_running_evals_report_names_a_dead_driver_without_sqlalchemy(
        home: Home, tmp_path: Path, driver_lives: bool) -> None:
    """A running eval's report says ``interrupted`` when its driver's process is gone (a
    crash, SIGKILL) and ``running`` while it lives; deciding that loads no SQLAlchemy."""
    import os
    import shutil
    import socket

    copy = tmp_path / "home"
    shutil.copytree(home.settings.home, copy)
    # this test's own process stands for a live driver; a pid past pid_max for a dead one
    pid = os.getpid() if driver_lives else 2**31 - 1
    con = sqlite3.connect(copy / "journal.db")
    with con:
        con.execute("UPDATE evals SET status = 'running', finished_at = NULL, driver = ?, "
                    "driver_heartbeat = ? WHERE eval_id = ?",
                    (f"{socket.gethostname()}:{pid}", time.time(), home.evals["stopped"]))
    con.close()
    out, loaded, err = cli_in_process(["report", home.evals["stopped"], "--home", str(copy),
                                       "--json"])
    assert json.loads(out)["status"] == ("running" if driver_lives else "interrupted"), err
    assert "sqlalchemy" not in {m.split(".")[0] for m in loaded}
