"""The compact runs table (migration 0009_runs_compact) on SQLite and PostgreSQL.

An older journal (eval id and batch id in every run, a rowid table) is read as it is by readers
and migrated in place by the first writer: counts equal, leases kept only where a run is
leased, resume works on the migrated runs. Invariants of the compact layout: a run that is not
leased holds no lease data, and the runs not done are in a partial index that leasing uses.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, create_engine, event, func, inspect, select, text
from sqlalchemy.exc import StatementError

from evalfleet.store.journal import MIGRATIONS, CommitRow, Journal
from evalfleet.store.schema import (
    OPEN_STATUSES_SQL,
    RUN_STATUSES,
    decode_run_id,
    encode_run_id,
    eval_keys,
    metadata,
    migrations,
    runs,
    runs_v1,
)

from . import test_journal_contract as contract
from .test_journal_contract import Backend, _new

backend = contract.backend
"""The contract tests' fixture: each test runs on SQLite and on PostgreSQL."""

COMPACT = "0009_runs_compact"


def _old_journal(b: Backend) -> None:
    """A journal as the release before the compact runs table wrote it: every other table of
    this version, the old runs table, and every migration but the compact one recorded.

    Eval ``a`` (6 runs): 2 done (one with a stale lease left on it), 1 leased, 1 cancelled,
    2 pending. Eval ``b`` (2 runs): both done.
    """
    old = MetaData()
    for t in metadata.sorted_tables:
        if t.name not in ("runs", "eval_keys"):
            t.to_metadata(old)
    runs_v1.to_metadata(old)
    engine = create_engine(b.url or f"sqlite:///{b.home / 'journal.db'}")
    old.create_all(engine)
    now = time.time()
    with engine.begin() as conn:
        for i, eid in enumerate(("a", "b")):
            conn.execute(old.tables["evals"].insert().values(
                eval_id=eid, plan_name="p", plan_json="{}", suite_name="s", suite_hash="h",
                status="interrupted", planned=6 if eid == "a" else 2, created_at=now + i,
                duplicates_dropped=0))
        conn.execute(old.tables["batches"].insert().values(
            batch_id="b1", eval_id="a", results_path="r.parquet", n_rows=2, committed_at=now))
        row = {"agent_index": 0, "repeat": 0, "attempts": 0, "outcome": None, "passed": None,
               "cost_usd": None, "batch_id": None, "lease_owner": None, "lease_expires": None,
               "stratum": "c"}
        conn.execute(old.tables["runs"].insert(), [
            {**row, "run_id": "a0", "eval_id": "a", "seq": 0, "task_id": "t0",
             "status": "done", "attempts": 1, "outcome": "completed", "passed": 1,
             "cost_usd": 0.5, "batch_id": "b1"},
            {**row, "run_id": "a1", "eval_id": "a", "seq": 1, "task_id": "t1",
             "status": "done", "attempts": 2, "outcome": "failed", "passed": 0,
             "cost_usd": 0.25, "batch_id": "b1", "lease_owner": "gone:1",
             "lease_expires": now - 5},
            {**row, "run_id": "a2", "eval_id": "a", "seq": 2, "task_id": "t2",
             "status": "leased", "lease_owner": "crashed:2", "lease_expires": now + 600},
            {**row, "run_id": "a3", "eval_id": "a", "seq": 3, "task_id": "t3",
             "status": "cancelled", "outcome": "cancelled"},
            {**row, "run_id": "a4", "eval_id": "a", "seq": 4, "task_id": "t4",
             "status": "pending"},
            {**row, "run_id": "a5", "eval_id": "a", "seq": 5, "task_id": "t5",
             "status": "pending", "stratum": "d"},
            {**row, "run_id": "b0", "eval_id": "b", "seq": 0, "task_id": "t0",
             "status": "done", "attempts": 1, "outcome": "completed", "passed": 1,
             "cost_usd": 1.0, "batch_id": "b2"},
            {**row, "run_id": "b1", "eval_id": "b", "seq": 1, "task_id": "t1",
             "status": "done", "attempts": 1, "outcome": "completed", "passed": 1,
             "cost_usd": 1.0, "batch_id": "b2"},
        ])
        conn.execute(old.tables["migrations"].insert(), [
            {"name": m.name, "applied_at": now} for m in MIGRATIONS if m.name != COMPACT])
    engine.dispose()


def _reads(j: Journal) -> tuple[object, ...]:
    """Everything a reader asks the runs table, for both evals."""
    return tuple((j.counts(e), j.progress(e), j.strata(e), j.planned_tasks(e, 0),
                  j.cancelled_by_agent(e), j.lease_state(e)[:2]) for e in ("a", "b"))


