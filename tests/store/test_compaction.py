"""Compaction: small results files merged into large sorted ones, crash-safe, with readers
running; every committed row stays exactly once and every trajectory stays reachable."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace as dataclasses_replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from evalfleet import api
from evalfleet.cli.main import app
from evalfleet.errors import StoreError
from evalfleet.settings import Settings
from evalfleet.spec import AgentSpec, ScorerSpec, Suite, Task
from evalfleet.spec.result import RunResult
from evalfleet.store import CommitReport, RowContext, Store, read_trajectory
from evalfleet.store import compaction as comp
from evalfleet.store import results as results_mod
from evalfleet.store.journal import CommitRow, Journal
from evalfleet.store.results import (
    ORPHAN_GRACE_S,
    RESULTS_SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    ResultsMigration,
    remove_orphans,
)
from evalfleet.store.warehouse import query

DRIVER = "elsewhere:1"  # another host: trusted by its heartbeat


def _suite(n: int) -> Suite:
    return Suite(name="s", tasks=tuple(
        Task(id=f"t{i:03d}", input="x", target="ok", scorer=ScorerSpec(kind="exact"),
             category=f"c{i % 3}", difficulty=1 + i % 5) for i in range(n)))


def _eval(store: Store, eval_id: str, n: int) -> RowContext:
    suite = _suite(n)
    agents = (AgentSpec(name="a", version="2", kind="python", args={"callable": "m:f"}),
              AgentSpec(name="a", version="1", kind="python", args={"callable": "m:g"}))
    store.journal.create_eval(
        eval_id=eval_id, plan_name="p", plan_json="{}", suite_name="s",
        suite_hash=suite.suite_hash, planned=2 * n,
        rows=[(f"{eval_id}-{a}-{i}", f"t{i:03d}", a, 0) for a in (0, 1) for i in range(n)])
    store.journal.claim_driver(eval_id, DRIVER, 300)
    return RowContext(eval_id, "p", suite, agents)


def _result(ctx: RowContext, a: int, i: int) -> RunResult:
    return RunResult(run_id=f"{ctx.eval_id}-{a}-{i}", task_id=f"t{i:03d}", agent_index=a,
                     repeat=0, status="completed", score=float(i % 2), passed=bool(i % 2),
                     tokens_in=10 * i, cost_usd=0.001 * i, started_at=1e9 + i,
                     finished_at=1e9 + i + 1,
                     trajectory={"events": [{"kind": "output", "text": f"answer {a} {i}"}]})


def _small_eval(tmp_path: Path, n: int = 20, eval_id: str = "e1") -> tuple[Store, RowContext]:
    """An eval of 2n runs committed one row per batch (the slow-agent case)."""
    store = Store(tmp_path / "home")
    ctx = _eval(store, eval_id, n)
    for i in range(n):
        for a in (0, 1):
            store.commit(ctx, [_result(ctx, a, i)])
    return store, ctx


def _rows(store: Store, eval_id: str) -> list[tuple[Any, ...]]:
    """Every row a reader sees, without its trajectory URI, in a fixed order."""
    cols = [f.name for f in results_mod.RESULTS_SCHEMA if f.name != "trajectory_uri"]
    _, rows = query(store.home, store.results_paths(eval_id),
                    f"SELECT {', '.join(cols)} FROM runs ORDER BY run_id")
    return rows


def _trajectories(store: Store, eval_id: str) -> dict[str, Any]:
    _, rows = query(store.home, store.results_paths(eval_id),
                    "SELECT run_id, trajectory_uri FROM runs")
    return {rid: read_trajectory(store.home, uri, rid) for rid, uri in rows}


def _files_on_disk(home: Path) -> set[str]:
    return {f.relative_to(home).as_posix() for d in ("results", "trajectories")
            for f in (home / d).rglob("*") if f.is_file()}


def _live_files(store: Store) -> set[str]:
    out: set[str] = set()
    for e in store.journal.list_evals():
        for b in store.journal.iter_batches(e["eval_id"]):
            out.add(b["results_path"])
            if b["trajectories_path"]:
                out.add(b["trajectories_path"])
    return out


def test_compaction_keeps_every_row_once_sorted_and_versioned(tmp_path: Path) -> None:
    store, _ = _small_eval(tmp_path)
    store.compaction_policy = comp.Policy(row_group_rows=8)
    before, trajs = _rows(store, "e1"), _trajectories(store, "e1")
    assert len(store.results_paths("e1")) == 40 and len(before) == 40
    rep = store.compact("e1", DRIVER, final=True)
    assert rep.files_before == 40 and rep.files_after == 1 and rep.rows == 40
    (path,) = store.results_paths("e1")
    assert _rows(store, "e1") == before  # same rows, each once
    assert _trajectories(store, "e1") == trajs and all(trajs.values())
    pf = pq.ParquetFile(store.home / path)
    assert pf.schema_arrow.metadata[SCHEMA_VERSION_KEY] == str(RESULTS_SCHEMA_VERSION).encode()
    assert pf.metadata.num_row_groups == 5  # 40 rows, 8 per group, each with statistics
    versions = pf.read(columns=["agent_version", "category", "task_id"]).to_pylist()
    assert versions == sorted(versions, key=lambda r: (r["agent_version"], r["category"],
                                                       r["task_id"]))
    stats = pf.metadata.row_group(0).column(pf.schema_arrow.get_field_index("agent_version"))
    assert stats.statistics.has_min_max and stats.statistics.max == "1"
    # the journal's runs point to the compacted batch; the old batches are superseded
    assert {b["n_rows"] for b in store.journal.iter_batches("e1")} == {40}
    old = store.journal.retired_batches("e1", before=time.time() + 1)
    assert len(old) == 40 and {b["superseded_by"] for b in old} == {rep.merges[0].batch_id}


def test_tiered_compaction_during_an_eval_rewrites_rows_log_times(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "home")
    store.compaction_policy = comp.Policy(fan_in=4)
    ctx = _eval(store, "e1", 32)
    store.auto_compact("e1", DRIVER)
    merged_rows = 0
    orig = comp.compact_eval

    def counting(*a: Any, **k: Any) -> comp.CompactionReport:
        nonlocal merged_rows
        rep = orig(*a, **k)
        merged_rows += sum(m.rows for m in rep.merges)
        return rep

    monkeypatch.setattr(comp, "compact_eval", counting)
    most = 0
    for i in range(32):
        for a in (0, 1):
            store.commit(ctx, [_result(ctx, a, i)])
            most = max(most, len(store.results_paths("e1")))
    # 64 one-row batches at fan-in 4: never more than a few files of each size at once
    assert most <= 3 * 4 + 4
    # each row rewritten about log_4(64) = 3 times, not at every merge (that would be ~8)
    assert merged_rows <= 3 * 64
    assert len(_rows(store, "e1")) == 64
    store.compact("e1", DRIVER, final=True)
    assert len(store.results_paths("e1")) == 1 and len(_rows(store, "e1")) == 64


def _crash_after_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process dies after writing the new files, before the journal transaction: nothing
    is cleaned up (has_batch cannot even be asked)."""
    def boom(*_a: Any, **_k: Any) -> None:
        raise KeyboardInterrupt("killed")
    monkeypatch.setattr(Journal, "commit_compaction", boom)
    monkeypatch.setattr(Journal, "has_batch", boom)


