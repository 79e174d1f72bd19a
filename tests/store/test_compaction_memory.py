"""Compaction's streaming merge: its memory does not grow with the group it merges, and with
chunks small enough to spill and to need several passes it still writes every row once,
sorted, with its trajectory; a run present twice, or an input not in the order its metadata
claims, fails the merge before anything is swapped."""

from __future__ import annotations

import io
import random
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from evalfleet.errors import StoreError
from evalfleet.spec import AgentSpec, ScorerSpec, Suite, Task
from evalfleet.spec.result import RunResult
from evalfleet.store import RowContext, Store, read_trajectory
from evalfleet.store import compaction as comp
from evalfleet.store import results as results_mod
from evalfleet.store.warehouse import query

DRIVER = "elsewhere:1"
EVAL = "e1"

SMALL = comp.Policy(fan_in=4, live_max_rows=60, merge_rows=64, merge_fan_in=3,
                    row_group_rows=100, frame_bytes=512)
"""Chunks of 64 rows, 3 runs at a time, row groups of 100: a merge of a few hundred rows
spills, and needs more than one pass."""


def _eval(home: Path, n_tasks: int, repeats: int) -> tuple[Store, RowContext, list[Any]]:
    """An eval of 3 agents x ``n_tasks`` x ``repeats``; agents 0 and 1 share a version, so
    their rows have equal sort keys. Runs are returned shuffled (batches in no order)."""
    store = Store(home)
    suite = Suite(name="s", tasks=tuple(
        Task(id=f"t{i:04d}", input="x", target="ok", scorer=ScorerSpec(kind="exact"),
             category=f"c{i % 3}", difficulty=1 + i % 5) for i in range(n_tasks)))
    agents = tuple(AgentSpec(name=n, version=v, kind="python", args={"callable": f"m:{n}"})
                   for n, v in (("a", "1"), ("b", "1"), ("c", "2")))
    runs = [(f"{EVAL}-{a}-{i}-{k}", f"t{i:04d}", a, k)
            for k in range(repeats) for i in range(n_tasks) for a in range(3)]
    store.journal.create_eval(eval_id=EVAL, plan_name="p", plan_json="{}", suite_name="s",
                              suite_hash=suite.suite_hash, planned=len(runs), rows=runs)
    store.journal.claim_driver(EVAL, DRIVER, 300)
    random.Random(len(runs)).shuffle(runs)
    return store, RowContext(EVAL, "p", suite, agents), runs


def _commit(store: Store, ctx: RowContext, runs: list[Any], batch: int) -> None:
    for start in range(0, len(runs), batch):
        store.commit(ctx, [
            RunResult(run_id=r, task_id=t, agent_index=a, repeat=k, status="completed",
                      score=float(k % 2), passed=bool(k % 2), tokens_in=len(r),
                      started_at=1e9 + k, finished_at=1e9 + k + 1,
                      trajectory=None if (int(t[1:]) + k) % 7 == 0 else
                      {"events": [{"kind": "output", "text": f"{r} " + "x" * (len(r) % 9)}]})
            for r, t, a, k in runs[start:start + batch]])


def _rows(store: Store) -> list[tuple[Any, ...]]:
    cols = [f.name for f in results_mod.RESULTS_SCHEMA if f.name != "trajectory_uri"]
    return query(store.home, store.results_paths(EVAL),
                 f"SELECT {', '.join(cols)} FROM runs ORDER BY run_id")[1]


def _trajectories(store: Store) -> dict[str, Any]:
    _, rows = query(store.home, store.results_paths(EVAL),
                    "SELECT run_id, trajectory_uri FROM runs")
    return {rid: uri and read_trajectory(store.home, uri, rid) for rid, uri in rows}


