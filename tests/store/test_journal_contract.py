"""The journal's contract, the same tests on SQLite and on a real PostgreSQL.

The PostgreSQL backend needs ``EVALFLEET_TEST_POSTGRES_URL`` (``.ci/postgres.sh start`` prints
it); each test gets a schema of its own there, dropped afterwards. Without the URL those cases
are skipped, unless ``EVALFLEET_REQUIRE_POSTGRES=1`` (CI sets it): then they fail, so CI cannot
skip PostgreSQL silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, func, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from evalfleet import api
from evalfleet.errors import SpecError, StoreError
from evalfleet.settings import Settings
from evalfleet.store import Journal
from evalfleet.store.journal import MIGRATIONS, CommitRow, NoJournalError
from evalfleet.store.schema import evals, migrations, runs

PG_URL = os.environ.get("EVALFLEET_TEST_POSTGRES_URL")
REQUIRE_PG = os.environ.get("EVALFLEET_REQUIRE_POSTGRES") == "1"


@dataclass(frozen=True)
class Backend:
    """Where a test's journal lives: a SQLite file in ``home`` or a PostgreSQL schema."""

    name: str
    home: Path
    url: str | None

    def open(self) -> Journal:
        return Journal.open(self.home, self.url)

    def open_readonly(self) -> Journal:
        return Journal.open_readonly(self.home, self.url)

    @property
    def settings(self) -> Settings:
        return Settings(home=self.home, journal_url=self.url)


def _postgres_schema(base_url: str) -> tuple[str, Callable[[], None]]:
    """A new empty schema; returns a URL whose sessions use it, and its cleanup."""
    schema = f"evalfleet_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return url.render_as_string(hide_password=False), drop


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    home = tmp_path / "home"
    home.mkdir()
    if request.param == "sqlite":
        yield Backend("sqlite", home, None)
        return
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("EVALFLEET_REQUIRE_POSTGRES=1 but EVALFLEET_TEST_POSTGRES_URL is unset "
                        "(start one with .ci/postgres.sh start)")
        pytest.skip("EVALFLEET_TEST_POSTGRES_URL is unset (.ci/postgres.sh start prints it)")
    url, drop = _postgres_schema(PG_URL)
    try:
        yield Backend("postgres", home, url)
    finally:
        drop()


def _rows(n: int, agents: int = 1, strata: int = 3) -> list[tuple[str, str, int, int, str]]:
    return [(f"r{a}-{i:06d}", f"t{i:06d}", a, 0, f"c{i % strata}")
            for a in range(agents) for i in range(n)]


def _new(journal: Journal, n: int, agents: int = 1, eval_id: str = "e") -> None:
    journal.create_eval(eval_id=eval_id, plan_name="p", plan_json='{"name": "p"}',
                        suite_name="s", suite_hash="h", planned=n * agents,
                        rows=_rows(n, agents))


def _commit(j: Journal, batch: str, ids: list[str], *, passed: bool = True,
            cost: float = 0.25) -> int:
    return j.commit_batch(eval_id="e", batch_id=batch, results_path=f"results/{batch}.parquet",
                          trajectories_path=None,
                          rows=[CommitRow(r, "completed", passed, cost, 1) for r in ids])


def _status_of(j: Journal) -> dict[str, str]:
    with j.engine.connect() as conn:
        return {r: s for r, s in conn.execute(select(runs.c.run_id, runs.c.status))}


def test_the_backend_is_the_one_named(backend: Backend) -> None:
    j = backend.open()
    try:
        assert j.engine.dialect.name == ("postgresql" if backend.name == "postgres" else "sqlite")
        assert (backend.home / "journal.db").exists() == (backend.name == "sqlite")
    finally:
        j.close()


