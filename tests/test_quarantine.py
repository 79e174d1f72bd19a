"""Poison-task quarantine and how attempts are counted (a lease is not an attempt)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import delete, text
from typer.testing import CliRunner

from conftest import committed_rows, write_jsonl_suite
from evalfleet import api
from evalfleet.api.evals import create_eval
from evalfleet.api.reads import open_store
from evalfleet.cli import app
from evalfleet.errors import InfraError, UnknownEvalError
from evalfleet.execution.quarantine import Quarantine
from evalfleet.settings import Settings
from evalfleet.spec import load_plan
from evalfleet.store.journal import Journal
from evalfleet.store.schema import migrations

POISON = "t00001"


def hostile(task: dict[str, Any], log: str) -> str:
    """Answers ``ok``, except on one task, whose every attempt takes its sandbox down (as an
    infrastructure error: the worker cannot tell it from a broken machine). Logs each call."""
    with open(log, "a") as fh:
        fh.write(task["id"] + "\n")
    if task["id"] == POISON:
        raise InfraError("sandbox died: the agent's process group was killed (SIGKILL)")
    return "ok"


def _plan(make_plan: Callable[..., Path], log: Path, **execution: Any) -> Path:
    agent = {"name": "hostile", "version": "1", "kind": "python",
             "args": {"callable": f"{__name__}:hostile", "kwargs": {"log": str(log)}}}
    return make_plan(n_tasks=4, agents=[agent], runs_per_task=3,
                     execution={"backoff_base_s": 0.0, "max_in_flight": 1, "max_attempts": 2,
                                "sandbox": "local", **execution})


def _calls(log: Path) -> list[str]:
    return log.read_text().split()


def test_a_poison_task_is_quarantined_after_n_infra_failures_and_the_eval_completes(
        make_plan: Callable[..., Path], tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    log = tmp_path / "calls.log"
    summary = api.run(_plan(make_plan, log, quarantine_after=3), settings=settings)
    assert summary.status == "completed"
    assert summary.quarantined_tasks == (POISON,) and summary.quarantined == 1
    # 3 runs of the poison task, 2 attempts each at most: 2 + 1 attempts fail, then the task is
    # quarantined; its third run is never attempted
    assert _calls(log).count(POISON) == 3
    rows = committed_rows(settings.home)
    others = [r for r in rows if r["task_id"] != POISON]
    assert len(others) == 9 and all(r["status"] == "completed" and r["passed"]
                                    and r["attempts"] == 1 for r in others)
    poison = sorted((r["attempts"], r["status"], r["error_kind"]) for r in rows
                    if r["task_id"] == POISON)
    assert poison == [(1, "errored", "infra_error"), (2, "errored", "infra_error")]
    status = api.status(summary.eval_id, settings=settings)
    [q] = status["quarantined_tasks"]
    assert q["task_id"] == POISON and q["failures"] == 3 and q["runs_quarantined"] == 1
    assert [e["attempt"] for e in q["errors"]] == [1, 2, 1]
    assert all("sandbox died" in e["error"] for e in q["errors"])
    assert status["quarantined"] == 1 and status["done"] == 11
    # excluded from the pass rate like other infra-ended runs; listed in the report
    rep = api.report(summary.eval_id, settings=settings)
    assert rep["quarantined_tasks"][0]["task_id"] == POISON
    [agent] = rep["agents"]
    assert agent["overall"]["mean"] == pytest.approx(1.0) and agent["overall"]["n_runs"] == 9
    assert agent["excluded"]["infra_error"] == 2
    assert rep["coverage"]["quarantined"] == 1 and rep["coverage"]["missing"] == 0
    out = CliRunner().invoke(app, ["report", summary.eval_id, "--home", str(settings.home)])
    assert out.exit_code == 0, out.output
    assert f"quarantined task {POISON}: 3 infrastructure failures, 1 run(s) not run" \
        in " ".join(out.output.split())


def test_a_task_whose_setup_kills_its_process_group_is_quarantined(tmp_path: Path) -> None:
    # a real sandbox: the poison task's set-up command SIGKILLs its whole process group, which
    # the sandbox reports as an infrastructure failure on every attempt; the other tasks run
    settings = Settings(home=tmp_path / "home")
    suite = tmp_path / "suite.jsonl"
    with suite.open("w") as fh:
        for i in range(4):
            task: dict[str, Any] = {"id": f"t{i:05d}", "input": "say ok", "target": "ok",
                                    "scorer": {"kind": "exact"}}
            if task["id"] == POISON:
                task["setup"] = ["kill -KILL 0"]
            fh.write(json.dumps(task) + "\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "pg", "suite": {"path": str(suite)}, "runs_per_task": 3,
        "agents": [{"name": "sh", "version": "1", "kind": "command", "args": {
            "command": ["sh", "-c", "cat >/dev/null; echo '{\"answer\": \"ok\"}'"]}}],
        "execution": {"backoff_base_s": 0.0, "max_in_flight": 1, "max_attempts": 2,
                      "quarantine_after": 3, "sandbox": "local"}}))
    summary = api.run(plan, settings=settings)
    assert summary.status == "completed" and summary.quarantined_tasks == (POISON,)
    rows = committed_rows(settings.home)
    assert sorted(r["status"] for r in rows if r["task_id"] != POISON) == ["completed"] * 9
    poison = sorted((r["attempts"], r["error_kind"]) for r in rows if r["task_id"] == POISON)
    assert poison == [(1, "infra_error"), (2, "infra_error")]
    [q] = api.status(summary.eval_id, settings=settings)["quarantined_tasks"]
    assert q["failures"] == 3 and q["runs_quarantined"] == 1
    assert all("set-up command failed" in e["error"] for e in q["errors"])


def slow_hostile(task: dict[str, Any], log: str) -> str:
    """:func:`hostile`, whose poison task fails after the other tasks answered."""
    if task["id"] == POISON:
        time.sleep(1.0)  # the other tasks (no sleep) have ended: the infrastructure works
    return hostile(task, log)


def test_a_run_waiting_out_its_backoff_is_committed_when_its_task_is_quarantined(
        make_plan: Callable[..., Path], tmp_path: Path) -> None:
    # three runs of the poison task at once: the first failure sends its run to wait out a
    # long backoff, the second quarantines the task; the waiting run makes no second attempt,
    # it is committed with its error at once (the eval does not wait for its backoff)
    settings = Settings(home=tmp_path / "home")
    log = tmp_path / "calls.log"
    agent = {"name": "hostile", "version": "1", "kind": "python",
             "args": {"callable": f"{__name__}:slow_hostile", "kwargs": {"log": str(log)}}}
    plan = make_plan(n_tasks=4, agents=[agent], runs_per_task=3,
                     execution={"backoff_base_s": 60.0, "backoff_max_s": 60.0,
                                "max_in_flight": 12, "max_attempts": 3, "quarantine_after": 2,
                                "sandbox": "local"})
    summary = api.run(plan, settings=settings)
    assert summary.status == "completed"
    assert _calls(log).count(POISON) == 3  # one attempt each, no retry after the quarantine
    rows = [r for r in committed_rows(settings.home) if r["task_id"] == POISON]
    assert sorted((r["attempts"], r["status"], r["error_kind"]) for r in rows) == \
        [(1, "errored", "infra_error")] * 3
    [q] = api.status(summary.eval_id, settings=settings)["quarantined_tasks"]
    assert q["failures"] == 2 and len(q["errors"]) == 3


def test_quarantine_off_retries_every_run_of_the_poison_task(
        make_plan: Callable[..., Path], tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    log = tmp_path / "calls.log"
    summary = api.run(_plan(make_plan, log, quarantine_after=0), settings=settings)
    assert summary.status == "completed"
    assert _calls(log).count(POISON) == 6  # 3 runs x max_attempts
    assert api.status(summary.eval_id, settings=settings)["quarantined_tasks"] == []


def test_failures_and_quarantine_survive_resume(make_plan: Callable[..., Path],
                                                tmp_path: Path) -> None:
    # an earlier driver recorded two infrastructure failures of the poison task, then died:
    # the next driver starts from them, so the first failure it sees quarantines the task
    settings = Settings(home=tmp_path / "home")
    log = tmp_path / "calls.log"
    plan_path = _plan(make_plan, log, quarantine_after=3)
    plan = load_plan(plan_path)
    suite = api.validate_plan(plan)
    store = open_store(settings)
    try:
        eval_id = create_eval(store, plan, suite)
        lost = [lr for lr in store.journal.lease(eval_id, "dead:1", 100, 60)
                if lr.task_id == POISON]
        store.journal.record_failures(eval_id, [(lost[0].run_id, POISON, 1, "node lost"),
                                                (lost[0].run_id, POISON, 2, "node lost")])
        store.journal.set_status(eval_id, "interrupted")
    finally:
        store.close()
    summary = api.resume(eval_id, settings=settings)
    assert summary.status == "completed"
    assert _calls(log).count(POISON) == 1
    status = api.status(eval_id, settings=settings)
    [q] = status["quarantined_tasks"]
    assert q["failures"] == 3 and q["runs_quarantined"] == 2
    assert [e["error"][:9] for e in q["errors"]] == ["node lost", "node lost", "sandbox d"]
    # the run whose two attempts ended before the crash: both count, the resumed one is its 3rd
    [first] = [r for r in committed_rows(settings.home) if r["run_id"] == lost[0].run_id]
    assert first["attempts"] == 3 and first["error_kind"] == "infra_error"


def test_a_journal_without_the_quarantine_tables_still_reads(
        make_plan: Callable[..., Path], tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    summary = api.run(_plan(make_plan, tmp_path / "calls.log"), settings=settings)
    j = Journal.open(settings.home)
    with j.engine.begin() as conn:  # as a journal written before these migrations
        conn.execute(text("DROP TABLE task_failures"))
        conn.execute(text("DROP TABLE quarantined_tasks"))
        conn.execute(delete(migrations).where(migrations.c.name.in_(
            ["0005_task_failures", "0006_quarantined_tasks"])))
    j.close()
    st = api.status(summary.eval_id, settings=settings)  # a reader: creates nothing
    assert st["quarantined_tasks"] == [] and st["done"] == 11
    assert not Journal.open_readonly(settings.home).has_table("task_failures")
    again = Journal.open(settings.home)  # a writer migrates it
    try:
        assert again.has_table("task_failures") and again.has_table("quarantined_tasks")
        assert again.infra_failures(summary.eval_id) == {}
    finally:
        again.close()


def test_quarantine_needs_a_streak_no_other_end_and_healthy_infrastructure() -> None:
    q = Quarantine(3, failures={"a": 1})  # one failure recorded by an earlier driver
    assert not q.attempt_ended("a", True)  # 2 failures
    assert not q.attempt_ended("b", False)  # another task ended: the infrastructure works
    assert q.attempt_ended("a", True)  # the earlier driver's failure counts: 3
    assert q.quarantined == {"a": 3}
    lone = Quarantine(3)  # nothing else ever ended: no evidence against the infrastructure
    assert not any(lone.attempt_ended("a", True) for _ in range(5)) and not lone.quarantined


def test_poison_streak_rules() -> None:
    healthy = Quarantine(3)
    for t in "xyz":
        healthy.attempt_ended(t, False)
    assert [healthy.attempt_ended("p", True) for _ in range(4)] == [False, False, True, False]
    assert healthy.quarantined == {"p": 3} and healthy.fresh == ["p"]
    # a task that ever ended otherwise is not a poison, however often it fails after
    flaky_task = Quarantine(3)
    flaky_task.attempt_ended("x", False)
    flaky_task.attempt_ended("p", False)
    assert not any(flaky_task.attempt_ended("p", True) for _ in range(10))
    # infrastructure failing 20% of the other tasks' attempts: 6 in a row (0.2**6 < 1e-4)
    flaky_infra = Quarantine(3)
    for i in range(100):
        flaky_infra.attempt_ended(f"t{i}", i % 5 == 0)
    streak = [flaky_infra.attempt_ended("p", True) for _ in range(6)]
    assert streak == [False] * 5 + [True]
    off = Quarantine(0)
    off.attempt_ended("x", False)
    assert not any(off.attempt_ended("b", True) for _ in range(10)) and not off.quarantined
    assert off.failures == {"b": 10}


# attempts: only attempts that ran and ended count ----------------------------------------------


def _journal_with_runs(tmp_path: Path, n: int) -> Journal:
    j = Journal.open(tmp_path)
    j.create_eval(eval_id="e", plan_name="p", plan_json=json.dumps({}), suite_name="s",
                  suite_hash="h", planned=n, rows=[(f"r{i}", f"t{i}", 0, 0) for i in range(n)])
    return j


def test_a_lease_that_expired_or_was_released_is_not_an_attempt(tmp_path: Path) -> None:
    j = _journal_with_runs(tmp_path, 4)
    try:
        assert {r.attempts for r in j.lease("e", "crashed", 2, -1)} == {1}  # expired at once
        assert {r.attempts for r in j.lease("e", "next", 4, 60)} == {1}  # still the first
        j.release("e", "next")  # leased, never started (the end of a dispatch)
        assert {r.attempts for r in j.lease("e", "again", 4, 60)} == {1}
        # an attempt that ran and ended (an infrastructure error) counts, across a crash
        j.record_failures("e", [("r0", "t0", 1, "sandbox died")])
        assert j.reset_leases("e") == 4  # resume after a crash
        got = {r.run_id: r.attempts for r in j.lease("e", "resumed", 4, 60)}
        assert got == {"r0": 2, "r1": 1, "r2": 1, "r3": 1}
    finally:
        j.close()


def test_a_driver_killed_mid_attempt_does_not_cost_the_run_an_attempt(
        make_plan: Callable[..., Path], tmp_path: Path) -> None:
    # a driver leased every run and died (SIGKILL: no release); the next one runs each run
    # once: max_attempts 1 is enough, and every committed row says 1 attempt
    settings = Settings(home=tmp_path / "home")
    plan = load_plan(make_plan(n_tasks=5, execution={"max_attempts": 1, "sandbox": "local"}))
    suite = api.validate_plan(plan)
    store = open_store(settings)
    try:
        eval_id = create_eval(store, plan, suite)
        for _ in range(3):  # three crashed drivers, or leases that expired three times
            assert len(store.journal.lease(eval_id, "dead:1", 100, -1)) == 5
        store.journal.set_status(eval_id, "interrupted")
    finally:
        store.close()
    assert api.resume(eval_id, settings=settings).status == "completed"
    assert {r["attempts"] for r in committed_rows(settings.home)} == {1}


@pytest.mark.slow
def test_sigkill_mid_attempt_then_resume_counts_only_attempts_that_ended(
        tmp_path: Path) -> None:
    # the driver is SIGKILLed with attempts in flight and runs leased but not started; after
    # resume every run, those it lost included, says 1 attempt (max_attempts 1 suffices)
    n = 120
    log = tmp_path / "executions.log"
    suite = write_jsonl_suite(tmp_path / "suite.jsonl", n)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "kill", "suite": {"path": str(suite)},
        "agents": [{"name": "count", "kind": "python", "args": {
            "callable": "evalfleet.testing.agents:counting",
            "kwargs": {"log": str(log), "sleep_s": 0.1}}}],
        "execution": {"max_in_flight": 8, "write_batch": 8, "max_attempts": 1,
                      "sandbox": "local"}}))
    home = tmp_path / "home"
    cli = [sys.executable, "-m", "evalfleet"]
    proc = subprocess.Popen([*cli, "run", str(plan), "--home", str(home), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):  # until some runs are committed (a reader, read-only)
            if proc.poll() is not None:
                pytest.fail(f"the driver ended (exit {proc.returncode}) before the kill")
            if (home / "journal.db").exists():
                try:
                    j = Journal.open_readonly(home)
                except UnknownEvalError:  # the driver is creating its tables
                    time.sleep(0.05)
                    continue
                try:
                    evals = j.list_evals()
                    done = j.counts(evals[0]["eval_id"]).get("done", 0) if evals else 0
                finally:
                    j.close()
                if done >= 24:
                    break
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    settings = Settings(home=home)
    eval_id = api.status(settings=settings)["evals"][0]["eval_id"]
    lost = n - len(committed_rows(home))
    assert lost > 0
    res = subprocess.run([*cli, "resume", eval_id, "--home", str(home), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rows = committed_rows(home)
    assert len(rows) == n and {r["attempts"] for r in rows} == {1}
    assert {r["status"] for r in rows} == {"completed"}
    # some runs did start before the kill and ran again after it: still one attempt each
    executions = Counter(log.read_text().split())
    assert set(executions) == {r["task_id"] for r in rows}
