"""Rollups hold exactly the committed rows: after a real eval, after a failed commit, with
duplicates dropped, with reused runs, on SQLite and PostgreSQL; the backfill of a journal from
before rollups gives what live maintenance gives."""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, delete, text
from sqlalchemy.engine import make_url

from evalfleet import api
from evalfleet.settings import Settings
from evalfleet.spec import AgentSpec, ScorerSpec, Suite, Task
from evalfleet.spec.result import RunResult
from evalfleet.store import RowContext, Store
from evalfleet.store import journal as journal_mod
from evalfleet.store.rollups import bucket_bounds, day_of, latency_bucket, latency_quantile
from evalfleet.store.schema import LATENCY_COLUMNS, ROLLUP_KEY, migrations, rollups

PG_URL = os.environ.get("EVALFLEET_TEST_POSTGRES_URL")
REQUIRE_PG = os.environ.get("EVALFLEET_REQUIRE_POSTGRES") == "1"


@dataclass(frozen=True)
class Backend:
    name: str
    home: Path
    url: str | None

    @property
    def settings(self) -> Settings:
        return Settings(home=self.home, journal_url=self.url)

    def store(self) -> Store:
        return Store(self.home, self.url)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A journal in SQLite or in a schema of its own on the test PostgreSQL (as in
    test_journal_contract.py: skipped without EVALFLEET_TEST_POSTGRES_URL unless required)."""
    home = tmp_path / "home"
    if request.param == "sqlite":
        yield Backend("sqlite", home, None)
        return
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("EVALFLEET_REQUIRE_POSTGRES=1 but EVALFLEET_TEST_POSTGRES_URL is unset")
        pytest.skip("EVALFLEET_TEST_POSTGRES_URL is unset (.ci/postgres.sh start prints it)")
    schema = f"evalfleet_r_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield Backend("postgres", home, url.render_as_string(hide_password=False))
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# the oracle: the rollups' rules written out again over the Parquet rows -----------------------
def _expected(home: Path, paths: list[str]) -> dict[tuple[Any, ...], dict[str, float]]:
    out: dict[tuple[Any, ...], dict[str, float]] = {}
    for rel in paths:
        for r in pq.read_table(home / rel).to_pylist():
            fin = r["finished_at"]
            day = fin.astimezone(UTC).strftime("%Y-%m-%d") if fin else "1970-01-01"
            key = (r["eval_id"], r["agent_name"], r["agent_version"], r["category"] or "",
                   int(r["difficulty"] or 0), day)
            agg = out.setdefault(key, {})
            s = r["score"]
            scored = (r["status"] in ("completed", "failed") and s is not None
                      and math.isfinite(s) and 0 <= s <= 1)
            cost = r["cost_usd"] + r["infra_cost_usd"]

            def add(name: str, v: float, agg: dict[str, float] = agg) -> None:
                agg[name] = agg.get(name, 0) + v

            add("runs", 1)
            add("reused", r["reused_from"] is not None)
            add("errored", r["status"] == "errored")
            add("model_cost_usd", r["cost_usd"])
            add("infra_cost_usd", r["infra_cost_usd"])
            add("cost_sumsq", cost * cost)
            for t in ("tokens_in", "tokens_cached", "tokens_out"):
                add(t, r[t])
            if scored:
                add("scored", 1)
                add("passed", r["passed"] if r["passed"] is not None else s >= 1)
                add("score_sum", s)
                add("score_sumsq", s * s)
                add("latency_sum", r["latency_s"])
                lat = r["latency_s"]
                b = 0 if lat < 0.01 else min(57, math.floor(math.log10(lat / 0.01) * 8) + 1)
                add(LATENCY_COLUMNS[b], 1)
    return out


def _actual(store: Store) -> dict[tuple[Any, ...], dict[str, float]]:
    out = {}
    for r in store.journal.rollup_rows():
        out[tuple(r[k] for k in ROLLUP_KEY)] = {k: v for k, v in r.items()
                                               if k not in ROLLUP_KEY and v}
    return out


def _assert_same(actual: dict[tuple[Any, ...], dict[str, float]],
                 expected: dict[tuple[Any, ...], dict[str, float]]) -> None:
    assert set(actual) == set(expected)
    for key, exp in expected.items():
        exp = {k: v for k, v in exp.items() if v}
        assert set(actual[key]) == set(exp), key
        for name, v in exp.items():
            assert actual[key][name] == pytest.approx(v, rel=1e-12, abs=1e-15), (key, name)


def _all_paths(store: Store) -> list[str]:
    return store.all_results_paths()


# a real eval ----------------------------------------------------------------------------------
def test_rollups_equal_the_rows_of_a_real_eval(backend: Backend, tmp_path: Path,
                                               make_plan: Callable[..., Path]) -> None:
    marker = tmp_path / "markers"
    marker.mkdir()
    plan = make_plan(n_tasks=12, name="roll", runs_per_task=3, reuse=True, agents=[
        {"name": "rate", "version": "1", "kind": "python",
         "args": {"callable": "evalfleet.testing.agents:task_rate",
                  "kwargs": {"marker_dir": str(marker)}}},
        {"name": "echo", "version": "2", "kind": "python",
         "args": {"callable": "evalfleet.testing.agents:echo_target",
                  "kwargs": {"answers": {"t00000": "ok", "t00001": "ok"}}}}])
    first = api.run(plan, settings=backend.settings)
    assert first.status == "completed" and first.done == 72
    store = backend.store()
    try:
        rows = _actual(store)
        _assert_same(rows, _expected(store.home, _all_paths(store)))
        assert sum(r["runs"] for r in rows.values()) == 72
        assert sum(r.get("passed", 0) for r in rows.values()) > 0
        # every category and difficulty of the suite has its own row
        assert {k[3] for k in rows} == {"c0", "c1", "c2"} and {k[4] for k in rows} == set(
            range(1, 6))
    finally:
        store.close()
    # the same plan again reuses every run: counted with the source's outcome, costing 0
    again = api.run(plan, settings=backend.settings)
    assert again.done == 72
    store = backend.store()
    try:
        rows = _actual(store)
        _assert_same(rows, _expected(store.home, _all_paths(store)))
        mine = [r for k, r in rows.items() if k[0] == again.eval_id]
        assert sum(r["reused"] for r in mine) == 72
        assert sum(r.get("model_cost_usd", 0) + r.get("infra_cost_usd", 0) for r in mine) == 0
        before = [r for k, r in rows.items() if k[0] == first.eval_id]
        assert sum(r.get("passed", 0) for r in mine) == sum(r.get("passed", 0) for r in before)
    finally:
        store.close()
    # `evalfleet query` sees them as tables rollups and evals beside the view runs
    _, got = api.query("SELECT eval_id, sum(runs), sum(passed), sum(excluded), "
                       "sum(list_sum(latency_buckets)), sum(scored) FROM rollups "
                       "GROUP BY eval_id ORDER BY eval_id", settings=backend.settings)
    _, want = api.query("SELECT eval_id, count(*), sum(CASE WHEN passed THEN 1 ELSE 0 END), "
                        "sum(CASE WHEN score IS NULL THEN 1 ELSE 0 END), count(score), "
                        "count(score) FROM runs GROUP BY eval_id ORDER BY eval_id",
                        settings=backend.settings)
    assert got == want and len(got) == 2
    _, ev = api.query("SELECT eval_id, status, planned FROM evals ORDER BY created_at",
                      settings=backend.settings)
    assert ev == [(first.eval_id, "completed", 72), (again.eval_id, "completed", 72)]


# synthetic commits: failure, duplicates, days ---------------------------------------------------
def _suite(n: int) -> Suite:
    return Suite(name="s", tasks=tuple(
        Task(id=f"t{i}", input="x", target="ok", category=f"c{i % 2}", difficulty=1 + i % 3,
             scorer=ScorerSpec(kind="exact")) for i in range(n)))


def _setup(backend: Backend, n: int) -> tuple[Store, RowContext]:
    store = backend.store()
    suite = _suite(n)
    agents = (AgentSpec(name="a", version="7", kind="python", args={"callable": "m:f"}),)
    store.journal.create_eval(eval_id="e", plan_name="p", plan_json="{}", suite_name="s",
                              suite_hash=suite.suite_hash, planned=n,
                              rows=[(f"r{i}", f"t{i}", 0, 0) for i in range(n)])
    return store, RowContext("e", "p", suite, agents)


def _result(i: int, day: int = 1) -> RunResult:
    fin = datetime(2026, 11, day, 12, tzinfo=UTC).timestamp() + i
    score = (i % 4) / 3
    return RunResult(run_id=f"r{i}", task_id=f"t{i}", agent_index=0, repeat=0,
                     status="errored" if i % 7 == 6 else "completed",
                     score=None if i % 7 == 6 else score,
                     passed=None if i % 7 == 6 else score >= 1, cost_usd=0.01 * i,
                     infra_cost_usd=0.001, latency_s=0.05 * (i + 1), tokens_in=100 + i,
                     tokens_out=10, finished_at=fin, trajectory={"events": []})


def test_a_failed_commit_adds_nothing_and_duplicates_add_nothing(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    store, ctx = _setup(backend, 20)
    try:
        real = journal_mod._add_rollups

        def crash(conn: Any, rows: Any) -> None:
            real(conn, rows)  # the rollups are written, then the commit fails before its end
            raise OSError("disk gone mid-commit")

        monkeypatch.setattr(journal_mod, "_add_rollups", crash)
        with pytest.raises(OSError):
            store.commit(ctx, [_result(i) for i in range(10)])
        monkeypatch.setattr(journal_mod, "_add_rollups", real)
        assert store.journal.rollup_rows() == [] and store.results_paths("e") == []
        # the same results committed for real, on two days, then again as late duplicates
        rep = store.commit(ctx, [_result(i, day=1 + i % 2) for i in range(10)])
        assert rep.committed == 10
        once = _actual(store)
        late = store.commit(ctx, [_result(i) for i in range(5)] + [_result(10), _result(10)])
        assert (late.committed, late.duplicates) == (1, 6)
        _assert_same(_actual(store), _expected(store.home, store.results_paths("e")))
        assert sum(r["runs"] for r in _actual(store).values()) == 11
        assert {k[5] for k in once} == {"2026-11-01", "2026-11-02"}
    finally:
        store.close()


def test_backfill_equals_live_maintenance(backend: Backend,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store, ctx = _setup(backend, 30)
    try:
        for lo in range(0, 30, 7):  # several batches over three days
            store.commit(ctx, [_result(i, day=1 + i % 3) for i in range(lo, min(lo + 7, 30))])
        live = _actual(store)
        # make it a journal from before rollups: no rollups, 0004_rollups never recorded
        with store.journal.engine.begin() as conn:
            conn.execute(delete(rollups))
            conn.execute(delete(migrations).where(migrations.c.name == "0004_rollups"))
    finally:
        store.close()
    # a reader of that journal sees no rollups and writes nothing
    reader = Store.open_readonly(backend.home, backend.url)
    try:
        assert reader.journal.rollup_rows() == [] and reader.journal.rollup_backfill_pending() == []
    finally:
        reader.close()
    # the backfill crashes after its second batch: what it did stays, the rest waits
    real = journal_mod.Journal.add_backfill
    calls = {"n": 0}

    def flaky(self: journal_mod.Journal, batch_id: str, rows: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("killed mid-backfill")
        return real(self, batch_id, rows)

    monkeypatch.setattr(journal_mod.Journal, "add_backfill", flaky)
    with pytest.raises(OSError):
        backend.store()
    monkeypatch.setattr(journal_mod.Journal, "add_backfill", real)
    w = backend.store()  # the next writer finishes it
    try:
        assert w.journal.rollup_backfill_pending() == []
        _assert_same(_actual(w), live)
    finally:
        w.close()
    again = backend.store()  # and nothing is counted twice by later writers
    try:
        _assert_same(_actual(again), live)
    finally:
        again.close()


# the latency sketch ---------------------------------------------------------------------------
def test_latency_buckets_and_quantiles() -> None:
    assert latency_bucket(0.0) == 0 and latency_bucket(0.0099) == 0
    assert latency_bucket(float("nan")) == 0 and latency_bucket(1e9) == len(LATENCY_COLUMNS) - 1
    for x in (0.01, 0.0133, 0.5, 1.0, 7.3, 300.0, 9.9e4):
        lo, hi = bucket_bounds(latency_bucket(x))
        assert lo <= x * (1 + 1e-12) and x < hi * (1 + 1e-12)
    # quantiles read from the buckets are within a factor sqrt(r) of the exact order statistic
    import numpy as np

    rng = np.random.default_rng(7)
    xs = rng.lognormal(mean=1.0, sigma=1.2, size=5000)
    counts = [0] * len(LATENCY_COLUMNS)
    for x in xs:
        counts[latency_bucket(float(x))] += 1
    for q in (0.5, 0.9, 0.99):
        exact = float(np.sort(xs)[math.ceil(q * len(xs)) - 1])
        assert abs(latency_quantile(counts, q) / exact - 1) <= 10 ** (1 / 16) - 1 + 1e-9
    assert math.isnan(latency_quantile([0] * len(LATENCY_COLUMNS), 0.5))


def test_the_day_of_a_finish_time_is_the_results_writers_day() -> None:
    # day_of remembers the day of each second; it must still say what the writer's conversion
    # (microseconds, rounded) says, a microsecond either side of midnight included
    import random

    rng = random.Random(20261202)
    midnight = 1_764_633_600.0  # 2025-12-02T00:00:00Z
    times = [midnight + d for d in (-1e-7, -4e-7, -5e-7, -6e-7, -1e-6, -2e-6, 0.0, 1e-7,
                                   -0.0000004999, 86_400 - 4e-7, 86_400 - 6e-7)]
    times += [rng.uniform(1.0, 2e9) for _ in range(2000)]
    times += [math.floor(t) + rng.choice([0.9999994, 0.9999995, 0.9999996, 0.999999])
              for t in times[:500]]
    for t in times:
        assert day_of(t) == datetime.fromtimestamp(t, UTC).date().isoformat(), repr(t)
