"""Tiered retention: warm evals keep a stratified sample of trajectories, cold ones none;
rows, rollups and pinned trajectories always stay; crash-safe with readers running."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import committed_rows
from tests.store.conftest import fingerprint

from evalfleet import api
from evalfleet.errors import SpecError, StoreError
from evalfleet.settings import Settings
from evalfleet.spec import AgentSpec, ScorerSpec, Suite, Task
from evalfleet.spec.result import RunResult
from evalfleet.store import RowContext, Store, read_trajectory
from evalfleet.store import retention as ret
from evalfleet.store.journal import CommitRow, Journal
from evalfleet.store.results import ORPHAN_GRACE_S, remove_orphans
from evalfleet.store.warehouse import query

DRIVER = "elsewhere:1"  # another host: trusted by its heartbeat
DAY = 86_400.0


def _suite(n: int) -> Suite:
    return Suite(name="s", tasks=tuple(
        Task(id=f"t{i:03d}", input="x", target="ok", scorer=ScorerSpec(kind="exact"),
             category=f"c{i % 3}", difficulty=1 + i % 5) for i in range(n)))


def _result(eval_id: str, a: int, i: int) -> RunResult:
    passed = (i + a) % 4 != 0
    return RunResult(run_id=f"{eval_id}-{a}-{i}", task_id=f"t{i:03d}", agent_index=a,
                     repeat=0, status="completed", score=float(passed), passed=passed,
                     tokens_in=10 * i, cost_usd=0.001 * i, started_at=1e9 + i,
                     finished_at=1e9 + i + 1,
                     trajectory={"events": [{"kind": "output", "text": f"answer {a} {i} "
                                             + "x" * (i % 7) * 50}]})


def _make_eval(home: Path, eval_id: str = "e1", n: int = 30, per_commit: int = 1) -> Store:
    """An eval of 2n runs (two agent versions), committed ``per_commit`` rows per batch, its
    claim released (a finished eval)."""
    store = Store(home)
    suite = _suite(n)
    agents = (AgentSpec(name="a", version="2", kind="python", args={"callable": "m:f"}),
              AgentSpec(name="a", version="1", kind="python", args={"callable": "m:g"}))
    store.journal.create_eval(
        eval_id=eval_id, plan_name="p", plan_json="{}", suite_name="s",
        suite_hash=suite.suite_hash, planned=2 * n,
        rows=[(f"{eval_id}-{a}-{i}", f"t{i:03d}", a, 0) for a in (0, 1) for i in range(n)])
    store.journal.claim_driver(eval_id, DRIVER, 300)
    ctx = RowContext(eval_id, "p", suite, agents)
    results = [_result(eval_id, a, i) for i in range(n) for a in (0, 1)]
    for k in range(0, len(results), per_commit):
        store.commit(ctx, results[k:k + per_commit])
    store.journal.release_driver(eval_id, DRIVER)
    return store


def _rows(store: Store, eval_id: str = "e1") -> list[tuple[Any, ...]]:
    """Every row a reader sees but its trajectory URI, ordered."""
    from evalfleet.store.results import RESULTS_SCHEMA

    cols = [f.name for f in RESULTS_SCHEMA if f.name != "trajectory_uri"]
    return query(store.home, store.results_paths(eval_id),
                 f"SELECT {', '.join(cols)} FROM runs ORDER BY run_id")[1]


def _uris(store: Store, eval_id: str = "e1") -> dict[str, str | None]:
    return dict(query(store.home, store.results_paths(eval_id),
                      "SELECT run_id, trajectory_uri FROM runs")[1])


def _trajectories(store: Store, eval_id: str = "e1") -> dict[str, Any]:
    """run id -> its trajectory, for rows whose URI still names one."""
    return {rid: read_trajectory(store.home, uri, rid)
            for rid, uri in _uris(store, eval_id).items() if uri}


def _files_on_disk(home: Path) -> set[str]:
    return {f.relative_to(home).as_posix() for d in ("results", "trajectories")
            for f in (home / d).rglob("*") if f.is_file()}


def _live_files(store: Store) -> set[str]:
    out: set[str] = set()
    for e in store.journal.list_evals():
        for b in store.journal.iter_batches(e["eval_id"]):
            out |= {b["results_path"]} | ({b["trajectories_path"]} - {None})
    return out


def _strata(store: Store, eval_id: str = "e1") -> dict[tuple[Any, ...], list[str]]:
    _, rows = query(store.home, store.results_paths(eval_id),
                    "SELECT agent_name, agent_version, category, passed, run_id FROM runs")
    out: dict[tuple[Any, ...], list[str]] = {}
    for *key, rid in rows:
        out.setdefault(tuple(key), []).append(rid)
    return out


POLICY = ret.RetentionPolicy(hot_days=30, warm_days=180, warm_sample=0.25)


def _at(store: Store, days: float, eval_id: str = "e1") -> float:
    """The clock ``days`` after the eval was created."""
    return float(store.journal.get_eval(eval_id)["created_at"]) + days * DAY


# tiers ------------------------------------------------------------------------------------


def test_tiers_by_age_from_the_finish_time_else_the_creation_time(tmp_path: Path) -> None:
    p = ret.RetentionPolicy(hot_days=30, warm_days=180, warm_sample=0.1)
    assert [p.tier(d * DAY) for d in (0, 29.99, 30, 179.99, 180, 10_000)] == [
        "hot", "hot", "warm", "warm", "cold", "cold"]
    assert ret.eval_age_s({"created_at": 100.0, "finished_at": None}, 100.0 + DAY) == DAY
    assert ret.eval_age_s({"created_at": 100.0, "finished_at": 100.0 + 5 * DAY},
                          100.0 + 6 * DAY) == DAY
    for bad in ({"hot_days": -1}, {"hot_days": 10, "warm_days": 5}, {"warm_sample": 1.5},
                {"hot_days": math.inf}):
        with pytest.raises(SpecError):
            ret.RetentionPolicy(**bad)
    # a hot eval is not touched, whatever is on disk
    store = _make_eval(tmp_path / "home", n=6, per_commit=3)
    before = fingerprint(store.home)
    rep = ret.apply_eval(store.root, store.journal, "e1", POLICY, now=_at(store, 29))
    assert (rep.tier, rep.status, rep.trajectories_removed) == ("hot", "unchanged", 0)
    assert fingerprint(store.home) == before
    # an eval created long ago but finished lately is aged from its finish
    with store.journal.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE evals SET finished_at = created_at + ?", (200 * DAY,))
    assert ret.apply_eval(store.root, store.journal, "e1", POLICY, now=_at(store, 210),
                          dry_run=True).tier == "hot"
    assert ret.apply_eval(store.root, store.journal, "e1", POLICY, now=_at(store, 240),
                          dry_run=True).tier == "warm"


def test_warm_keeps_a_stratified_deterministic_sample_and_reapplying_changes_nothing(
        tmp_path: Path) -> None:
    store = _make_eval(tmp_path / "home", n=30, per_commit=3)
    rows, trajs = _rows(store), _trajectories(store)
    rollups = store.journal.rollup_rows()
    assert len(rows) == 60 and len(trajs) == 60 and all(trajs.values())
    rep = ret.apply_eval(store.root, store.journal, "e1", POLICY, now=_at(store, 60))
    assert (rep.tier, rep.status) == ("warm", "thinned")
    assert rep.files_before == 20 and rep.files_after == 1  # compacted on the way
    uris = _uris(store)
    kept = {r for r, u in uris.items() if u}
    # per stratum: ceil(25% of n), at least one, the smallest hashes of the run ids
    for members in _strata(store).values():
        want = sorted(members, key=ret.sample_key)[:max(1, math.ceil(0.25 * len(members)))]
        assert kept & set(members) == set(want)
    assert rep.trajectories_kept == len(kept) and rep.trajectories_removed == 60 - len(kept)
    assert all(uris[r] == ret.REMOVED_URI for r in set(uris) - kept)  # "", not NULL
    # rows and rollups unchanged; kept trajectories read as before
    assert _rows(store) == rows and store.journal.rollup_rows() == rollups
    assert _trajectories(store) == {r: trajs[r] for r in kept}
    # again, later in the warm tier: the same sample, nothing more removed or written
    before = _live_files(store)
    again = ret.apply_eval(store.root, store.journal, "e1", POLICY, now=_at(store, 170))
    assert (again.status, again.trajectories_removed, again.already_removed) == (
        "unchanged", 0, 60 - len(kept))
    assert _live_files(store) == before and {r for r, u in _uris(store).items() if u} == kept


def test_the_sample_is_at_least_one_per_stratum_and_pins_come_on_top() -> None:
    import pyarrow as pa

    ids = [f"r{i}" for i in range(40)]
    rows = pa.table({
        "run_id": ids, "agent_name": ["a"] * 40, "agent_version": ["1"] * 20 + ["2"] * 20,
        "category": ["c"] * 40, "passed": [i % 2 == 0 for i in range(40)],
        "trajectory_uri": [None if i == 0 else "" if i == 1 else f"f#{i}" for i in range(40)]})
    strata = [[r for r in ids[k:k + 20] if int(r[1:]) % 2 == p and r != "r0"]
              for k in (0, 20) for p in (0, 1)]
    assert ret.kept_runs(rows, "hot", 0.0, set()) == set(ids) - {"r0"}  # r0 never had one
    assert ret.kept_runs(rows, "cold", 0.5, {"r5", "r0"}) == {"r5"}
    for fraction in (0.0, 0.1, 0.5, 1.0):
        kept = ret.kept_runs(rows, "warm", fraction, set())
        for members in strata:  # each stratum: ceil(fraction * n), at least one
            want = sorted(members, key=ret.sample_key)[:max(1, math.ceil(fraction * len(
                members)))]
            assert kept & set(members) == set(want)
    unpinned = ret.kept_runs(rows, "warm", 0.1, set())
    extra = next(r for r in ids[2:] if r not in unpinned)
    assert ret.kept_runs(rows, "warm", 0.1, {extra}) == unpinned | {extra}


def test_cold_keeps_rows_rollups_and_pinned_trajectories_only(tmp_path: Path) -> None:
    store = _make_eval(tmp_path / "home", n=12, per_commit=5)
    rows, trajs, rollups = _rows(store), _trajectories(store), store.journal.rollup_rows()
    pinned = {"e1-0-3": "review", "e1-1-7": "decision"}
    for rid, kind in pinned.items():
        assert store.journal.pin(rid, "e1", kind, note="why")
    assert not store.journal.pin("e1-0-3", "e1", "review", note="again")  # known: note only
    rep = ret.apply_eval(store.root, store.journal, "e1", POLICY, now=_at(store, 400))
    assert (rep.tier, rep.trajectories_kept, rep.pinned_kept) == ("cold", 2, 2)
    assert _rows(store) == rows and store.journal.rollup_rows() == rollups
    assert _trajectories(store) == {r: trajs[r] for r in pinned}
    assert store.journal.retention_records()["e1"]["tier"] == "cold"
    # with nothing pinned a cold batch has no trajectory file at all
    assert store.journal.unpin("e1-0-3") == 1 and store.journal.unpin("e1-1-7", "review") == 0
    store.journal.unpin("e1-1-7")
    ret.apply_eval(store.root, store.journal, "e1", POLICY, now=_at(store, 401))
    assert [b["trajectories_path"] for b in store.journal.iter_batches("e1")] == [None]
    assert _trajectories(store) == {} and _rows(store) == rows
    # past the grace period the replaced files go; nothing is left that no batch names
    ret_now = _at(store, 401) + ORPHAN_GRACE_S + 1
    store.purge_retired("e1", now=ret_now)
    assert _files_on_disk(store.home) == _live_files(store)
    assert _rows(store) == rows and len(committed_rows(store.home)) == 24


def test_later_compaction_keeps_the_removed_marks_and_the_kept_trajectories(
        tmp_path: Path) -> None:
    store = _make_eval(tmp_path / "home", n=12, per_commit=6)
    store.journal.pin("e1-0-1", "e1", "manual")
    trajs = _trajectories(store)
    ret.apply_eval(store.root, store.journal, "e1", POLICY, now=_at(store, 60))
    warm = _uris(store)
    # a batch committed afterwards (a resumed eval's), then compaction merges it with the rest
    store.journal.add_runs("e1", [("e1-0-99", "t000", 0, 1)])
    store.journal.claim_driver("e1", DRIVER, 300)
    extra = RunResult(run_id="e1-0-99", task_id="t000", agent_index=0, repeat=1,
                      status="completed", score=1.0, passed=True,
                      trajectory={"events": [{"kind": "output", "text": "late"}]})
    suite = _suite(12)
    agents = (AgentSpec(name="a", version="2", kind="python", args={"callable": "m:f"}),
              AgentSpec(name="a", version="1", kind="python", args={"callable": "m:g"}))
    store.commit(RowContext("e1", "p", suite, agents), [extra])
    store.compact("e1", DRIVER, final=True)
    assert len(store.results_paths("e1")) == 1
    after = _uris(store)
    assert {r for r, u in after.items() if u == ""} == {r for r, u in warm.items() if u == ""}
    got = _trajectories(store)
    assert got.pop("e1-0-99")["events"][0]["text"] == "late"
    assert got == {r: trajs[r] for r, u in warm.items() if u} and "e1-0-1" in got


def test_a_warehouse_elsewhere_is_thinned_the_same_way(tmp_path: Path) -> None:
    """Results and trajectories at an fsspec URL (memory://): retention reads, writes,
    renames and deletes there, and the home holds only the journal."""
    import uuid

    import fsspec

    url = f"memory://retention-{uuid.uuid4().hex}"
    settings = Settings(home=tmp_path / "home", warehouse_url=url)
    writer = Store(settings.home, warehouse_url=url)
    ctx_rows = [_result("e1", a, i) for i in range(6) for a in (0, 1)]
    suite = _suite(6)
    agents = (AgentSpec(name="a", version="2", kind="python", args={"callable": "m:f"}),
              AgentSpec(name="a", version="1", kind="python", args={"callable": "m:g"}))
    writer.journal.create_eval(
        eval_id="e1", plan_name="p", plan_json="{}", suite_name="s",
        suite_hash=suite.suite_hash, planned=12,
        rows=[(f"e1-{a}-{i}", f"t{i:03d}", a, 0) for a in (0, 1) for i in range(6)])
    writer.journal.claim_driver("e1", DRIVER, 300)
    for k in range(0, 12, 3):
        writer.commit(RowContext("e1", "p", suite, agents), ctx_rows[k:k + 3])
    writer.journal.release_driver("e1", DRIVER)
    writer.journal.pin("e1-1-2", "e1", "manual")
    before = sorted((r["run_id"], r["score"]) for r in committed_rows_at(settings))
    now = float(writer.journal.get_eval("e1")["created_at"]) + 400 * DAY
    (e,) = api.retention_apply(settings=settings, now=now)["evals"]
    assert (e["status"], e["trajectories_kept"], e["trajectories_removed"]) == (
        "thinned", 1, 11)
    assert sorted((r["run_id"], r["score"]) for r in committed_rows_at(settings)) == before
    shown = api.show_run("e1-1-2", settings=settings)
    assert shown["events"] and not shown["trajectory_removed"]
    assert api.show_run("e1-0-2", settings=settings)["trajectory_removed"]
    writer.purge_retired("e1", now=now + ORPHAN_GRACE_S + 1)
    fs = fsspec.filesystem("memory")
    base = url[len("memory://"):]
    remote = {p[len(base) + 2:] if p.startswith("/") else p[len(base) + 1:]
              for p in fs.find(base)}
    assert remote == _live_files(writer)
    assert not (settings.home / "results").exists()
    writer.close()


def committed_rows_at(settings: Settings) -> list[dict[str, Any]]:
    cols, rows = api.query("SELECT * FROM runs", settings=settings)
    return [dict(zip(cols, r, strict=True)) for r in rows]


# crashes ----------------------------------------------------------------------------------


def _killed(*_a: Any, **_k: Any) -> None:
    raise KeyboardInterrupt("killed")


def _crash_before_rename(m: pytest.MonkeyPatch) -> None:
    """Dies with the new files written under .tmp names, before they are renamed."""
    m.setattr(ret, "_publish", _killed)
    m.setattr(ret, "_delete", _killed)  # a dead process cleans nothing up


def _crash_after_rename(m: pytest.MonkeyPatch) -> None:
    """Dies with the new files renamed, before the journal records them."""
    m.setattr(Journal, "commit_compaction", _killed)
    m.setattr(Journal, "has_batch", _killed)
    m.setattr(ret, "_delete", _killed)


def _crash_after_record(m: pytest.MonkeyPatch) -> None:
    """The swap commits, then the process dies before it records the eval or deletes."""
    orig = Journal.commit_compaction

    def commit_then_die(self: Journal, **kw: Any) -> None:
        orig(self, **kw)
        raise KeyboardInterrupt("killed")
    m.setattr(Journal, "commit_compaction", commit_then_die)


def _error_at_record(m: pytest.MonkeyPatch) -> None:
    """The journal transaction fails (an error, not a crash): the new files are removed."""
    def fail(*_a: Any, **_k: Any) -> None:
        raise StoreError("database is locked")
    m.setattr(Journal, "commit_compaction", fail)


@pytest.mark.parametrize("crash", [_crash_before_rename, _crash_after_rename,
                                   _crash_after_record, _error_at_record])
def test_a_crash_at_any_step_loses_and_duplicates_no_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        crash: Callable[[pytest.MonkeyPatch], None]) -> None:
    store = _make_eval(tmp_path / "home", n=20, per_commit=4)
    store.journal.pin("e1-1-4", "e1", "review")
    rows, trajs, rollups = _rows(store), _trajectories(store), store.journal.rollup_rows()
    all_rows = sorted(committed_rows(store.home), key=lambda r: r["run_id"])
    now = _at(store, 400)
    with monkeypatch.context() as m:
        crash(m)
        with pytest.raises((KeyboardInterrupt, StoreError)):
            ret.apply_eval(store.root, store.journal, "e1", POLICY, now=now)
    assert _rows(store) == rows and store.journal.rollup_rows() == rollups
    got = _trajectories(store)
    assert got["e1-1-4"] == trajs["e1-1-4"]
    assert got in ({r: trajs[r] for r in got}, trajs)  # all of them, or the kept ones
    # later, past the grace: orphans and replaced files go, and applying again finishes
    later = now + ORPHAN_GRACE_S + 1
    remove_orphans(store.home, "e1", store.journal.referenced_paths("e1"), now=later + 3600)
    rep = ret.apply_eval(store.root, store.journal, "e1", POLICY, now=later)
    assert rep.status in ("thinned", "unchanged")
    store.purge_retired("e1", now=later + ORPHAN_GRACE_S + 1)
    assert _rows(store) == rows and store.journal.rollup_rows() == rollups
    assert _trajectories(store) == {"e1-1-4": trajs["e1-1-4"]}
    assert _files_on_disk(store.home) == _live_files(store)
    after = sorted(committed_rows(store.home), key=lambda r: r["run_id"])
    assert [{k: v for k, v in r.items() if k != "trajectory_uri"} for r in after] == [
        {k: v for k, v in r.items() if k != "trajectory_uri"} for r in all_rows]
    assert store.journal.retention_records()["e1"]["trajectories_removed"] == 39


def test_a_pin_made_meanwhile_stops_the_swap(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    store = _make_eval(tmp_path / "home", n=8, per_commit=4)
    rows, trajs = _rows(store), _trajectories(store)
    files = _files_on_disk(store.home)
    # retention read the pins before this one was made: the swap must see it and refuse
    monkeypatch.setattr(Journal, "pins", lambda *_a, **_k: [])
    store.journal.pin("e1-0-5", "e1", "decision")
    with pytest.raises(StoreError, match="pinned meanwhile"):
        ret.apply_eval(store.root, store.journal, "e1", POLICY, now=_at(store, 400))
    assert _rows(store) == rows and _trajectories(store) == trajs
    assert _files_on_disk(store.home) == files  # its new files removed at once


def test_a_dry_run_writes_nothing_and_says_what_apply_then_does(tmp_path: Path) -> None:
    store = _make_eval(tmp_path / "home", n=30, per_commit=7)
    store.journal.pin("e1-0-2", "e1", "manual")
    before = fingerprint(store.home)
    mtimes = {f: os.stat(store.home / f).st_mtime_ns for f in before}
    now = _at(store, 90)
    dry = ret.apply_eval(store.root, store.journal, "e1", POLICY, now=now, dry_run=True)
    assert fingerprint(store.home) == before
    assert {f: os.stat(store.home / f).st_mtime_ns for f in before} == mtimes
    assert dry.status == "would_thin" and dry.trajectories_removed > 0
    real = ret.apply_eval(store.root, store.journal, "e1", POLICY, now=now)
    want = real.as_dict()
    got = dry.as_dict()
    for d in (want, got):
        d.pop("status"), d.pop("dry_run")
        for g in d["groups"]:
            g.pop("batch_id")
    assert got == want  # to the byte: the dry run wrote the same files into counters
    on_disk = sum((store.home / f).stat().st_size for f in _live_files(store))
    assert real.bytes_after == on_disk


@pytest.mark.slow
def test_readers_polling_during_apply_see_the_same_rows_every_time(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for e in ("e1", "e2"):
        _make_eval(home, eval_id=e, n=25, per_commit=5).close()
    settings = Settings(home=home)
    want = sorted((r["run_id"], r["score"]) for r in committed_rows(home))
    seen: list[bool] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                _, rows = api.query("SELECT run_id, score FROM runs ORDER BY ALL",
                                    settings=settings)
                seen.append(rows == want)
            except BaseException as exc:  # any error fails the test
                errors.append(exc)
                return

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        now = time.time() + 400 * DAY
        out = api.retention_apply(settings=settings, now=now)
        assert [e["status"] for e in out["evals"]] == ["thinned", "thinned"]
        store = Store(home)
        store.purge_retired()  # within the grace: a reader may still read the old files
        store.close()
        time.sleep(0.2)
    finally:
        stop.set()
        reader.join()
    assert not errors, errors[0]
    assert len(seen) > 1 and all(seen)
    store = Store(home)
    store.purge_retired(now=now + ORPHAN_GRACE_S + 1)
    assert _files_on_disk(home) == _live_files(store)
    store.close()
    _, rows = api.query("SELECT run_id, score FROM runs ORDER BY ALL", settings=settings)
    assert rows == want


def test_a_running_eval_is_skipped_and_reported(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = _make_eval(home, n=5)
    store.journal.claim_driver("e1", DRIVER, 300)  # a live driver on another host
    files = _files_on_disk(home)
    settings = Settings(home=home)
    now = time.time() + 400 * DAY
    for dry in (True, False):
        (e,) = api.retention_apply(settings=settings, now=now, dry_run=dry)["evals"]
        assert e["status"] == "skipped" and DRIVER in e["reason"], e
    assert _files_on_disk(home) == files
    store.journal.release_driver("e1", DRIVER)
    (e,) = api.retention_apply(settings=settings, now=now)["evals"]
    assert e["status"] == "thinned"
    store.close()


def test_readers_cope_with_a_journal_without_the_retention_tables(tmp_path: Path) -> None:
    store = _make_eval(tmp_path / "home", n=3)
    with store.journal.engine.begin() as conn:  # as an older evalfleet left it
        conn.exec_driver_sql("DROP TABLE trajectory_pins")
        conn.exec_driver_sql("DROP TABLE retention_applied")
        conn.exec_driver_sql("DELETE FROM migrations WHERE name IN "
                             "('0007_trajectory_pins', '0008_retention_applied')")
    store.close()
    settings = Settings(home=tmp_path / "home")
    reader = Store.open_readonly(tmp_path / "home")
    assert reader.journal.pins() == [] and reader.journal.retention_records() == {}
    reader.close()
    (e,) = api.retention_show(settings=settings)["evals"]
    assert (e["pinned"], e["applied"], e["trajectories"]) == (0, None, 6)
    assert api.trajectory_pins(settings=settings) == []
    writer = Store(tmp_path / "home")  # the writer migrates it
    assert writer.journal.has_table("trajectory_pins")
    writer.close()


# the journal's part, on SQLite and on PostgreSQL (EVALFLEET_TEST_POSTGRES_URL) ---------------
# (the `journal` fixture, one per engine, is in tests/store/conftest.py)


def test_pins_and_the_guarded_swap_on_every_journal(journal: Journal) -> None:
    ids = [f"{0xabc0 + i:024x}" for i in range(4)]  # run ids as api.evals makes them
    journal.create_eval(eval_id="e", plan_name="p", plan_json="{}", suite_name="s",
                        suite_hash="h", planned=4,
                        rows=[(r, f"t{i}", 0, 0) for i, r in enumerate(ids)])
    journal.commit_batch(eval_id="e", batch_id="b0", results_path="b0.parquet",
                         trajectories_path="b0.jsonl.zst",
                         rows=[CommitRow(r, "completed", True, 0.1, 1) for r in ids])
    run_0, run_1 = ids[:2]
    assert journal.match_runs(run_1) == [(run_1, "e")]
    assert [r for r, _ in journal.match_runs(run_1[:21])] == ids
    assert journal.match_runs(run_1[:21].upper() + "A") == []
    assert journal.match_runs(run_1[:20] + "%") == []
    assert journal.pin(run_1, "e", "review", note="r1", now=5.0)
    assert journal.pin(run_1, "e", "decision", now=6.0)
    assert not journal.pin(run_1, "e", "review", note="r1 again", now=7.0)
    assert [(p["run_id"], p["kind"], p["note"]) for p in journal.pins("e")] == [
        (run_1, "review", "r1 again"), (run_1, "decision", "")]
    assert journal.pins("other") == []
    # a swap that would drop a pinned trajectory changes nothing
    with pytest.raises(StoreError, match="pinned meanwhile"):
        journal.commit_compaction(eval_id="e", batch_id="b1", results_path="b1.parquet",
                                  trajectories_path=None, n_rows=4, replaced=["b0"],
                                  drops_trajectories=[run_0, run_1])
    assert not journal.has_batch("b1") and journal.live_results_paths("e") == ["b0.parquet"]
    assert journal.unpin(run_1, "review") == 1 and journal.unpin(run_1) == 1
    journal.commit_compaction(eval_id="e", batch_id="b1", results_path="b1.parquet",
                              trajectories_path=None, n_rows=4, replaced=["b0"],
                              drops_trajectories=[run_0, run_1])
    assert journal.live_results_paths("e") == ["b1.parquet"]
    journal.record_retention("e", "warm", kept=2, removed=2, now=10.0)
    journal.record_retention("e", "cold", kept=0, removed=4, now=11.0)
    rec = journal.retention_records()["e"]
    assert (rec["tier"], rec["applied_at"], rec["trajectories_kept"],
            rec["trajectories_removed"]) == ("cold", 11.0, 0, 4)
