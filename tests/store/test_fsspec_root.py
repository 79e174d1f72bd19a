"""Results and trajectories under a warehouse root named by a path or an fsspec URL.

A whole small eval runs with its warehouse at ``file://<tmp>``, at ``memory://<unique>``, at a
plain path elsewhere than the home, and at an ``s3://`` URL (served in memory by a stand-in
registered for the protocol, so DuckDB meets a real ``s3://`` URL offline): rows committed
exactly once, read back by report, query, slice and show, trajectories read, compaction and
purge done there, orphans cleaned, a crash between a batch's write and its commit resumed
without loss, and readers writing nothing. The files are looked at with fsspec directly, not
through the layer under test.
"""

from __future__ import annotations

import hashlib
import importlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import fsspec.core
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from evalfleet import api
from evalfleet.errors import SpecError
from evalfleet.settings import Settings
from evalfleet.store import CommitReport, RowContext, Store
from evalfleet.store.fs import is_url
from evalfleet.store.results import ORPHAN_GRACE_S, TMP_GRACE_S, ResultsWriter, remove_orphans
from evalfleet.store.warehouse import connect

from .conftest import fingerprint

N = 8


@dataclass(frozen=True)
class Warehouse:
    """A warehouse root and a way to see its files without evalfleet."""

    url: str
    kind: str

    def files(self) -> dict[str, str]:
        """Every file under the root, relative to it: sha256 of its content."""
        fs, base = fsspec.core.url_to_fs(self.url)
        base = str(base).rstrip("/")
        if not fs.exists(base):
            return {}
        return {str(p)[len(base) + 1:]: hashlib.sha256(fs.cat_file(p)).hexdigest()
                for p in fs.find(base)}


class InMemoryS3(MemoryFileSystem):  # type: ignore[misc]
    """``s3://`` URLs kept in this process's memory (its own store, not ``memory://``'s)."""

    protocol = ("s3", "s3a")
    store: ClassVar[dict[str, Any]] = {}
    pseudo_dirs: ClassVar[list[str]] = [""]

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        for proto in ("s3://", "s3a://"):
            if isinstance(path, str) and path.startswith(proto):
                path = path[len(proto):]
        return super()._strip_protocol(path)