def _lease_columns(j: Journal) -> dict[str, tuple[str, object, object]]:
    with j.engine.connect() as conn:
        return {r: (s, o, x) for r, s, o, x in conn.execute(select(
            runs.c.run_id, runs.c.status, runs.c.lease_owner, runs.c.lease_expires))}


def test_an_old_journal_is_read_as_it_is_then_migrated_in_place(backend: Backend) -> None:
    _old_journal(backend)
    reader = backend.open_readonly()
    try:
        assert not reader.compact
        before = _reads(reader)
        assert before[0][0] == {"done": 2, "leased": 1, "cancelled": 1, "pending": 2,
                                "outcome:completed": 1, "outcome:failed": 1,
                                "outcome:cancelled": 1}
        assert reader.match_runs("a2") == [("a2", "a")]
    finally:
        reader.close()

    j = backend.open()  # the writer migrates
    try:
        assert j.compact
        with j.engine.connect() as conn:
            assert set(conn.execute(select(migrations.c.name)).scalars()) == \
                {m.name for m in MIGRATIONS}
            assert "batch_id" not in {c["name"] for c in inspect(conn).get_columns("runs")}
            assert not inspect(conn).has_table("runs_v1")
            keys = dict(conn.execute(select(eval_keys.c.eval_id, eval_keys.c.eval_key)).all())
        assert sorted(keys) == ["a", "b"] and len(set(keys.values())) == 2
        assert _reads(j) == before  # the same answers from the migrated table
        assert j.match_runs("a2") == [("a2", "a")]
        leases = _lease_columns(j)
        assert leases["a1"] == ("done", None, None)  # the stale lease is gone
        assert leases["a2"][:2] == ("leased", "crashed:2")  # a live lease is kept
        assert j.migrate() == []  # once only

        # resume: the crashed lease returns to pending, each run not done runs exactly once
        assert j.reset_leases("a") == 1
        got = j.lease("a", "me", 10, 60)
        assert sorted(r.run_id for r in got) == ["a2", "a4", "a5"]
        assert j.lease("a", "me", 10, 60) == []
        j.commit_batch(eval_id="a", batch_id="b3", results_path="r3.parquet",
                       trajectories_path=None,
                       rows=[CommitRow(r.run_id, "completed", True, 0.1, 1) for r in got])
        assert j.counts("a")["done"] == 5 and j.counts("b") == before[1][0]
        j.add_runs("a", [("a6", "t6", 0, 1, "c")])  # a later round numbers after the others
        assert [r.run_id for r in j.lease("a", "me", 10, 60)] == ["a6"]
    finally:
        j.close()


def test_runs_not_leased_hold_no_lease_data(backend: Backend) -> None:
    j = backend.open()
    try:
        _new(j, 6)
        leased = j.lease("e", "w", 6, 60)
        j.commit_batch(eval_id="e", batch_id="b", results_path="b.parquet",
                       trajectories_path=None,
                       rows=[CommitRow(r.run_id, "completed", True, 0.1, 1)
                             for r in leased[:3]])
        j.release("e", "w", [leased[3].run_id])
        j.cancel_pending("e")
        cols = _lease_columns(j)
        assert sorted(s for s, _, _ in cols.values()) == ["cancelled", "done", "done", "done",
                                                          "leased", "leased"]
        for status, owner, expires in cols.values():
            assert (owner is None and expires is None) == (status != "leased")
    finally:
        j.close()


def test_runs_not_done_are_in_a_partial_index_that_leasing_uses(backend: Backend) -> None:
    j = backend.open()
    try:
        _new(j, 3)
        with j.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = "
                                        "'ix_runs_open'")).scalar_one()
                assert f"WHERE {OPEN_STATUSES_SQL}" in sql
                without_rowid = conn.execute(text("SELECT sql FROM sqlite_master WHERE "
                                                  "name = 'runs'")).scalar_one()
                assert "WITHOUT ROWID" in without_rowid
                # the query leasing runs reads the partial index, not the whole eval
                lease = (select(runs.c.seq).where(runs.c.eval_key == j.eval_key("e"))
                         .where(text(OPEN_STATUSES_SQL))
                         .order_by(runs.c.status, runs.c.seq).limit(5))
                compiled = lease.compile(conn, compile_kwargs={"literal_binds": True})
                plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {compiled}"))
                assert "ix_runs_open" in plan, plan
            else:
                sql = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = "
                                        "'ix_runs_open'")).scalar_one()
                assert "WHERE" in sql and "status" in sql and "0, 2" in sql
        # committed runs leave it: only the open runs are counted through it
        leased = j.lease("e", "w", 2, 60)
        j.commit_batch(eval_id="e", batch_id="b", results_path="b.parquet",
                       trajectories_path=None,
                       rows=[CommitRow(r.run_id, "completed", True, 0.1, 1) for r in leased])
        assert j.lease_state("e")[:2] == (1, 0)
        with j.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(runs)).scalar() == 3
    finally:
        j.close()


