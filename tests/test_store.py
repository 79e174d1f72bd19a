"""Journal leases and the exactly-once commit across journal and Parquet files."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from evalfleet.errors import StoreError
from evalfleet.spec import AgentSpec, ScorerSpec, Suite, Task
from evalfleet.spec.result import RunResult
from evalfleet.store import RowContext, Store


def _suite(n: int) -> Suite:
    return Suite(name="s", tasks=tuple(Task(id=f"t{i}", input="x", target="ok",
                                            scorer=ScorerSpec(kind="exact")) for i in range(n)))


def _setup(tmp_path: Path, n: int = 10) -> tuple[Store, RowContext]:
    store = Store(tmp_path / "home")
    suite = _suite(n)
    agents = (AgentSpec(name="a", kind="python", args={"callable": "m:f"}),)
    store.journal.create_eval(eval_id="e", plan_name="p", plan_json="{}", suite_name="s",
                              suite_hash=suite.suite_hash, planned=n,
                              rows=[(f"r{i}", f"t{i}", 0, 0) for i in range(n)])
    return store, RowContext("e", "p", suite, agents)


def _result(run_id: str, task_id: str) -> RunResult:
    return RunResult(run_id=run_id, task_id=task_id, agent_index=0, repeat=0, status="completed",
                     score=1.0, passed=True, trajectory={"events": []})


def test_lease_renew_expire_reclaim(tmp_path: Path) -> None:
    store, _ = _setup(tmp_path)
    j = store.journal
    a = j.lease("e", "A", 4, lease_s=0.2)
    assert [r.run_id for r in a] == ["r0", "r1", "r2", "r3"]
    assert all(r.attempts == 1 for r in a)
    b = j.lease("e", "B", 100, lease_s=60)
    assert [r.run_id for r in b] == [f"r{i}" for i in range(4, 10)]
    assert j.lease("e", "B", 100, lease_s=60) == []
    assert j.renew("e", "A", ["r0", "r1"], 0.2) == 2
    time.sleep(0.3)
    reclaimed = j.lease("e", "B", 100, lease_s=60)
    assert sorted(r.run_id for r in reclaimed) == ["r0", "r1", "r2", "r3"]
    assert all(r.attempts == 1 for r in reclaimed)  # an expired lease is not an attempt
    assert j.renew("e", "A", ["r0"], 0.2) == 0  # A lost its lease


def test_exactly_once_first_result_wins(tmp_path: Path) -> None:
    store, ctx = _setup(tmp_path)
    store.journal.lease("e", "A", 10, 60)
    rep = store.commit(ctx, [_result("r0", "t0"), _result("r1", "t1")])
    assert (rep.committed, rep.duplicates) == (2, 0)
    late = store.commit(ctx, [_result("r0", "t0"), _result("r2", "t2"), _result("r2", "t2")])
    assert (late.committed, late.duplicates) == (1, 2)
    rows = sum(pq.read_table(tmp_path / "home" / p).num_rows
               for p in store.results_paths("e"))
    assert rows == 3
    assert store.journal.get_eval("e")["duplicates_dropped"] == 2


def test_reopening_for_writing_keeps_uncommitted_files(tmp_path: Path) -> None:
    # a batch another driver wrote and is about to commit: opening the store must not sweep it
    store, ctx = _setup(tmp_path)
    store.commit(ctx, [_result("r0", "t0")])
    pending = store.writer.write(ctx, [_result("r1", "t1")])
    store.close()
    Store(tmp_path / "home").close()
    assert (tmp_path / "home" / pending.results_path).exists()


def test_second_writer_conflict_commits_nothing(tmp_path: Path) -> None:
    store, ctx = _setup(tmp_path)
    rows_before = store.journal.counts("e")
    from evalfleet.store.journal import CommitRow

    store.commit(ctx, [_result("r0", "t0")])
    with pytest.raises(StoreError):
        store.journal.commit_batch(eval_id="e", batch_id="x", results_path="x",
                                   trajectories_path=None,
                                   rows=[CommitRow("r0", "completed", True, 0.0, 1),
                                         CommitRow("r1", "completed", True, 0.0, 1)])
    counts = store.journal.counts("e")
    assert counts["done"] == 1 and rows_before.get("done", 0) == 0
    assert "x" not in {b["batch_id"] for b in store.journal.iter_batches("e")}
