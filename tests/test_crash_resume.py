"""Kill the driver (or the demo's whole process group) with SIGKILL, resume, check exactly once."""

from __future__ import annotations

import collections
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml

from conftest import write_jsonl_suite
from evalfleet.errors import UnknownEvalError
from evalfleet.store import Journal

pytestmark = pytest.mark.slow


def _wait_for_done(home: Path, minimum: int, proc: subprocess.Popen[bytes],
                   timeout: float = 120, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            detail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise AssertionError(f"driver ended (exit {proc.returncode}) before it could be "
                                 f"killed: {detail}")
        try:
            j = Journal.open_readonly(home)  # a reader: it must not disturb the driver
        except UnknownEvalError:
            time.sleep(0.05)  # the driver has not created the journal yet
            continue
        try:
            evals = j.list_evals()
            if evals and j.counts(evals[0]["eval_id"]).get("done", 0) >= minimum:
                return
        finally:
            j.close()
        time.sleep(0.05)
    raise AssertionError("no progress before the deadline")


def _eval_id(home: Path) -> str:
    j = Journal.open_readonly(home)
    try:
        return str(j.list_evals()[0]["eval_id"])
    finally:
        j.close()


def _committed(home: Path, eval_id: str) -> dict[str, str]:
    """run_id -> task_id of the runs the journal says are done."""
    j = Journal.open_readonly(home)
    try:
        from sqlalchemy import select

        from evalfleet.store.schema import runs

        with j.engine.connect() as conn:
            return dict(conn.execute(select(runs.c.run_id, runs.c.task_id).where(
                (runs.c.eval_key == j.eval_key(eval_id)) & (runs.c.status == "done"))).all())
    finally:
        j.close()


def _parquet_run_ids(home: Path, eval_id: str) -> list[str]:
    """Run ids in the eval's committed Parquet files.

    A batch written but not committed when the driver was killed may still be on disk: the
    next driver removes it only once it is older than the grace period, and no reader sees it.
    """
    j = Journal.open_readonly(home)
    try:
        files = [str(home / b["results_path"]) for b in j.iter_batches(eval_id)]
    finally:
        j.close()
    con = duckdb.connect()
    try:
        return [r[0] for r in con.execute("SELECT run_id FROM read_parquet($files)",
                                          {"files": files}).fetchall()]
    finally:
        con.close()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "evalfleet", *args]


def test_sigkill_driver_then_resume_exactly_once(tmp_path: Path) -> None:
    n = 600
    log = tmp_path / "executions.log"
    suite = write_jsonl_suite(tmp_path / "suite.jsonl", n)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "crash", "suite": {"path": str(suite)},
        "agents": [{"name": "count", "kind": "python", "args": {
            "callable": "evalfleet.testing.agents:counting",
            "kwargs": {"log": str(log), "sleep_s": 0.02}}}],
        "execution": {"max_in_flight": 8, "write_batch": 32},
    }))
    home = tmp_path / "home"
    err = tmp_path / "driver.err"
    with err.open("wb") as fh:
        proc = subprocess.Popen(_cli("run", str(plan), "--home", str(home), "--quiet"),
                                stdout=subprocess.DEVNULL, stderr=fh)
    _wait_for_done(home, random.randint(60, 300), proc, log=err)
    time.sleep(random.uniform(0, 0.2))
    proc.kill()
    proc.wait()
    eval_id = _eval_id(home)
    before = _committed(home, eval_id)
    assert 0 < len(before) < n
    from evalfleet import api
    from evalfleet.settings import Settings

    assert api.status(eval_id, settings=Settings(home=home))["status"] == "interrupted"

    res = subprocess.run(_cli("resume", eval_id, "--home", str(home), "--quiet"),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr

    after = _committed(home, eval_id)
    assert len(after) == n
    ids = _parquet_run_ids(home, eval_id)
    assert len(ids) == n and len(set(ids)) == n  # every planned run committed exactly once
    executions = collections.Counter(log.read_text().split())
    assert set(executions) == set(after.values())
    for task_id in before.values():
        assert executions[task_id] == 1, f"{task_id} committed before the kill but ran again"


def test_demo_process_group_sigkill_then_resume(tmp_path: Path) -> None:
    home = tmp_path / "home"
    err = tmp_path / "demo.err"
    with err.open("wb") as fh:
        proc = subprocess.Popen(_cli("demo", "--home", str(home), "--limit", "30", "--runs",
                                     "2", "--quiet"),
                                stdout=subprocess.DEVNULL, stderr=fh, start_new_session=True)
    try:
        _wait_for_done(home, random.randint(5, 60), proc, log=err)
        time.sleep(random.uniform(0, 0.3))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    eval_id = _eval_id(home)
    assert len(_committed(home, eval_id)) < 120
    res = subprocess.run(_cli("resume", eval_id, "--home", str(home), "--quiet"),
                         capture_output=True, text=True, timeout=600, start_new_session=True)
    assert res.returncode == 0, res.stderr
    ids = _parquet_run_ids(home, eval_id)
    assert len(ids) == 120 and len(set(ids)) == 120
    assert len(_committed(home, eval_id)) == 120