def _crash_after_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal transaction commits, then the process dies."""
    orig = Journal.commit_compaction

    def commit_then_die(self: Journal, **kw: Any) -> None:
        orig(self, **kw)
        raise KeyboardInterrupt("killed")
    monkeypatch.setattr(Journal, "commit_compaction", commit_then_die)


def _error_before_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal transaction fails (an error, not a crash): the new files are removed."""
    def fail(*_a: Any, **_k: Any) -> None:
        raise StoreError("database is locked")
    monkeypatch.setattr(Journal, "commit_compaction", fail)


@pytest.mark.parametrize("crash", [_crash_after_write, _crash_after_commit,
                                   _error_before_commit])
def test_a_crash_at_any_step_loses_and_duplicates_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        crash: Callable[[pytest.MonkeyPatch], None]) -> None:
    store, _ = _small_eval(tmp_path)
    before, trajs = _rows(store, "e1"), _trajectories(store, "e1")
    with monkeypatch.context() as m:
        crash(m)
        with pytest.raises((KeyboardInterrupt, StoreError)):
            store.compact("e1", DRIVER, final=True)
    assert _rows(store, "e1") == before and _trajectories(store, "e1") == trajs
    # later: the driver (or `evalfleet compact`) cleans up past the grace period and
    # compacts again; still every row once, and nothing left that no batch references
    later = time.time() + ORPHAN_GRACE_S + 1
    remove_orphans(store.home, "e1", store.journal.referenced_paths("e1"), now=later)
    store.purge_retired("e1", now=later)
    store.compact("e1", DRIVER, final=True)
    assert len(store.results_paths("e1")) == 1
    assert _rows(store, "e1") == before and _trajectories(store, "e1") == trajs
    store.purge_retired("e1", now=time.time() + ORPHAN_GRACE_S + 1)
    assert _files_on_disk(store.home) == _live_files(store)
    assert store.journal.retired_batches(before=time.time() + 10**6) == []


