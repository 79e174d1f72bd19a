"""Claiming an eval's driver is atomic: of several drivers claiming at once, exactly one wins."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from sqlalchemy import update

from evalfleet.errors import StoreError
from evalfleet.store import Journal
from evalfleet.store.schema import evals

CLAIMERS = 4
ROUNDS = 60
STALE_S = 60.0


def _new_journal(home: Path) -> Journal:
    home.mkdir(parents=True, exist_ok=True)
    j = Journal.open(home)
    j.create_eval(eval_id="e", plan_name="p", plan_json="{}", suite_name="s", suite_hash="h",
                  planned=1, rows=[("r0", "t0", 0, 0)])
    return j


def _set_holder(j: Journal, driver: str | None, heartbeat: float | None) -> None:
    with j.engine.begin() as conn:
        conn.execute(update(evals).where(evals.c.eval_id == "e")
                     .values(driver=driver, driver_heartbeat=heartbeat))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _claimer(home: Path, index: int, barrier: Barrier, results: mp.Queue[tuple[int, int, str]],
             dead_driver: str) -> None:
    """One driver process: claims in every round, the first one resets the eval between."""
    j = Journal.open(home)
    me = f"{socket.gethostname()}:{os.getpid()}"
    try:
        for rnd in range(ROUNDS):
            barrier.wait()
            try:
                j.claim_driver("e", me, stale_after_s=STALE_S)
                outcome = "won"
            except StoreError as exc:
                outcome = "refused" if "is being run by" in str(exc) else f"error: {exc}"
            except Exception as exc:  # a race surfacing as a database error is a failure too
                outcome = f"error: {type(exc).__name__}: {exc}"
            results.put((rnd, index, outcome))
            barrier.wait()
            if index == 0:
                # the next round starts from: free, a stale heartbeat, or a dead process
                kind = rnd % 3
                if kind == 0:
                    _set_holder(j, None, None)
                elif kind == 1:
                    _set_holder(j, "elsewhere:1", time.time() - 10 * STALE_S)
                else:
                    _set_holder(j, dead_driver, time.time())
            barrier.wait()
    finally:
        j.close()


def test_exactly_one_of_several_drivers_claims_each_round(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _new_journal(home).close()
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(CLAIMERS)
    results: mp.Queue[tuple[int, int, str]] = ctx.Queue()
    dead = f"{socket.gethostname()}:{_dead_pid()}"
    procs = [ctx.Process(target=_claimer, args=(home, i, barrier, results, dead))
             for i in range(CLAIMERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in range(CLAIMERS * ROUNDS)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    by_round: dict[int, list[str]] = {}
    for rnd, _, outcome in outcomes:
        by_round.setdefault(rnd, []).append(outcome)
    for rnd, got in sorted(by_round.items()):
        assert sorted(got) == ["refused"] * (CLAIMERS - 1) + ["won"], (rnd, got)


def test_a_live_driver_keeps_its_claim_and_a_dead_one_loses_it(tmp_path: Path) -> None:
    j = _new_journal(tmp_path / "home")
    host = socket.gethostname()
    me = f"{host}:{os.getpid()}"
    try:
        live = f"{host}:{os.getppid()}"  # a process that surely runs
        _set_holder(j, live, time.time())
        with pytest.raises(StoreError, match="is being run by"):
            j.claim_driver("e", me, stale_after_s=STALE_S)
        _set_holder(j, "other-host:7", time.time())  # cannot check it: trust its heartbeat
        with pytest.raises(StoreError, match="is being run by"):
            j.claim_driver("e", me, stale_after_s=STALE_S)
        _set_holder(j, "other-host:7", time.time() - 2 * STALE_S)  # went quiet
        j.claim_driver("e", me, stale_after_s=STALE_S)
        assert j.holds("e", me)
        _set_holder(j, f"{host}:{_dead_pid()}", time.time())  # crashed a moment ago
        j.claim_driver("e", me, stale_after_s=STALE_S)
        assert j.holds("e", me)
        j.release_driver("e", me)
        assert not j.holds("e", me)
        j.claim_driver("e", "x:1", stale_after_s=STALE_S)  # released: free at once
        assert j.holds("e", "x:1")
    finally:
        j.close()