def test_the_journals_own_statements_on_open_runs_read_the_partial_index(
        tmp_path: Path) -> None:
    """The statements the journal itself runs to lease, release, reset and cancel runs read
    ``ix_runs_open`` (or the run-id index for runs named), never every run of the eval (a
    lease took 26 ms at 200,000 runs and grew with the eval): each statement is captured as
    executed and its plan asked of SQLite."""
    j = Journal.open(tmp_path)
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
        if not executemany and statement.lstrip().startswith("UPDATE runs"):
            seen.append((statement, parameters))

    try:
        _new(j, 50)
        event.listen(j.engine, "before_cursor_execute", capture)
        leased = j.lease("e", "w", 5, 60)
        j.release("e", "w", [leased[0].run_id])
        j.release("e", "w")
        j.lease("e", "w", 5, 60)
        j.reset_leases("e")
        j.cancel_pending("e")
        event.remove(j.engine, "before_cursor_execute", capture)
        assert len(seen) == 6, [s for s, _ in seen]
        with j.engine.connect() as conn:
            for statement, parameters in seen:
                plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {statement}", parameters))
                # by the open runs' index, or by run id for the runs named
                assert ("ix_runs_open" in plan or "ux_runs_run_id" in plan) \
                    and "PRIMARY KEY (eval_key=?)" not in plan and "SCAN runs" not in plan \
                    and "TEMP B-TREE" not in plan, (statement, plan)
    finally:
        j.close()


def test_a_new_journal_is_compact_and_records_the_migration(tmp_path: Path) -> None:
    j = Journal.open(tmp_path)
    try:
        assert j.compact
        with j.engine.connect() as conn:
            assert COMPACT in set(conn.execute(select(migrations.c.name)).scalars())
    finally:
        j.close()


def test_an_unknown_eval_has_no_runs_in_the_compact_table(backend: Backend) -> None:
    j = backend.open()
    try:
        _new(j, 2)
        assert j.counts("nope") == {} and j.strata("nope") == {}
        assert j.lease("nope", "w", 5, 60) == [] and j.cancel_pending("nope") == 0
        assert j.cancel_pending("e") == 2 and j.counts("e")["cancelled"] == 2
    finally:
        j.close()


def test_run_ids_are_stored_in_12_bytes_and_any_other_id_as_it_is() -> None:
    canonical = "0123456789abcdef01234567"
    assert len(encode_run_id(canonical)) == 12
    for rid in (canonical, "r0", "x" * 11, "y" * 12, "z" * 24, canonical.upper(), "é" * 6,
                "00" * 12 + "0", ""):
        stored = encode_run_id(rid)
        assert decode_run_id(stored) == rid
        assert (len(stored) == 12) == (rid == canonical)


def test_statuses_and_outcomes_are_codes_and_an_unknown_name_is_refused(
        backend: Backend) -> None:
    j = backend.open()
    try:
        _new(j, 1)
        with j.engine.connect() as conn:
            raw = conn.exec_driver_sql("SELECT status FROM runs").scalar()
        assert raw == RUN_STATUSES.index("pending")
        with pytest.raises(StatementError, match="is not one of"), j.engine.begin() as conn:
            conn.execute(runs.update().values(status="sleeping"))
        assert j.counts("e") == {"pending": 1}
    finally:
        j.close()


def test_creating_an_eval_streams_its_runs_in_chunks(tmp_path: Path) -> None:
    j = Journal.open(tmp_path)
    pulled = 0
    at_insert: list[int] = []

    def rows() -> Iterator[tuple[str, str, int, int, str]]:
        nonlocal pulled
        for i in range(12_000):
            pulled += 1
            yield f"{i:024x}", f"t{i}", 0, 0, "c"

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO runs"):
            at_insert.append(pulled)

    event.listen(j.engine, "before_cursor_execute", seen)
    try:
        j.create_eval(eval_id="e", plan_name="p", plan_json="{}", suite_name="s",
                      suite_hash="h", planned=12_000, rows=rows())
        # each chunk is inserted as soon as it is pulled: never the whole plan at once
        assert at_insert == [5_000, 10_000, 12_000]
        assert j.counts("e") == {"pending": 12_000}
    finally:
        j.close()
