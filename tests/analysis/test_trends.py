"""`trends` on synthetic histories written through the store's own commit: a planted 3-point
drop is flagged by the CUSUM and by the paired check against a reference eval, a flat history
stays quiet, alerts are stored with their evidence only by a writer (``--record``)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from evalfleet import api
from evalfleet.errors import SpecError
from evalfleet.settings import Settings
from evalfleet.spec import AgentSpec, ScorerSpec, Suite, Task
from evalfleet.spec.result import RunResult
from evalfleet.store import RowContext, Store

N_TASKS = 400
RUNS = 8  # per task per day
REF_RUNS = 20
DAYS = 21
DROP_AT = 12  # days 12..20 are 3 points worse
START = date(2026, 11, 1)


def _suite() -> Suite:
    return Suite(name="s", tasks=tuple(
        Task(id=f"t{i:03d}", input="x", target="ok", category=f"c{i % 4}",
             difficulty=1 + i % 5, scorer=ScorerSpec(kind="exact")) for i in range(N_TASKS)))


def _eval(store: Store, suite: Suite, eval_id: str, day: date, p: np.ndarray, runs: int,
          rng: np.random.Generator) -> None:
    agents = (AgentSpec(name="coder", version="1", kind="python", args={"callable": "m:f"}),)
    ids = [(f"{eval_id}-{i}-{k}", suite.tasks[i].id, 0, k)
           for i in range(N_TASKS) for k in range(runs)]
    store.journal.create_eval(eval_id=eval_id, plan_name="p",
                              plan_json=json.dumps({"agents": [{"name": "coder"}]}),
                              suite_name="s", suite_hash=suite.suite_hash, planned=len(ids),
                              rows=ids)
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()
    passed = rng.random((N_TASKS, runs)) < p[:, None]
    results = [RunResult(run_id=rid, task_id=tid, agent_index=0, repeat=k, status="completed",
                         score=float(passed[int(rid.split("-")[1]), k]),
                         passed=bool(passed[int(rid.split("-")[1]), k]), cost_usd=0.01,
                         latency_s=2.0, finished_at=noon + j % 3600)
               for j, (rid, tid, _, k) in enumerate(ids)]
    store.commit(RowContext(eval_id, "p", suite, agents), results)


def _history(home: Path, drop: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    suite = _suite()
    p = rng.uniform(0.1, 0.9, N_TASKS)  # each task's pass chance, fixed over time
    store = Store(home)
    try:
        _eval(store, suite, "ref", START, p, REF_RUNS, rng)
        for d in range(DAYS):
            shift = drop if d >= DROP_AT else 0.0
            _eval(store, suite, f"d{d:02d}", START + timedelta(days=d), p - shift, RUNS, rng)
    finally:
        store.close()


LAST = START + timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def dropped(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("drop") / "home"
    _history(home, 0.03, seed=11)
    return Settings(home=home)


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("flat") / "home"
    _history(home, 0.0, seed=12)
    return Settings(home=home)


@pytest.mark.slow
def test_a_planted_three_point_drop_is_flagged(dropped: Settings) -> None:
    out = api.trends(days=DAYS, reference="ref", settings=dropped, today=LAST)
    (s,) = out["series"]
    assert s["label"] == "coder@1" and len(s["points"]) == DAYS
    # the bands hold the truth's level: the day's rate within its Wilson interval
    assert all(p["low"] <= p["value"] <= p["high"] for p in s["points"])
    kinds = {a["kind"] for a in out["alerts"]}
    assert kinds == {"cusum", "paired"}
    first_cusum = min(a["day"] for a in out["alerts"] if a["kind"] == "cusum")
    assert first_cusum >= (START + timedelta(days=DROP_AT)).isoformat()
    paired_days = {a["day"] for a in out["alerts"] if a["kind"] == "paired"}
    drop_days = {(START + timedelta(days=d)).isoformat() for d in range(DROP_AT, DAYS)}
    assert paired_days and paired_days <= drop_days  # only after the drop
    a = next(a for a in out["alerts"] if a["kind"] == "paired")
    assert a["evidence"]["estimate"] < -0.01 and a["evidence"]["p_adjusted"] <= 0.05
    assert a["evidence"]["reference"] == "ref" and a["evidence"]["tasks"] == N_TASKS


@pytest.mark.slow
def test_a_flat_history_stays_quiet(flat: Settings) -> None:
    for metric in ("pass_rate", "score", "cost_per_run", "latency_p50"):
        out = api.trends(metric=metric, days=DAYS, reference="ref", settings=flat, today=LAST)
        assert out["alerts"] == [], (metric, out["alerts"])
        assert out["series"][0]["cusum"]["ran"]
    out = api.trends(days=DAYS, reference="ref", settings=flat, today=LAST)
    assert len(out["series"][0]["paired"]["days"]) == DAYS  # every day was checked


@pytest.mark.slow
def test_alerts_are_stored_only_by_a_writer(dropped: Settings) -> None:
    before = _files(dropped.home)
    out = api.trends(days=DAYS, reference="ref", settings=dropped, today=LAST)
    assert out["recorded"] is None and out["stored_alerts"] == [] and out["alerts"]
    assert _files(dropped.home) == before  # a reader wrote nothing
    rec = api.trends(days=DAYS, reference="ref", settings=dropped, today=LAST, record=True)
    assert rec["recorded"] == len(out["alerts"])
    again = api.trends(days=DAYS, reference="ref", settings=dropped, today=LAST, record=True)
    assert again["recorded"] == 0  # the same alerts are not stored twice
    stored = again["stored_alerts"]
    assert len(stored) == len(out["alerts"])
    cusum = next(a for a in stored if a["kind"] == "cusum")
    assert cusum["statistic"] > cusum["threshold"] == 5.0
    assert cusum["evidence"]["s"][-1] == cusum["statistic"] and cusum["evidence"]["k"] == 0.5
    # a stored reference is used without --reference
    assert api.set_reference("ref", settings=dropped) == {"eval_id": "ref", "agents": ["coder"]}
    by_stored = api.trends(days=DAYS, settings=dropped, today=LAST)
    assert {a["day"] for a in by_stored["alerts"] if a["kind"] == "paired"} == {
        a["day"] for a in out["alerts"] if a["kind"] == "paired"}


@pytest.mark.slow
def test_the_cli_prints_a_table_and_json(dropped: Settings) -> None:
    base = [sys.executable, "-m", "evalfleet", "trends", "--home", str(dropped.home),
            "--days", "400", "--reference", "ref"]
    r = subprocess.run([*base, "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert {a["kind"] for a in json.loads(r.stdout)["alerts"]} == {"cusum", "paired"}
    r = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "coder@1" in r.stdout and "C" in r.stdout and "P" in r.stdout
    bad = subprocess.run([*base, "--metric", "vibes"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_bad_input_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="unknown metric"):
        api.trends(metric="vibes", settings=Settings(home=tmp_path))
    with pytest.raises(SpecError, match="--days"):
        api.trends(days=0, settings=Settings(home=tmp_path))


def _files(home: Path) -> dict[str, bytes]:
    return {f.relative_to(home).as_posix(): f.read_bytes() for f in sorted(home.rglob("*"))
            if f.is_file() and not f.name.endswith(("-shm", "-wal"))}
