"""Acceptance: status, report and query polled from other processes never disturb an eval."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import write_jsonl_suite
from evalfleet.store import Journal

pytestmark = pytest.mark.slow

RUNS = 20_000

POLLER = r'''
import json, subprocess, sys, time, traceback
from pathlib import Path
from evalfleet import api
from evalfleet.errors import UnknownEvalError
from evalfleet.settings import Settings

home, kind, stop, out = sys.argv[1:5]
settings = Settings(home=Path(home))
calls = early = 0
errors = []
seen = []  # what each call saw: committed rows, never fewer than the call before
cli = [sys.executable, "-m", "evalfleet"]
while not Path(stop).exists():
    time.sleep(0.1)  # poll like a watching user, leaving the driver some of the two cores
    try:
        listing = api.status(settings=settings)["evals"]
        if not listing:
            early += 1
            continue
        eval_id = listing[0]["eval_id"]
        if kind == "status":
            seen.append(api.status(eval_id, settings=settings)["done"])
        elif kind == "report":
            if api.report(eval_id, settings=settings)["eval_id"] != eval_id:
                errors.append("report of another eval")
        elif kind == "query":
            _, rows = api.query("SELECT count(*), count(DISTINCT run_id) FROM runs",
                                eval_id=eval_id, settings=settings)
            total, distinct = rows[0]
            if total != distinct:
                errors.append(f"duplicate rows visible: {total} rows, {distinct} run ids")
            seen.append(total)
        else:  # the real command line, one command after the other
            command = ["status", "report", "query"][calls % 3]
            args = {"status": [eval_id, "--json"], "report": [eval_id, "--json"],
                    "query": ["--json", "SELECT count(*) AS n FROM runs"]}[command]
            res = subprocess.run([*cli, command, "--home", home, *args], capture_output=True,
                                 text=True, timeout=300)
            # report exits 1 while no run is scored yet; anything else is a failure
            if res.returncode not in (0, 1) or (res.returncode == 1 and command != "report"):
                errors.append(f"{command} exit {res.returncode}: {res.stderr[-500:]}")
        calls += 1
    except UnknownEvalError:
        early += 1  # before the driver created the journal and the eval
    except Exception:
        errors.append(traceback.format_exc()[-1500:])
json.dump({"calls": calls, "early": early, "errors": errors, "seen": seen}, open(out, "w"))
'''


def _plan(tmp_path: Path) -> Path:
    suite = write_jsonl_suite(tmp_path / "suite.jsonl", RUNS)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "polled", "suite": {"path": str(suite)},
        "agents": [{"name": "noop", "version": "1", "kind": "python",
                    "args": {"callable": "evalfleet.testing.agents:noop"}}],
        # small batches: many commits, so readers often meet a batch between write and commit
        "execution": {"max_in_flight": 32, "write_batch": 64},
    }))
    return plan


def test_readers_polling_throughout_a_20000_run_eval(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stop = tmp_path / "stop"
    script = tmp_path / "poller.py"
    script.write_text(POLLER)
    pollers = {}
    for kind in ("status", "report", "query", "cli"):
        out = tmp_path / f"{kind}.json"
        with (tmp_path / f"{kind}.err").open("w") as poller_err:
            pollers[kind] = (out, subprocess.Popen(
                [sys.executable, str(script), str(home), kind, str(stop), str(out)],
                stderr=poller_err))
    err = tmp_path / "driver.err"
    try:
        with err.open("w") as fh:
            driver = subprocess.run([sys.executable, "-m", "evalfleet", "run",
                                     str(_plan(tmp_path)), "--home", str(home), "--quiet"],
                                    stdout=subprocess.DEVNULL, stderr=fh, timeout=1500)
    finally:
        stop.touch()
        for _, proc in pollers.values():
            proc.wait(timeout=600)
    assert driver.returncode == 0, err.read_text()[-3000:]

    for name, (out, proc) in pollers.items():
        assert proc.returncode == 0, (name, (tmp_path / f"{name}.err").read_text()[-2000:])
        got = json.loads(out.read_text())
        assert got["errors"] == [], (name, got["errors"][:3])
        assert got["calls"] >= 3, (name, got)  # it really polled while the eval ran
        assert got["seen"] == sorted(got["seen"]), (name, "committed rows went down")

    journal = Journal.open_readonly(home)
    try:
        eval_id = journal.list_evals()[0]["eval_id"]
        done = journal.counts(eval_id).get("done", 0)
        committed = sorted(journal.referenced_paths(eval_id))
        live = journal.live_results_paths(eval_id)
        row = journal.get_eval(eval_id)
    finally:
        journal.close()
    assert row["status"] == "completed" and row["planned"] == RUNS
    assert done == RUNS
    import duckdb

    # the live files hold every row once; superseded ones (compacted, kept for the grace
    # period so readers that listed them a moment ago can still read them) are referenced too
    files = [str(home / p) for p in live]
    con = duckdb.connect()
    try:
        n, distinct = con.execute("SELECT count(*), count(DISTINCT run_id) FROM "
                                  "read_parquet($files)", {"files": files}).fetchone() or (0, 0)
    finally:
        con.close()
    assert n == distinct == RUNS  # journal done = Parquet rows = planned, no duplicates
    # every file on disk is a committed one: nothing was lost, nothing left behind
    on_disk = sorted(p.relative_to(home).as_posix()
                     for p in (home / "results").rglob("*") if p.is_file())
    assert on_disk == [p for p in committed if p.endswith(".parquet")]