@pytest.fixture(params=["file", "memory", "path", "s3"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Warehouse]:
    if request.param == "s3":
        registry = importlib.import_module("fsspec.registry")  # the module: the package's
        monkeypatch.setitem(registry._registry, "s3", InMemoryS3)  # `registry` is a view
        yield Warehouse(f"s3://evalfleet-test-{uuid.uuid4().hex}/warehouse", "s3")
        InMemoryS3.store.clear()
        InMemoryS3.pseudo_dirs[:] = [""]
        return
    if request.param == "memory":
        name = f"evalfleet-test-{uuid.uuid4().hex}"
        yield Warehouse(f"memory://{name}", "memory")
        mem = fsspec.filesystem("memory")
        if mem.exists(f"/{name}"):
            mem.rm(f"/{name}", recursive=True)
        return
    where = tmp_path / "warehouse"
    yield Warehouse(f"file://{where}" if request.param == "file" else str(where), request.param)


@pytest.fixture
def wsettings(home: Path, warehouse: Warehouse) -> Settings:
    return Settings(home=home, warehouse_url=warehouse.url)


@pytest.fixture
def one_row_per_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every commit holds one row, as with slow agents (however the dispatcher batches), so
    the eval makes several batches and its end compacts them."""
    orig = Store.commit

    def one_by_one(self: Store, ctx: RowContext, results: Any) -> CommitReport:
        reps = [orig(self, ctx, [r]) for r in results]
        return CommitReport(sum(r.committed for r in reps), sum(r.duplicates for r in reps))

    monkeypatch.setattr(Store, "commit", one_by_one)


def _rows(settings: Settings) -> list[dict[str, Any]]:
    cols, rows = api.query("SELECT * FROM runs", settings=settings)
    return [dict(zip(cols, r, strict=True)) for r in rows]


def _referenced(store: Store, eval_id: str) -> set[str]:
    return store.journal.referenced_paths(eval_id)


def test_an_eval_lives_in_the_warehouse_and_every_reader_finds_it(
        make_plan: Callable[..., Path], wsettings: Settings, warehouse: Warehouse,
        home: Path, one_row_per_commit: None) -> None:
    summary = api.run(make_plan(n_tasks=N, execution={"write_batch": 1}), settings=wsettings)
    assert summary.status == "completed" and summary.done == N
    eid = summary.eval_id
    # the end of a run names where the results are, not a folder of the home
    assert summary.results.endswith(f"results/eval_id={eid}")
    if warehouse.kind in ("file", "path"):
        assert Path(summary.results).is_dir() and not Path(summary.results).is_relative_to(home)
    else:
        assert summary.results.startswith(warehouse.url.split("://")[0] + "://"), summary.results

    # the journal stays in the home; results and trajectories are only in the warehouse
    assert (home / "journal.db").is_file()
    assert not (home / "results").exists() and not (home / "trajectories").exists()
    files = warehouse.files()
    assert files and all(f.startswith((f"results/eval_id={eid}/", f"trajectories/{eid}/"))
                         for f in files)
    if warehouse.kind in ("file", "path"):  # a local root is as private as the home
        root = Path(fsspec.core.url_to_fs(warehouse.url)[1])
        for f in [root, *root.rglob("*")]:
            assert f.stat().st_mode & 0o777 == (0o700 if f.is_dir() else 0o600), f

    # committed exactly once
    rows = _rows(wsettings)
    assert len(rows) == N == len({r["run_id"] for r in rows})
    assert {r["eval_id"] for r in rows} == {eid}

    store = Store.open_readonly(home, warehouse_url=warehouse.url)
    try:
        live = store.results_paths(eid)
        # compacted at the end of the eval: one live file, given to readers as a location
        assert len(live) == 1 and len(list(store.journal.iter_batches(eid))) == 1
        assert is_url(live[0]) == (warehouse.kind in ("memory", "s3"))
        assert is_url(live[0]) or Path(live[0]).is_absolute()
        trajectories = {r["run_id"]: store.read_trajectory(r["trajectory_uri"], r["run_id"])
                        for r in rows}
    finally:
        store.close()
    assert all(t is not None and t["run_id"] == rid for rid, t in trajectories.items())
    assert all(r["trajectory_uri"].startswith(f"trajectories/{eid}/") for r in rows)

    # every reader reads it, and none writes anything, in the warehouse or the home
    before_wh, before_home = warehouse.files(), fingerprint(home)
    rep = api.report(eid, settings=wsettings)
    assert rep["coverage"]["done"] == rep["coverage"]["scored"] == N
    sl = api.slice_runs(agent="noop@latest", settings=wsettings)
    assert sl["cells"][0]["agent"]["n_runs"] == N
    shown = api.show_run(rows[0]["run_id"], settings=wsettings)
    assert shown["run"]["run_id"] == rows[0]["run_id"] and shown["trajectory_found"]
    assert shown["events"] == trajectories[rows[0]["run_id"]]["events"]  # type: ignore[index]
    assert api.status(eid, settings=wsettings)["done"] == N
    assert api.query("SELECT count(*) FROM scores", settings=wsettings)[1] == [(N,)]
    assert warehouse.files() == before_wh and fingerprint(home) == before_home

    # superseded files of the compaction stay for their grace period, then the purge (any
    # writer) removes them from the warehouse: what is left is exactly the live batch
    store = Store(home, warehouse_url=warehouse.url)
    try:
        assert set(warehouse.files()) == _referenced(store, eid)
        assert len(warehouse.files()) > 2  # the small batches' files are still there
        purged = store.purge_retired(now=time.time() + ORPHAN_GRACE_S + 1)
        (batch,) = store.journal.iter_batches(eid)
        assert purged and set(warehouse.files()) == {batch["results_path"],
                                                     batch["trajectories_path"]}
    finally:
        store.close()
    assert _rows(wsettings) == rows


def test_a_crash_between_write_and_commit_loses_nothing_and_leaves_orphans_to_clean(
        make_plan: Callable[..., Path], wsettings: Settings, warehouse: Warehouse,
        home: Path, monkeypatch: pytest.MonkeyPatch, one_row_per_commit: None) -> None:
    plan = make_plan(n_tasks=N, execution={"write_batch": 1})
    real = ResultsWriter.write
    calls: list[int] = []

    def die_after_writing(self: ResultsWriter, ctx: Any, results: Any) -> Any:
        batch = real(self, ctx, results)
        calls.append(len(results))
        if len(calls) == 2:  # the files are written, the journal never hears of them
            raise KeyboardInterrupt("driver killed between write and commit")
        return batch

    monkeypatch.setattr(ResultsWriter, "write", die_after_writing)
    with pytest.raises(KeyboardInterrupt):
        api.run(plan, settings=wsettings)
    monkeypatch.setattr(ResultsWriter, "write", real)

    store = Store(home, warehouse_url=warehouse.url)
    try:
        (ev,) = store.journal.list_evals()
        eid = ev["eval_id"]
        referenced = _referenced(store, eid)
        orphans = set(warehouse.files()) - referenced
        assert orphans  # the second batch's files, in the warehouse, referenced by nothing
        committed = store.journal.counts(eid).get("done", 0)
        assert 0 < committed < N
    finally:
        store.close()
    assert len(_rows(wsettings)) == committed  # readers never see the orphan batch

    summary = api.resume(eid, settings=wsettings)
    assert summary.status == "completed" and summary.done == N
    rows = _rows(wsettings)
    assert len(rows) == N == len({r["run_id"] for r in rows})  # nothing lost, nothing twice

    store = Store(home, warehouse_url=warehouse.url)
    try:
        assert orphans <= set(warehouse.files())  # younger than the grace: left alone
        later = time.time() + TMP_GRACE_S + 1
        removed = remove_orphans(store.root, eid, _referenced(store, eid), now=later)
        assert set(removed) == orphans
        assert set(warehouse.files()) == _referenced(store, eid)
    finally:
        store.close()
    assert _rows(wsettings) == rows


def test_a_remote_warehouse_is_read_through_fsspec_and_confined(
        make_plan: Callable[..., Path], home: Path, tmp_path: Path) -> None:
    name = f"evalfleet-test-{uuid.uuid4().hex}"
    settings = Settings(home=home, warehouse_url=f"memory://{name}")
    mem = fsspec.filesystem("memory")
    try:
        api.run(make_plan(n_tasks=3), settings=settings)
        mem.pipe_file(f"/{name}/elsewhere.parquet", mem.cat_file(
            mem.find(f"/{name}/results")[0]))  # a readable Parquet file no batch names
        store = Store.open_readonly(home, warehouse_url=settings.warehouse_url)
        try:
            con = connect(home, store.all_results_paths())
        finally:
            store.close()
        try:
            assert con.execute("SELECT count(*) FROM runs").fetchall() == [(3,)]
            # no DuckDB extension may be fetched or loaded for it (httpfs fails offline)
            assert con.execute("SELECT current_setting('autoload_known_extensions'), "
                               "current_setting('autoinstall_known_extensions')"
                               ).fetchall() == [(False, False)]
        finally:
            con.close()
        for sql in (f"SELECT * FROM read_parquet('memory:///{name}/elsewhere.parquet')",
                    f"SELECT * FROM read_text('{home / 'journal.db'}')"):
            with pytest.raises(SpecError, match="query failed"):
                api.query(sql, settings=settings)
    finally:
        if mem.exists(f"/{name}"):
            mem.rm(f"/{name}", recursive=True)


def test_an_unknown_warehouse_protocol_is_one_line_and_creates_nothing(
        make_plan: Callable[..., Path], home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    bad = Settings(home=home, warehouse_url="nosuchproto://bucket/x")
    with pytest.raises(SpecError, match="warehouse nosuchproto://bucket/x") as exc:
        api.status(settings=bad)
    assert "\n" not in str(exc.value)
    with pytest.raises(SpecError, match="warehouse"):
        api.run(make_plan(n_tasks=2), settings=bad)
    assert not home.exists()

    from evalfleet.cli.main import main

    monkeypatch.setenv("EVALFLEET_WAREHOUSE_URL", "nosuchproto://bucket/x")
    with pytest.raises(SystemExit) as stop:
        main(["status", "--home", str(home)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "nosuchproto" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not home.exists()


class TimelessMemory(MemoryFileSystem):  # type: ignore[misc]
    """A file system whose listings say nothing of when a file was written."""

    protocol = ("timeless",)
    store: ClassVar[dict[str, Any]] = {}
    pseudo_dirs: ClassVar[list[str]] = [""]

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, str) and path.startswith("timeless://"):
            path = path[len("timeless://"):]
        return super()._strip_protocol(path)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        out = super().ls(path, detail=detail, **kwargs)
        if detail:
            return [{k: v for k, v in e.items() if k != "created"} for e in out]
        return out

    def modified(self, path: str) -> Any:
        raise NotImplementedError


def test_orphans_of_unknown_age_are_kept_rather_than_guessed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from evalfleet.store import fs

    registry = importlib.import_module("fsspec.registry")
    monkeypatch.setitem(registry._registry, "timeless", TimelessMemory)
    try:
        root = fs.root_of("timeless://wh")
        fs.makedirs(root, "results/eval_id=e1")
        fs.write_atomic(root, "results/eval_id=e1/b1.parquet", b"not committed")
        (entry,) = fs.list_files(root, "results/eval_id=e1")
        assert entry.mtime is None and entry.rel == "results/eval_id=e1/b1.parquet"
        far = time.time() + 10 * TMP_GRACE_S
        assert remove_orphans(root, "e1", set(), now=far) == []  # it may be a batch in flight
        assert fs.is_file(root, "results/eval_id=e1/b1.parquet")
    finally:
        TimelessMemory.store.clear()