def test_a_merge_that_spills_and_takes_several_passes_keeps_every_row_once_and_sorted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, ctx, runs = _eval(tmp_path / "home", n_tasks=30, repeats=4)  # 360 runs
    _commit(store, ctx, runs[:120], batch=10)
    comp.compact_eval(store.root, store.journal, EVAL, final=False, policy=SMALL)
    _commit(store, ctx, runs[120:], batch=10)  # batch files too: unsorted inputs
    kinds = {b["n_rows"] for b in store.journal.iter_batches(EVAL)}
    assert kinds == {10, 60}  # sorted compacted files and batch files
    before, trajs = _rows(store), _trajectories(store)
    assert len(before) == 360 and 250 < sum(v is not None for v in trajs.values()) < 360
    spills = {"chunks": 0, "passes": 0}
    for name, key in (("write", "chunks"), ("merge", "passes")):
        orig = getattr(comp._Spill, name)

        def counted(self: Any, *a: Any, _orig: Any = orig, _key: str = key) -> Any:
            spills[_key] += 1
            return _orig(self, *a)
        monkeypatch.setattr(comp._Spill, name, counted)
    rep = comp.compact_eval(store.root, store.journal, EVAL, final=True, policy=SMALL)
    assert rep.files_after == 1 and spills["chunks"] >= 2 and spills["passes"] >= 1
    assert _rows(store) == before and _trajectories(store) == trajs
    (path,) = store.results_paths(EVAL)
    pf = pq.ParquetFile(store.home / path)
    assert [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)] \
        == [100, 100, 100, 60]
    assert comp._is_sorted(pf)
    keys = pf.read(columns=[*comp.SORT_KEYS, "run_id"]).to_pylist()
    assert keys == sorted(keys, key=lambda r: (*(r[k] for k in comp.SORT_KEYS), r["run_id"]))
    assert pf.schema_arrow.metadata[results_mod.SCHEMA_VERSION_KEY] \
        == str(results_mod.RESULTS_SCHEMA_VERSION).encode()