def test_the_open_runs_index_is_partial_on_both_engines(backend: Backend) -> None:
    # leases and resume read the runs not done through it: without its WHERE term it would
    # hold every run of every eval
    j = backend.open()
    try:
        with j.engine.connect() as conn:
            if backend.name == "sqlite":
                ddl = conn.exec_driver_sql("SELECT sql FROM sqlite_master "
                                           "WHERE name = 'ix_runs_open'").scalar_one()
            else:
                ddl = conn.exec_driver_sql("SELECT indexdef FROM pg_indexes "
                                           "WHERE indexname = 'ix_runs_open'").scalar_one()
        # PostgreSQL shows the same term as status = ANY (ARRAY[0, 2])
        where = ddl.partition(" WHERE ")[2]
        assert where in ("status IN (0, 2)", "(status = ANY (ARRAY[0, 2]))"), ddl
    finally:
        j.close()


def test_a_sqlite_journal_does_not_load_the_postgresql_dialect(tmp_path: Path) -> None:
    code = f"""
import sys
from pathlib import Path
from evalfleet.store import Journal
Journal.open(Path({str(tmp_path)!r})).close()
print("sqlalchemy.dialects.postgresql" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_create_eval_with_many_runs(backend: Backend) -> None:
    n = 12_345  # more than two insert chunks
    j = backend.open()
    try:
        _new(j, n)
        assert j.counts("e") == {"pending": n}
        assert j.get_eval("e")["planned"] == n and j.get_eval("e")["plan"] == {"name": "p"}
        with j.engine.connect() as conn:
            seqs = conn.execute(select(func.min(runs.c.seq), func.max(runs.c.seq),
                                       func.count(runs.c.seq.distinct()))).one()
        assert tuple(seqs) == (0, n - 1, n)
        first = j.lease("e", "w", 3, 60)
        assert [r.run_id for r in first] == ["r0-000000", "r0-000001", "r0-000002"]
        assert j.strata("e")[(0, "c0")] == (4115, 0, 0, 0.0)
        assert j.find_evals("e") == ["e"] and j.find_evals("E") == [] and j.find_evals("x") == []
    finally:
        j.close()


def test_lease_is_atomic_across_engines(backend: Backend) -> None:
    n, threads_per_journal = 600, 3
    setup = backend.open()
    _new(setup, n)
    journals = [backend.open(), backend.open()]
    got: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2 * threads_per_journal)

    def worker(j: Journal, name: str) -> None:
        mine: list[str] = []
        try:
            barrier.wait()
            while batch := j.lease("e", name, 7, 600):
                mine.extend(r.run_id for r in batch)
        except BaseException as exc:  # a race surfacing as a database error fails the test
            errors.append(exc)
        got.append(mine)

    ts = [threading.Thread(target=worker, args=(j, f"w{k}-{i}"))
          for k, j in enumerate(journals) for i in range(threads_per_journal)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    try:
        assert not errors, errors
        leased = [r for mine in got for r in mine]
        assert len(leased) == len(set(leased)) == n
        with setup.engine.connect() as conn:
            attempts = conn.execute(select(func.max(runs.c.attempts))).scalar()
        assert attempts == 0  # a lease is not an attempt: attempts count those that ended
        assert setup.lease_state("e")[:2] == (0, n)
    finally:
        for j in (setup, *journals):
            j.close()


def test_renew_release_and_reset(backend: Backend) -> None:
    j = backend.open()
    try:
        _new(j, 10)
        mine = [r.run_id for r in j.lease("e", "a", 5, 60)]
        theirs = [r.run_id for r in j.lease("e", "b", 2, 60)]
        assert j.renew("e", "a", mine, 120) == 5
        assert j.renew("e", "b", mine, 120) == 0  # not b's
        assert j.renew("e", "a", [], 120) == 0
        j.release("e", "a", mine[:2])
        assert j.lease_state("e")[:2] == (5, 5)
        assert {r for r, s in _status_of(j).items() if s == "pending"} >= set(mine[:2])
        j.release("e", "a")
        assert j.lease_state("e")[:2] == (8, 2)
        assert j.renew("e", "a", mine, 120) == 0  # released leases are not renewed
        assert j.reset_leases("e") == 2
        assert j.lease_state("e") == (10, 0, None)
        assert all(s == "pending" for r, s in _status_of(j).items() if r in theirs)
    finally:
        j.close()


def test_an_expired_lease_goes_to_another_owner(backend: Backend) -> None:
    j = backend.open()
    try:
        _new(j, 4)
        held = j.lease("e", "alive", 2, 600)
        lapsed = j.lease("e", "dead", 2, -1)  # expired already
        assert not {r.run_id for r in held} & {r.run_id for r in lapsed}
        again = j.lease("e", "next", 10, 600)
        assert {r.run_id for r in again} == {r.run_id for r in lapsed}
        assert {r.attempts for r in again} == {1}  # the lapsed lease ran no attempt
        assert j.renew("e", "dead", [r.run_id for r in lapsed], 600) == 0
        assert j.lease("e", "other", 10, 600) == []  # the live leases stay
    finally:
        j.close()


def test_done_among_names_exactly_the_committed_runs(backend: Backend) -> None:
    """What a commit drops as already committed: the committed runs among those asked, in
    both id forms (canonical 24-hex ids stored in 12 bytes, and any other), over several
    500-id statements, never a pending or leased run nor an id the eval does not have."""
    j = backend.open()
    try:
        canonical = [f"{i:024x}" for i in range(700)]
        rows = [(r, f"t{i}", 0, 0, "c") for i, r in enumerate(canonical)]
        rows += [("other-id-" + str(i), f"u{i}", 0, 0, "c") for i in range(5)]
        j.create_eval(eval_id="e", plan_name="p", plan_json='{"name": "p"}', suite_name="s",
                      suite_hash="h", planned=len(rows), rows=rows)
        leased = [r.run_id for r in j.lease("e", "w", len(rows), 60)]
        committed = leased[::3]
        _commit(j, "b1", committed)
        asked = [*leased, "ffffffffffffffffffffffff", "not-a-run"]
        assert j.done_among(asked) == set(committed)
        assert j.done_among([]) == set()
    finally:
        j.close()


def test_commit_batch_is_exactly_once(backend: Backend) -> None:
    j = backend.open()
    try:
        _new(j, 4)
        ids = [r.run_id for r in j.lease("e", "w", 4, 60)]
        assert _commit(j, "b1", ids[:2]) == 2
        with pytest.raises(StoreError, match="already committed"):
            _commit(j, "b2", [ids[2], ids[1]])
        assert not j.has_batch("b2") and j.has_batch("b1")
        status = _status_of(j)
        assert status[ids[2]] == "leased" and status[ids[1]] == "done"
        assert j.counts("e")["done"] == 2
        assert j.referenced_paths("e") == {"results/b1.parquet"}
        assert _commit(j, "b3", ids[2:]) == 2
        assert [b["batch_id"] for b in j.iter_batches("e")] == ["b1", "b3"]
    finally:
        j.close()


def test_concurrent_commits_of_one_run_commit_it_once(backend: Backend) -> None:
    setup = backend.open()
    _new(setup, 40)
    journals = [backend.open(), backend.open()]
    outcomes: list[str] = []
    lock = threading.Lock()
    try:
        for i in range(20):
            rid = f"r0-{i:06d}"
            barrier = threading.Barrier(2)

            def commit(j: Journal, k: int, rid: str = rid, barrier: Any = barrier,
                       i: int = i) -> None:
                barrier.wait()
                try:
                    _commit(j, f"b{i}-{k}", [rid])
                    out = "won"
                except StoreError:
                    out = "refused"
                except Exception as exc:
                    out = f"error: {type(exc).__name__}: {exc}"
                with lock:
                    outcomes.append(out)

            ts = [threading.Thread(target=commit, args=(j, k)) for k, j in enumerate(journals)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        assert sorted(outcomes) == ["refused"] * 20 + ["won"] * 20, outcomes
        with setup.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(
                text("batches"))).scalar() == 20
        assert setup.counts("e")["done"] == 20
    finally:
        for j in (setup, *journals):
            j.close()


def test_cancel_and_uncancel(backend: Backend) -> None:
    j = backend.open()
    try:
        _new(j, 5, agents=2)
        leased = j.lease("e", "w", 1, 60)[0]
        assert leased.agent_index == 0
        assert j.cancel_pending("e", agent_index=1) == 5
        assert j.counts("e") == {"pending": 4, "leased": 1, "cancelled": 5,
                                 "outcome:cancelled": 5}
        assert j.cancelled_by_agent("e") == {1: 5}  # what a report reads
        assert {r.agent_index for r in j.lease("e", "w", 10, 60, skip_agents={1})} == {0}
        j.release("e", "w")
        assert j.cancel_pending("e") == 5  # agent 0's pending; the others are cancelled already
        assert j.counts("e")["cancelled"] == 10 and j.lease("e", "w", 10, 60) == []
        assert j.cancelled_by_agent("e") == {0: 5, 1: 5}
        assert j.uncancel("e") == 10
        assert j.counts("e") == {"pending": 10} and j.cancelled_by_agent("e") == {}
    finally:
        j.close()


def test_counts_progress_and_strata(backend: Backend) -> None:
    j = backend.open()
    try:
        _new(j, 6, agents=2)
        ids = [r.run_id for r in j.lease("e", "w", 12, 60)]
        zero = [r for r in ids if r.startswith("r0-")]
        _commit(j, "b1", zero[:3], passed=True, cost=0.5)
        _commit(j, "b2", zero[3:5], passed=False, cost=0.25)
        j.commit_batch(eval_id="e", batch_id="b3", results_path="results/b3.parquet",
                       trajectories_path="traj/b3.jsonl.zst",
                       rows=[CommitRow("r1-000000", "errored", None, 1.0, 2),
                             CommitRow("r1-000001", "completed", True, 0.0, 0)], duplicates=3)
        j.release("e", "w", ["r1-000005"])
        j.cancel_pending("e", agent_index=1)
        assert j.counts("e") == {"done": 7, "leased": 4, "cancelled": 1,
                                 "outcome:completed": 6, "outcome:errored": 1,
                                 "outcome:cancelled": 1}
        agents = j.progress("e")["agents"]
        assert agents[0] == {"planned": 6, "done": 5, "errored": 0, "running": 1,
                             "cancelled": 0, "passed": 3, "cost_usd": 2.0}
        assert agents[1] == {"planned": 6, "done": 2, "errored": 1, "running": 3,
                             "cancelled": 1, "passed": 1, "cost_usd": 1.0}
        strata = j.strata("e")
        assert strata[(0, "c0")] == (2, 2, 2, 0.75) and strata[(1, "c1")] == (2, 1, 0, 0.0)
        assert sum(v[0] for v in strata.values()) == 12
        assert j.get_eval("e")["duplicates_dropped"] == 3
        assert j.planned_tasks("e", 1) == {f"t{i:06d}" for i in range(6)}
        assert j.referenced_paths() == {"results/b1.parquet", "results/b2.parquet",
                                        "results/b3.parquet", "traj/b3.jsonl.zst"}
    finally:
        j.close()


def test_claim_driver_is_atomic(backend: Backend) -> None:
    setup = backend.open()
    _new(setup, 1)
    journals = [backend.open() for _ in range(3)]
    rounds = 15
    results: list[tuple[int, str, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(journals) + 1)

    def claimer(j: Journal, name: str) -> None:
        for rnd in range(rounds):
            barrier.wait()  # the test reset the claim
            try:
                j.claim_driver("e", name, stale_after_s=600)
                out = "won"
            except StoreError as exc:
                out = "refused" if "is being run by" in str(exc) else f"error: {exc}"
            except Exception as exc:
                out = f"error: {type(exc).__name__}: {exc}"
            with lock:
                results.append((rnd, name, out))
            barrier.wait()  # round over

    # other hosts' names: their liveness is the heartbeat alone
    ts = [threading.Thread(target=claimer, args=(j, f"host{k}.example:{k + 1}"))
          for k, j in enumerate(journals)]
    for t in ts:
        t.start()
    try:
        for _ in range(rounds):
            with setup.engine.begin() as conn:
                conn.execute(update(evals).values(driver=None, driver_heartbeat=None))
            barrier.wait()
            barrier.wait()
        for t in ts:
            t.join()
        for rnd in range(rounds):
            outs = sorted(o for r, _, o in results if r == rnd)
            assert outs == ["refused", "refused", "won"], (rnd, outs)
        holder = setup.get_eval("e")
        assert holder["status"] == "running" and setup.holds("e", holder["driver"])
    finally:
        for j in (setup, *journals):
            j.close()


def test_a_stale_driver_is_taken_over(backend: Backend) -> None:
    j = backend.open()
    try:
        _new(j, 1)
        j.claim_driver("e", "elsewhere.example:7", stale_after_s=60)
        with pytest.raises(StoreError, match=r"is being run by elsewhere\.example:7"):
            j.claim_driver("e", "here.example:8", stale_after_s=60)
        with j.engine.begin() as conn:
            conn.execute(update(evals).values(driver_heartbeat=time.time() - 3600))
        j.claim_driver("e", "here.example:8", stale_after_s=60)
        assert j.holds("e", "here.example:8") and not j.holds("e", "elsewhere.example:7")
        j.heartbeat_driver("e", "elsewhere.example:7")  # the old driver's beat changes nothing
        assert j.holds("e", "here.example:8")
        j.release_driver("e", "here.example:8")
        assert not j.holds("e", "here.example:8")
        j.claim_driver("e", "elsewhere.example:7", stale_after_s=60)  # released: free at once
        assert j.holds("e", "elsewhere.example:7")
    finally:
        j.close()


def test_named_migrations_apply_once(backend: Backend) -> None:
    j = backend.open()
    names = [m.name for m in MIGRATIONS]
    try:
        _new(j, 3)
        assert j.migrate() == []
        with j.engine.begin() as conn:
            assert sorted(conn.execute(select(migrations.c.name)).scalars()) == sorted(names)
            # make it a journal from before the first migration
            conn.execute(delete(migrations))
            conn.execute(text("ALTER TABLE runs DROP COLUMN stratum"))
    finally:
        j.close()
    old = backend.open_readonly()
    try:
        assert not old.has_stratum
        assert old.strata("e") == {(0, None): (3, 0, 0, 0.0)}
    finally:
        old.close()
    a, b = backend.open(), backend.open()  # each migrates on open
    try:
        with a.engine.connect() as conn:
            assert "stratum" in {c["name"] for c in inspect(conn).get_columns("runs")}
            assert sorted(conn.execute(select(migrations.c.name)).scalars()) == sorted(names)
        assert a.migrate() == [] and b.migrate() == []
        a.add_runs("e", [("r-new", "t9", 0, 0, "c9")])
        assert a.strata("e")[(0, "c9")] == (1, 0, 0, 0.0)
    finally:
        a.close()
        b.close()


def test_migrate_reports_what_it_applied(backend: Backend) -> None:
    j = backend.open()
    try:
        with j.engine.begin() as conn:
            conn.execute(delete(migrations))
            conn.execute(text("ALTER TABLE runs DROP COLUMN stratum"))
        assert j.migrate() == ["0001_runs_stratum"]
        assert j.migrate() == []
    finally:
        j.close()


def test_the_readonly_opener_cannot_write(backend: Backend) -> None:
    w = backend.open()
    _new(w, 3)
    w.close()
    r = backend.open_readonly()
    try:
        assert r.counts("e") == {"pending": 3}
        with pytest.raises(DBAPIError):
            r.set_status("e", "failed")
        with pytest.raises(DBAPIError):
            r.lease("e", "reader", 1, 60)
        with pytest.raises(DBAPIError), r.engine.begin() as conn:
            conn.execute(text("CREATE TABLE sneaky (x INTEGER)"))
        assert r.get_eval("e")["status"] == "created" and r.counts("e") == {"pending": 3}
        assert not inspect(r.engine).has_table("sneaky")
    finally:
        r.close()


def test_the_readonly_opener_never_creates_tables(backend: Backend) -> None:
    with pytest.raises(NoJournalError):
        backend.open_readonly()
    if backend.name == "sqlite":
        assert not (backend.home / "journal.db").exists()
    else:
        assert backend.url is not None
        engine = create_engine(backend.url)
        try:
            assert inspect(engine).get_table_names() == []
        finally:
            engine.dispose()


def test_add_runs_and_set_planned(backend: Backend) -> None:
    j = backend.open()
    try:
        _new(j, 3)
        extra = [("x0", "t0", 0, 1, "c0"), ("x1", "t1", 0, 1, "c1")]
        assert j.add_runs("e", extra) == 2
        assert j.add_runs("e", extra) == 0  # already there
        j.set_planned("e", 5)
        assert j.get_eval("e")["planned"] == 5
        order = [r.run_id for r in j.lease("e", "w", 10, 60)]
        assert order == ["r0-000000", "r0-000001", "r0-000002", "x0", "x1"]
    finally:
        j.close()


def test_a_postgres_url_without_its_driver_is_a_spec_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    with pytest.raises(SpecError, match="EVALFLEET_JOURNAL_URL"):
        Journal.open(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:1/none")
    code = ("import sys; sys.modules['psycopg'] = None; from evalfleet.cli import main; "
            "sys.argv = ['evalfleet', 'status']; main()")
    env = {**os.environ, "EVALFLEET_HOME": str(tmp_path),
           "EVALFLEET_JOURNAL_URL": "postgresql+psycopg://postgres@127.0.0.1:1/none"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "EVALFLEET_JOURNAL_URL" in lines[0], r.stderr


def test_an_eval_end_to_end(backend: Backend, make_plan: Callable[..., Path]) -> None:
    answers = {"t00000": "ok", "t00001": "ok", "t00002": "ok"}
    plan = make_plan(n_tasks=5, name="pg", reuse=True, agents=[
        {"name": "echo", "version": "1", "kind": "python",
         "args": {"callable": "evalfleet.testing.agents:echo_target",
                 "kwargs": {"answers": answers}}}])
    settings = backend.settings
    summary = api.run(plan, settings=settings)
    assert summary.status == "completed" and summary.done == summary.planned == 5
    assert (backend.home / "journal.db").exists() == (backend.name == "sqlite")
    rep = api.report(summary.eval_id, settings=settings)
    assert rep["coverage"]["planned"] == 5 and not rep["coverage"]["partial"]
    (agent,) = rep["agents"]
    assert agent["overall"]["mean"] == pytest.approx(0.6) and agent["overall"]["n_runs"] == 5
    st = api.status(settings=settings)
    assert [(e["eval_id"], e["done"]) for e in st["evals"]] == [(summary.eval_id, 5)]
    assert [a["done"] for a in api.status(summary.eval_id, settings=settings)["agents"]] == [5]
    # a second eval of the same plan reuses every run (committed without an attempt)
    again = api.run(plan, settings=settings)
    assert again.status == "completed" and again.done == 5
    (agent,) = api.report(again.eval_id, settings=settings)["agents"]
    assert agent["reuse"]["runs"] == 5 and agent["overall"]["mean"] == pytest.approx(0.6)
    assert {e["eval_id"] for e in api.status(settings=settings)["evals"]} == {
        summary.eval_id, again.eval_id}


def _make_old(backend: Backend) -> None:
    """A journal from before the first migration, holding eval ``e`` with 2 runs."""
    j = backend.open()
    try:
        _new(j, 2)
        with j.engine.begin() as conn:
            conn.execute(delete(migrations))
            conn.execute(text("ALTER TABLE runs DROP COLUMN stratum"))
    finally:
        j.close()


@pytest.mark.parametrize("journal", ["new", "old"])
def test_writers_opening_a_journal_at_once(backend: Backend, journal: str) -> None:
    if journal == "old":
        _make_old(backend)
    n = 4
    barrier = threading.Barrier(n)
    opened: list[Journal] = []
    errors: list[str] = []
    lock = threading.Lock()

    def opener() -> None:
        barrier.wait()
        try:
            j = backend.open()
        except Exception as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
            return
        with lock:
            opened.append(j)

    ts = [threading.Thread(target=opener) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    try:
        assert errors == [] and len(opened) == n
        if journal == "new":
            _new(opened[0], 2)
        assert opened[-1].counts("e") == {"pending": 2}
        assert all(j.has_stratum for j in opened)
        with opened[-1].engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(migrations)).scalar() == len(
                MIGRATIONS)
    finally:
        for j in opened:
            j.close()


@pytest.mark.parametrize("opener", [Journal.open, Journal.open_readonly],
                         ids=["writer", "reader"])
def test_an_unreachable_postgres_is_one_line_without_the_password(
        tmp_path: Path, opener: Callable[[Path, str], Journal]) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError) as info:
        opener(tmp_path, "postgresql+psycopg://evalfleet:s3cret@127.0.0.1:1/none")
    message = str(info.value)
    assert "\n" not in message and "s3cret" not in message and "127.0.0.1" in message


def test_infra_failures_and_quarantine(backend: Backend) -> None:
    j = backend.open()
    try:
        _new(j, 3, agents=2)  # each task has two runs, one per agent
        tasks = _task_of(j)
        leased = j.lease("e", "a", 2, 60)
        first = leased[0]
        j.record_failures("e", [(first.run_id, first.task_id, 1, "sandbox died"),
                                (first.run_id, first.task_id, 2, "x" * 1000)])
        assert j.infra_failures("e") == {first.task_id: 2}
        assert j.lease_state("e")[:2] == (4, 2)
        j.release("e", "a")
        again = {r.run_id: r.attempts for r in j.lease("e", "b", 6, 60)}
        assert again[first.run_id] == 3  # two ended attempts counted, the lease was not
        same_task = [r for r, t in tasks.items() if t == first.task_id and r != first.run_id]
        j.release("e", "b", same_task)
        # pending runs of the task end quarantined, and the leased ones named
        n = j.quarantine_task("e", first.task_id, 2, [first.run_id])
        assert len(same_task) == 1 and n == 2
        assert j.quarantine_task("e", first.task_id, 9) == 0  # recorded once, nothing left
        [q] = j.quarantined("e")
        assert q["task_id"] == first.task_id and q["failures"] == 2
        assert q["runs_quarantined"] == n
        assert [(e["attempt"], len(e["error"])) for e in q["errors"]] == [(1, 12), (2, 500)]
        status = _status_of(j)
        assert status[first.run_id] == "quarantined"
        ro = backend.open_readonly()
        try:
            assert ro.quarantined("e")[0]["task_id"] == first.task_id
            assert ro.infra_failures("e") == {first.task_id: 2}
        finally:
            ro.close()
    finally:
        j.close()


def _task_of(j: Journal) -> dict[str, str]:
    with j.engine.connect() as conn:
        return {r: t for r, t in conn.execute(select(runs.c.run_id, runs.c.task_id))}


def test_pool_demands(backend: Backend) -> None:
    j = backend.open()
    try:
        j.put_demand("farm", "a", 0, 1.0, 5)
        j.put_demand("farm", "a", 1, 2.0, 6)  # renewed: one row, the latest values
        j.put_demand("farm", "b", 0, 1.0, 2)
        j.put_demand("other", "a", 0, 1.0, 1)
        assert j.pool_demands("farm", 60) == [("a", 1, 2.0, 6), ("b", 0, 1.0, 2)]
        assert j.pool_demands("farm", -1) == []  # none renewed within the window
        j.drop_demand("farm", "a")
        assert [e for e, *_ in j.pool_demands("farm", 60)] == ["b"]
        assert [e for e, *_ in j.pool_demands("other", 60)] == ["a"]
    finally:
        j.close()
