"""Only the driver that holds an eval removes that eval's orphans, and only old ones."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from evalfleet import api
from evalfleet.errors import StoreError
from evalfleet.settings import Settings
from evalfleet.spec import AgentSpec, ScorerSpec, Suite, Task, load_plan
from evalfleet.spec.result import RunResult
from evalfleet.store import RowContext, Store
from evalfleet.store.results import ORPHAN_GRACE_S, TMP_GRACE_S

DRIVER = "here:1"


def _suite(n: int) -> Suite:
    return Suite(name="s", tasks=tuple(Task(id=f"t{i}", input="x", target="ok",
                                            scorer=ScorerSpec(kind="exact")) for i in range(n)))


def _eval(store: Store, eval_id: str, n: int = 4) -> RowContext:
    suite = _suite(n)
    store.journal.create_eval(eval_id=eval_id, plan_name="p", plan_json="{}", suite_name="s",
                              suite_hash=suite.suite_hash, planned=n,
                              rows=[(f"{eval_id}-r{i}", f"t{i}", 0, 0) for i in range(n)])
    agents = (AgentSpec(name="a", kind="python", args={"callable": "m:f"}),)
    return RowContext(eval_id, "p", suite, agents)


def _result(ctx: RowContext, i: int) -> RunResult:
    return RunResult(run_id=f"{ctx.eval_id}-r{i}", task_id=f"t{i}", agent_index=0, repeat=0,
                     status="completed", score=1.0, passed=True, trajectory={"events": []})


def _age(path: Path, seconds: float) -> Path:
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


def test_driver_removes_only_its_own_old_unreferenced_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store(home)
    mine, other = _eval(store, "mine"), _eval(store, "other")
    store.commit(mine, [_result(mine, 0)])
    store.commit(other, [_result(other, 0)])
    # batches written and never committed (a crash), of various ages
    old = store.writer.write(mine, [_result(mine, 1)])
    young = store.writer.write(mine, [_result(mine, 2)])
    others_old = store.writer.write(other, [_result(other, 1)])
    res_dir = home / "results" / "eval_id=mine"
    for rel in (old.results_path, old.trajectories_path, others_old.results_path):
        assert rel is not None
        _age(home / rel, 2 * ORPHAN_GRACE_S)
    writing = res_dir / "abc.parquet.tmp"  # a slow write, still going
    writing.write_bytes(b"x")
    _age(writing, 2 * ORPHAN_GRACE_S)
    crashed_write = res_dir / "def.parquet.tmp"
    crashed_write.write_bytes(b"x")
    _age(crashed_write, 2 * TMP_GRACE_S)
    stranger = res_dir / "notes.txt"
    stranger.write_text("mine")
    _age(stranger, 2 * TMP_GRACE_S)
    committed = store.journal.referenced_paths()

    with pytest.raises(StoreError, match="does not hold"):
        store.remove_orphans("mine", DRIVER)  # not claimed: not its to clean
    assert (home / old.results_path).exists()

    store.journal.claim_driver("mine", DRIVER, stale_after_s=60)
    removed = store.remove_orphans("mine", DRIVER)
    assert old.trajectories_path is not None
    assert removed == sorted([old.results_path, old.trajectories_path,
                              "results/eval_id=mine/def.parquet.tmp"])
    for rel in removed:
        assert not (home / rel).exists()
    for rel in (*committed, young.results_path, young.trajectories_path,
                others_old.results_path):
        assert rel is not None and (home / rel).exists(), rel
    assert writing.exists() and stranger.exists()
    store.close()


def test_failed_commit_removes_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    store = Store(home)
    ctx = _eval(store, "e")
    store.commit(ctx, [_result(ctx, 0)])
    kept = {p.relative_to(home).as_posix() for p in home.rglob("*.*") if p.is_file()}

    def conflict(**_: object) -> int:
        raise StoreError("another writer")

    monkeypatch.setattr(store.journal, "commit_batch", conflict)
    with pytest.raises(StoreError):
        store.commit(ctx, [_result(ctx, 1)])
    after = {p.relative_to(home).as_posix() for p in home.rglob("*.*") if p.is_file()}
    assert after == kept  # no orphan left behind for readers or the next driver to trip on
    store.close()


def test_commit_that_happened_after_all_keeps_its_files(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # the commit went through but the error came on the way back: deleting the files now
    # would leave committed runs without rows, for good
    home = tmp_path / "home"
    store = Store(home)
    ctx = _eval(store, "e")
    real = store.journal.commit_batch

    def lost_reply(**kwargs: object) -> int:
        real(**kwargs)  # type: ignore[arg-type]
        raise ConnectionError("reply lost")

    monkeypatch.setattr(store.journal, "commit_batch", lost_reply)
    with pytest.raises(ConnectionError):
        store.commit(ctx, [_result(ctx, 0)])
    paths = store.results_paths("e")
    assert len(paths) == 1 and pq.read_table(home / paths[0]).num_rows == 1
    store.close()


def test_resume_removes_a_crashed_drivers_old_orphans(make_plan: Callable[..., Path],
                                                      settings: Settings) -> None:
    plan = load_plan(make_plan(n_tasks=5))
    store = api.open_store(settings)
    try:
        eval_id = api.create_eval(store, plan, api.validate_plan(plan))
    finally:
        store.close()
    orphan_dir = settings.home / "results" / f"eval_id={eval_id}"
    orphan_dir.mkdir(parents=True)
    orphan = orphan_dir / "feedfeedfeedfeedfeed.parquet"
    orphan.write_bytes(b"PAR1 not committed")
    _age(orphan, 2 * ORPHAN_GRACE_S)
    summary = api.resume(eval_id, settings=settings)
    assert summary.status == "completed" and summary.done == 5
    assert not orphan.exists()
    _, rows = api.query("SELECT count(*) FROM runs", eval_id=eval_id, settings=settings)
    assert rows == [(5,)]
    # the driver let go of the eval: another may resume it at once
    store = api.open_store(settings)
    try:
        assert not store.journal.holds(eval_id, store.journal.get_eval(eval_id)["driver"])
    finally:
        store.close()