@contextmanager
def _arrow_and_python_peaks(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Peak bytes of Arrow buffers (allocated through the default pool or the one a merge
    uses), and of Python objects (tracemalloc), while the block runs."""
    pool = pa.proxy_memory_pool(pa.system_memory_pool())
    old = pa.default_memory_pool()
    out: dict[str, int] = {}
    pa.set_memory_pool(pool)
    monkeypatch.setattr(comp, "merge_memory_pool", lambda: pool)
    tracemalloc.start()
    try:
        yield out
    finally:
        out["python"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        pa.set_memory_pool(old)
        out["arrow"] = pool.max_memory()


def _final_merge_peaks(home: Path, scale: int,
                       monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, int], int]:
    """Peaks of the final merge of an eval of 1,200 x ``scale`` runs in 25 files, whatever
    the scale: 5 sorted compacted files holding half the rows, 20 batch files the other half;
    and the rows' own size as one Arrow table."""
    store, ctx, runs = _eval(home, n_tasks=40, repeats=10 * scale)
    half = len(runs) // 2
    _commit(store, ctx, runs[:half], batch=30 * scale)
    policy = comp.Policy(fan_in=4, live_max_rows=120 * scale, merge_rows=128, merge_fan_in=4,
                         row_group_rows=128, frame_bytes=4096)
    comp.compact_eval(store.root, store.journal, EVAL, final=False, policy=policy)
    _commit(store, ctx, runs[half:], batch=30 * scale)
    assert len(store.results_paths(EVAL)) == 25
    table_bytes = pa.concat_tables([
        results_mod.conform(pq.read_table(store.home / p))
        for p in store.results_paths(EVAL)]).nbytes
    with monkeypatch.context() as m, _arrow_and_python_peaks(m) as peaks:
        rep = comp.compact_eval(store.root, store.journal, EVAL, final=True, policy=policy)
    assert rep.files_after == 1 and rep.rows == len(runs)
    store.close()
    return peaks, table_bytes


def test_a_merge_holds_about_a_chunk_of_rows_whatever_the_size_of_its_group(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comp, "READ_BYTES", 4096)  # files are read 1 MiB at a time: here,
    # where a whole group's URIs are only a few hundred KB, that would hide them
    small, small_bytes = _final_merge_peaks(tmp_path / "small", 1, monkeypatch)  # 1,200 runs
    big, big_bytes = _final_merge_peaks(tmp_path / "big", 4, monkeypatch)  # 4,800, as many files
    assert big_bytes > 3.5 * small_bytes
    # loading the group whole would hold all its rows (and a sorted copy): Arrow's peak
    # would grow four-fold with it; a streaming merge holds chunks, runs and a row group
    assert big["arrow"] < 0.25 * big_bytes, (big, big_bytes)
    assert big["arrow"] < 1.5 * small["arrow"], (small, big)
    # no Python object per row of the group (a list of its URIs, a dict of its offsets)
    assert big["python"] < 0.25 * big_bytes, (big, big_bytes)
    assert big["python"] < 1.5 * small["python"], (small, big)


def _overwrite(store: Store, rel: str, table: pa.Table, *, sorted_file: bool) -> None:
    with open(store.home / rel, "wb") as fh:
        if sorted_file:
            comp.write_rows(fh, table, comp.DEFAULT_POLICY)  # says its rows are sorted
        else:
            pq.write_table(table, fh)


def test_a_run_in_two_batches_fails_the_merge_even_from_different_spilled_chunks(
        tmp_path: Path) -> None:
    store, ctx, runs = _eval(tmp_path / "home", n_tasks=30, repeats=4)
    _commit(store, ctx, runs, batch=10)
    first, *_, last = list(store.journal.iter_batches(EVAL))
    # the last batch file holds the first one's rows instead: those runs are there twice,
    # 350 rows apart (in different chunks of 64)
    _overwrite(store, last["results_path"], pq.read_table(store.home / first["results_path"]),
               sorted_file=False)
    paths = store.results_paths(EVAL)
    with pytest.raises(StoreError, match="appears in two committed batches"):
        comp.compact_eval(store.root, store.journal, EVAL, final=True, policy=SMALL)
    assert store.results_paths(EVAL) == paths  # nothing swapped


def _reversed(t: pa.Table) -> pa.Table:
    return t.sort_by([("run_id", "descending")])


def _rotated(t: pa.Table) -> pa.Table:
    """Sorted halves, the upper one first: every batch read is in order, the file is not."""
    t = t.sort_by([(k, "ascending") for k in comp.SORT_KEYS])
    return pa.concat_tables([t.slice(t.num_rows // 2), t.slice(0, t.num_rows // 2)])


@pytest.mark.parametrize("disorder", [_reversed, _rotated])
def test_an_input_not_in_the_order_its_metadata_claims_fails_the_merge(
        tmp_path: Path, disorder: Any) -> None:
    store, ctx, runs = _eval(tmp_path / "home", n_tasks=30, repeats=4)
    _commit(store, ctx, runs, batch=10)
    comp.compact_eval(store.root, store.journal, EVAL, final=False, policy=SMALL)
    batches = list(store.journal.iter_batches(EVAL))
    assert {b["n_rows"] for b in batches} == {60}  # compacted files, read as sorted runs
    for b in batches[:3]:  # ... whose rows are not in the order their metadata says
        t = results_mod.conform(pq.read_table(store.home / b["results_path"]))
        _overwrite(store, b["results_path"], disorder(t), sorted_file=True)
    paths = store.results_paths(EVAL)
    with pytest.raises(StoreError, match="not in the order"):
        comp.compact_eval(store.root, store.journal, EVAL, final=True, policy=SMALL)
    assert store.results_paths(EVAL) == paths


def test_trajectory_lines_split_across_decompressed_chunks_come_out_whole() -> None:
    lines = [f'{{"run_id": "r{i}", "text": "{"y" * (i % 23)}"}}'.encode() for i in range(200)]
    z = zstandard.ZstdCompressor()
    data = b"".join(z.compress(b"\n".join(lines[i:i + 30]) + b"\n")  # several frames
                    for i in range(0, 200, 30))
    for chunk in (1, 7, 64, 2**20):
        assert list(comp._iter_lines(io.BytesIO(data), chunk_bytes=chunk)) == lines
    no_final_newline = z.compress(b"\n".join(lines[:3]))
    assert list(comp._iter_lines(io.BytesIO(no_final_newline), chunk_bytes=5)) == lines[:3]