def test_a_crash_during_deletes_is_finished_by_the_next_purge(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = _small_eval(tmp_path)
    before, trajs = _rows(store, "e1"), _trajectories(store, "e1")
    t0 = time.time()
    store.compact("e1", DRIVER, final=True, now=t0)
    assert store.purge_retired("e1", now=t0 + ORPHAN_GRACE_S - 1) == []  # within the grace
    deleted: list[Path] = []

    def unlink_some(path: Path) -> None:
        if len(deleted) == 7:
            raise KeyboardInterrupt("killed while deleting")
        path.unlink()
        deleted.append(path)
    with monkeypatch.context() as m:
        m.setattr(comp, "_remove_file", unlink_some)
        with pytest.raises(KeyboardInterrupt):
            store.purge_retired("e1", now=t0 + ORPHAN_GRACE_S + 1)
    assert _rows(store, "e1") == before and _trajectories(store, "e1") == trajs
    assert len(store.journal.retired_batches("e1", before=t0 + 10**6)) == 40  # none forgotten
    purged = store.purge_retired("e1", now=t0 + ORPHAN_GRACE_S + 1)
    assert len(purged) == 80  # 40 Parquet + 40 trajectory files; deleted twice is harmless
    assert _files_on_disk(store.home) == _live_files(store)
    assert store.journal.retired_batches("e1", before=t0 + 10**6) == []
    assert _rows(store, "e1") == before and _trajectories(store, "e1") == trajs


def test_a_reader_holding_the_old_list_reads_it_until_the_grace_ends(tmp_path: Path) -> None:
    store, _ = _small_eval(tmp_path)
    listed = store.results_paths("e1")  # a reader lists the files, then compaction swaps
    store.compact("e1", DRIVER, final=True)
    store.purge_retired("e1")  # the driver purges now: within the grace, nothing goes
    _, rows = query(store.home, listed, "SELECT count(*), count(DISTINCT run_id) FROM runs")
    assert rows == [(40, 40)]


def test_compaction_refuses_without_the_claim_and_files_of_a_newer_version(
        tmp_path: Path) -> None:
    store, _ = _small_eval(tmp_path)
    with pytest.raises(StoreError, match="does not hold"):
        store.compact("e1", "someone:2", final=True)
    first = store.home / store.results_paths("e1")[0]
    t = pq.read_table(first)
    pq.write_table(t.replace_schema_metadata({SCHEMA_VERSION_KEY: b"999"}), first)
    with pytest.raises(StoreError, match="newer"):
        store.compact("e1", DRIVER, final=True)
    assert len(store.results_paths("e1")) == 40  # nothing swapped


def test_a_renamed_column_reads_under_its_new_name_before_and_after_compaction(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import evalfleet.store.warehouse as wh

    store = Store(tmp_path / "home")
    ctx = _eval(store, "e1", 4)
    for i in range(2):  # files of the old schema: the column is `worker`
        store.commit(ctx, [_result(ctx, 0, i), _result(ctx, 1, i)])
    # a release renames `worker` to `worker_host`; its files have the new name
    renamed = pa.schema([f.with_name("worker_host") if f.name == "worker" else f
                         for f in results_mod.RESULTS_SCHEMA])
    for mod in (results_mod, comp):
        monkeypatch.setattr(mod, "RESULTS_SCHEMA", renamed)
    for i in range(2, 4):
        store.commit(ctx, [dataclasses_replace(_result(ctx, 0, i), worker="w-new"),
                           dataclasses_replace(_result(ctx, 1, i), worker="w-new")])
    with pytest.raises(StoreError, match="unknown"):  # no migration: old files refused
        store.compact("e1", DRIVER, final=True)
    mig = (ResultsMigration("0001_worker_host", 2, old="worker", new="worker_host"),)
    for mod in (results_mod, wh):
        monkeypatch.setattr(mod, "RESULTS_MIGRATIONS", mig)
    sql = "SELECT worker_host, count(*) FROM runs GROUP BY ALL ORDER BY ALL"
    want = [("", 4), ("w-new", 4)]
    assert query(store.home, store.results_paths("e1"), sql)[1] == want
    assert "worker" not in query(store.home, store.results_paths("e1"),
                                 "SELECT * FROM runs LIMIT 1")[0]
    store.compact("e1", DRIVER, final=True)
    (path,) = store.results_paths("e1")
    assert "worker" not in pq.read_schema(store.home / path).names
    assert query(store.home, store.results_paths("e1"), sql)[1] == want


# through the api: the driver, readers, show, the command ------------------------------------


def _one_row_per_commit(m: pytest.MonkeyPatch) -> None:
    """Every commit holds one row, as with slow agents (however the dispatcher batches)."""
    orig = Store.commit

    def one_by_one(self: Store, ctx: RowContext, results: Any) -> CommitReport:
        reps = [orig(self, ctx, [r]) for r in results]
        return CommitReport(sum(r.committed for r in reps), sum(r.duplicates for r in reps))

    m.setattr(Store, "commit", one_by_one)


@pytest.fixture
def uncompacted(make_plan: Callable[..., Path], settings: Settings,
                monkeypatch: pytest.MonkeyPatch) -> str:
    """A finished eval of 24 runs in 24 files: its driver did not compact."""
    with monkeypatch.context() as m:
        m.setattr(Store, "maintain", lambda *_a, **_k: None)
        _one_row_per_commit(m)
        s = api.run(make_plan(n_tasks=12, name="small",
                              execution={"write_batch": 1, "max_in_flight": 1},
                              agents=[{"name": "noop", "version": v, "kind": "python",
                                       "args": {"callable": "evalfleet.testing.agents:noop"}}
                                      for v in ("1", "2")]), settings=settings)
    assert s.done == 24
    reader = Store.open_readonly(settings.home)
    assert len(reader.results_paths(s.eval_id)) == 24
    reader.close()
    return s.eval_id


def _strip(report: dict[str, Any]) -> Any:
    """The report as JSON, floats to 12 significant digits: sums over rows in another order
    differ in the last bits."""
    def rounded(x: Any) -> Any:
        if isinstance(x, float):
            return float(f"{x:.12g}")
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        if isinstance(x, list):
            return [rounded(v) for v in x]
        return x
    return rounded(json.loads(api.dumps(report)))


def test_report_and_show_are_the_same_after_compaction(uncompacted: str,
                                                         settings: Settings) -> None:
    rep = _strip(api.report(uncompacted, settings=settings))
    _, ids = api.query("SELECT run_id FROM runs ORDER BY run_id", settings=settings)
    shown = {rid: api.show_run(rid, settings=settings) for (rid,) in ids}
    out = api.compact(uncompacted, settings=settings)
    assert out["evals"][0]["files_after"] == 1
    # readers see the same report; `show` finds every trajectory, now and once old files go
    assert _strip(api.report(uncompacted, settings=settings)) == rep
    store = Store(settings.home)
    store.purge_retired(uncompacted, now=time.time() + ORPHAN_GRACE_S + 1)
    store.close()
    for rid, before in shown.items():
        after = api.show_run(rid, settings=settings)
        assert after["trajectory_found"] and after["events"] == before["events"]
        assert after["events"]  # not empty: a real trajectory
        assert {k: v for k, v in after["run"].items() if k != "trajectory_uri"} == {
            k: v for k, v in before["run"].items() if k != "trajectory_uri"}


def test_readers_polling_during_compaction_never_see_a_changed_count(
        uncompacted: str, settings: Settings) -> None:
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                _, rows = api.query("SELECT count(*), count(DISTINCT run_id) FROM runs",
                                    eval_id=uncompacted, settings=settings)
                seen.append(rows[0])
                rep = api.report(uncompacted, settings=settings)
                n = sum(a["overall"]["n_runs"] for a in rep["agents"])
                seen.append((n, n))
            except BaseException as exc:  # any error fails the test
                errors.append(exc)
                return

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        store = Store(settings.home)
        store.compaction_policy = comp.Policy(fan_in=2)
        store.journal.claim_driver(uncompacted, DRIVER, 300, maintenance=True)
        for _ in range(5):  # tiers of 2: 24 -> 12 -> 6 -> 3 -> ... files, then all
            store.compact(uncompacted, DRIVER, final=False)
            time.sleep(0.05)
        store.compact(uncompacted, DRIVER, final=True)
        store.purge_retired(uncompacted)
        assert len(store.results_paths(uncompacted)) == 1
        store.close()
        time.sleep(0.2)
    finally:
        stop.set()
        reader.join()
    assert not errors, errors[0]
    assert seen and set(seen) == {(24, 24)}


def test_the_driver_compacts_during_a_long_eval_and_at_its_end(
        make_plan: Callable[..., Path], settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comp, "DEFAULT_POLICY", comp.Policy(fan_in=4))
    during: list[int] = []
    orig = comp.compact_eval

    def watch(home: Path, journal: Journal, eval_id: str, **kw: Any) -> comp.CompactionReport:
        rep = orig(home, journal, eval_id, **kw)
        if rep.merges and not kw["final"]:
            during.append(journal.counts(eval_id).get("pending", 0)
                          + journal.counts(eval_id).get("leased", 0))
        return rep

    monkeypatch.setattr(comp, "compact_eval", watch)
    _one_row_per_commit(monkeypatch)
    s = api.run(make_plan(n_tasks=40, name="long", execution={"write_batch": 1,
                                                               "max_in_flight": 1}),
                settings=settings)
    assert s.done == 40
    assert during and max(during) > 0  # merged while runs were still to come
    reader = Store.open_readonly(settings.home)
    assert len(reader.results_paths(s.eval_id)) == 1  # and down to one file at the end
    reader.close()
    _, rows = api.query("SELECT count(*), count(DISTINCT run_id) FROM runs", settings=settings)
    assert rows == [(40, 40)]


def test_compact_command(uncompacted: str, settings: Settings) -> None:
    runner = CliRunner()
    home = str(settings.home)
    dry = runner.invoke(app, ["compact", "--dry-run", "--json", "--home", home])
    assert dry.exit_code == 0, dry.output
    (e,) = json.loads(dry.stdout)["evals"]
    assert e["files_before"] == 24 and e["files_after"] == 1 and e["merges"][0]["inputs"] == 24
    reader = Store.open_readonly(settings.home)
    assert len(reader.results_paths(uncompacted)) == 24  # a dry run writes nothing
    reader.close()
    # another live driver holds the eval: refused by id, skipped over all evals
    store = Store(settings.home)
    other = f"{socket.gethostname()}:{os.getppid()}"
    store.journal.claim_driver(uncompacted, other, 300, maintenance=True)
    with pytest.raises(StoreError, match="being run by"):
        api.compact(uncompacted, settings=settings)
    assert "skipped" in api.compact(settings=settings)["evals"][0]
    store.journal.release_driver(uncompacted, other)
    status_before = store.journal.get_eval(uncompacted)["status"]
    store.close()
    done = runner.invoke(app, ["compact", uncompacted[:6], "--home", home])
    assert done.exit_code == 0, done.output
    assert "merged 24 of 24 files into 1" in done.stdout
    reader = Store.open_readonly(settings.home)
    assert len(reader.results_paths(uncompacted)) == 1
    assert reader.journal.get_eval(uncompacted)["status"] == status_before == "completed"
    reader.close()


def test_readers_cope_with_a_journal_from_before_compaction(tmp_path: Path) -> None:
    store, _ = _small_eval(tmp_path, n=3)
    with store.journal.engine.begin() as conn:  # as an older evalfleet left it
        conn.exec_driver_sql("ALTER TABLE batches DROP COLUMN superseded_by")
        conn.exec_driver_sql("ALTER TABLE batches DROP COLUMN superseded_at")
        conn.exec_driver_sql("DELETE FROM migrations WHERE name LIKE '%superseded%'")
    store.close()
    reader = Store.open_readonly(tmp_path / "home")
    assert len(reader.results_paths("e1")) == 6 and len(reader.all_results_paths()) == 6
    assert reader.journal.retired_batches(before=time.time()) == []
    reader.close()
    writer = Store(tmp_path / "home")  # the writer migrates it, then can compact
    writer.journal.claim_driver("e1", DRIVER, 300)
    writer.compact("e1", DRIVER, final=True)
    assert len(writer.results_paths("e1")) == 1 and len(_rows(writer, "e1")) == 6
    writer.close()


# the journal's part, on SQLite and on PostgreSQL (EVALFLEET_TEST_POSTGRES_URL) ---------------
# (the `journal` fixture, one per engine, is in tests/store/conftest.py)


def test_the_swap_is_one_transaction_on_every_journal(journal: Journal) -> None:
    journal.create_eval(eval_id="e", plan_name="p", plan_json="{}", suite_name="s",
                        suite_hash="h", planned=6,
                        rows=[(f"r{i}", f"t{i}", 0, 0) for i in range(6)])
    for b in range(3):
        journal.commit_batch(eval_id="e", batch_id=f"b{b}", results_path=f"b{b}.parquet",
                             trajectories_path=f"b{b}.jsonl.zst", rows=[
                                 CommitRow(f"r{2 * b + i}", "completed", True, 0.1, 1)
                                 for i in range(2)])
    t0 = 1000.0
    journal.commit_compaction(eval_id="e", batch_id="c1", results_path="c1.parquet",
                              trajectories_path="c1.jsonl.zst", n_rows=4,
                              replaced=["b0", "b1"], now=t0)
    assert journal.live_results_paths("e") == ["b2.parquet", "c1.parquet"]
    assert sorted(b["batch_id"] for b in journal.iter_batches("e")) == ["b2", "c1"]
    assert len(list(journal.iter_batches("e", include_superseded=True))) == 4
    # runs do not name their batch: the live batches hold every committed row once
    assert sum(b["n_rows"] for b in journal.iter_batches("e")) == journal.counts("e")["done"]
    # a batch no longer live, or rows that do not add up: nothing changes at all
    for replaced, n in ((["b0", "b2"], 4), (["b2"], 3)):
        with pytest.raises(StoreError, match="nothing changed"):
            journal.commit_compaction(eval_id="e", batch_id="c2", results_path="c2.parquet",
                                      trajectories_path=None, n_rows=n, replaced=replaced,
                                      now=t0)
        assert not journal.has_batch("c2")
        assert journal.live_results_paths() == ["b2.parquet", "c1.parquet"]
    # superseded files stay referenced (orphan cleanup keeps them) until they are dropped
    assert {"b0.parquet", "b1.jsonl.zst"} <= journal.referenced_paths("e")
    assert journal.retired_batches("e", before=t0) == []
    retired = journal.retired_batches(before=t0 + 1)
    assert [b["batch_id"] for b in retired] == ["b0", "b1"]
    assert journal.drop_retired(["b0", "b1", "b2"]) == 2  # a live batch is never dropped
    assert journal.referenced_paths("e") == {"b2.parquet", "b2.jsonl.zst", "c1.parquet",
                                             "c1.jsonl.zst"}


def test_merges_while_an_eval_runs_stay_small_and_the_end_merges_them() -> None:
    policy = comp.Policy(fan_in=4, target_rows=100, live_max_rows=40)
    batches = [{"batch_id": f"b{i}", "n_rows": 16} for i in range(8)]
    # 8 files of 16 rows (tier 2 at fan-in 4): while running, groups of at most 40 rows
    live = comp.plan_merges(batches, {}, policy, final=False)
    assert [len(g) for g in live] == [2, 2, 2, 2]
    # at the end: as few files as 100 rows allow
    assert [len(g) for g in comp.plan_merges(batches, {}, policy, final=True)] == [6, 2]
    # files of the live cap are left for the end; fewer than fan_in of a size wait
    assert comp.plan_merges([{"batch_id": "x", "n_rows": 40}] * 4, {}, policy,
                            final=False) == []
    assert comp.plan_merges(batches[:3], {}, policy, final=False) == []
