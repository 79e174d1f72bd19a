"""Readers (status, report, query, compare) write nothing, create nothing and sweep nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from evalfleet import api
from evalfleet.errors import UnknownEvalError
from evalfleet.settings import Settings
from evalfleet.store import Journal, Store

from .conftest import DoneEval, fingerprint


def _read_everything(d: DoneEval) -> None:
    """Every read-only command of the library, once."""
    assert api.status(settings=d.settings)["evals"][0]["eval_id"] == d.eval_id
    assert api.status(d.eval_id, settings=d.settings)["done"] == d.planned
    assert api.report(d.eval_id, settings=d.settings)["eval_id"] == d.eval_id
    names, rows = api.query("SELECT count(*) AS n FROM runs", settings=d.settings)
    assert (names, rows) == (["n"], [(d.planned,)])
    api.compare([d.eval_id, d.eval_id], settings=d.settings)


@pytest.mark.parametrize("make_home", [False, True], ids=["no-home", "home-without-journal"])
def test_readers_of_an_empty_home_say_so_and_create_nothing(tmp_path: Path,
                                                            make_home: bool) -> None:
    home = tmp_path / "home"
    if make_home:
        home.mkdir()
    settings = Settings(home=home)
    calls: list[Callable[[], object]] = [
             lambda: api.status(settings=settings), lambda: api.status("x", settings=settings),
             lambda: api.report("x", settings=settings),
             lambda: api.query("SELECT 1", settings=settings),
             lambda: api.compare(["x", "y"], settings=settings)]
    for call in calls:
        with pytest.raises(UnknownEvalError, match="no evals in"):
            call()
    assert home.exists() == make_home
    if make_home:
        assert list(home.iterdir()) == []


def test_cli_status_of_a_missing_home_is_one_line_exit_2(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    res = subprocess.run([sys.executable, "-m", "evalfleet", "status", "--home", str(home)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "no evals in" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not home.exists()


def test_readers_leave_a_running_drivers_uncommitted_batch_alone(done_eval: DoneEval) -> None:
    # what a driver has on disk between writing a batch and committing it: the renamed file
    # and the next one's temporary file
    home = done_eval.home
    results = home / "results" / f"eval_id={done_eval.eval_id}"
    committed = sorted(results.glob("*.parquet"))[0]
    in_flight = results / "0123456789abcdefabcd.parquet"
    writing = results / "fedcba9876543210fedc.parquet.tmp"
    shutil.copy(committed, in_flight)
    shutil.copy(committed, writing)
    before = fingerprint(home)
    _read_everything(done_eval)
    Store(home).close()  # another driver starting in the same home
    assert fingerprint(home) == before
    assert in_flight.exists() and writing.exists()


def test_readers_write_nothing(done_eval: DoneEval) -> None:
    before = fingerprint(done_eval.home)
    _read_everything(done_eval)
    assert fingerprint(done_eval.home) == before
    # and they could not if they tried: the journal is open read-only
    store = api.open_reader(done_eval.settings)
    try:
        with pytest.raises(OperationalError, match=r"readonly|read-only"):
            store.journal.set_status(done_eval.eval_id, "failed")
    finally:
        store.close()
    assert api.status(done_eval.eval_id, settings=done_eval.settings)["status"] == "completed"


def test_eval_id_prefix_is_literal(tmp_path: Path, make_plan: Callable[..., Path]) -> None:
    from evalfleet.spec import load_plan

    settings = Settings(home=tmp_path / "home")
    plan_path = make_plan(n_tasks=2, name="p")
    plan = load_plan(plan_path)
    suite = api.validate_plan(plan)
    store = api.open_store(settings)
    try:
        for eval_id in ("abc", "a_x", "ABD", "q%r"):
            api.create_eval(store, plan, suite, eval_id=eval_id)
    finally:
        store.close()
    assert api.status("a_", settings=settings)["eval_id"] == "a_x"  # not abc
    assert api.status("q%", settings=settings)["eval_id"] == "q%r"
    for prefix in ("%", "_", "a%", "q_", "ab", "\\"):
        if prefix == "ab":
            assert api.status(prefix, settings=settings)["eval_id"] == "abc"  # not ABD
            continue
        with pytest.raises(UnknownEvalError):
            api.status(prefix, settings=settings)
    with pytest.raises(UnknownEvalError, match="matches 2 evals"):
        api.status("a", settings=settings)


def test_journal_open_readonly_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UnknownEvalError, match="no evals in"):
        Journal.open_readonly(tmp_path)
    assert list(tmp_path.iterdir()) == []
