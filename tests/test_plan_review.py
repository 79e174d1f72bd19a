"""`evalfleet plan review`: cost, wall time and power of a plan before it runs, from the home's
history of the same agent and tasks where there is any, from prices and estimates otherwise."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import cli_in_process
from evalfleet import api
from evalfleet.api import review as review_mod
from evalfleet.cli import main
from evalfleet.errors import UnknownEvalError
from evalfleet.settings import Settings

SIM = {"models": {"sim-large": {"skill": 0.8, "latency_s": 0.02}}, "seed": 3}
OPENAI = {"base_url": "{simulator}", "api_key_env": None, "tools": False}


def _write(path: Path, plan: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def _small_plan(**extra: Any) -> dict[str, Any]:
    """tests/test_budget.py's plan without a budget: sim-large, HumanEval limit 20, K = 2."""
    return {"name": "review", "suite": {"builtin": "humaneval", "limit": 20},
            "runs_per_task": 2,
            "agents": [{"name": "agent", "kind": "openai", "model": "sim-large",
                        "args": OPENAI}],
            "execution": {"max_in_flight": 4}, "simulator": SIM, **extra}


def _cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["evalfleet", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path, str, float]:
    """The small plan, run once: (settings, plan path, eval id, the report's total cost)."""
    tmp = tmp_path_factory.mktemp("review")
    settings = Settings(home=tmp / "home")
    plan = _write(tmp / "plan.yaml", _small_plan())
    summary = api.run(plan, settings=settings)
    rep = api.report(summary.eval_id, settings=settings)
    assert rep["cost"]["runs"] == 40
    return settings, plan, summary.eval_id, float(rep["cost"]["total_usd"])


def test_history_estimate_is_within_10_percent_of_the_real_cost(
        ran: tuple[Settings, Path, str, float]) -> None:
    settings, plan, _, real = ran
    r = api.review_plan(plan, settings=settings)
    (agent,) = r["agents"]
    assert agent["source"] == "history" and r["history"]
    assert agent["history"] == {"runs": 40, "tasks": 20, "tasks_matched": 20}
    assert "history" in agent["sources"]["model"]
    est = r["total"]["total_usd"]["min"]
    assert est == r["total"]["total_usd"]["max"]
    assert real > 0 and abs(est - real) <= 0.10 * real, (est, real)
    # a plan over more tasks: the new ones take the agent's mean over its history
    bigger = _write(plan.parent / "bigger.yaml",
                    _small_plan(suite={"builtin": "humaneval", "limit": 40}))
    r2 = api.review_plan(bigger, settings=settings)
    assert r2["agents"][0]["history"]["tasks_matched"] == 20
    assert "other" not in r["agents"][0]["sources"]["model"]
    assert "the others take the agent's mean" in r2["agents"][0]["sources"]["model"]
    assert r2["total"]["total_usd"]["min"] == pytest.approx(2 * est, rel=0.10)


def test_history_power_matches_plan_power(ran: tuple[Settings, Path, str, float]) -> None:
    """The review's MDE is plan power's (Miller Eq. 10, scipy quantiles) on the same history."""
    from evalfleet.analysis.power import estimate_inputs, plan_power
    from evalfleet.store import Store

    settings, plan, eval_id, _ = ran
    r = api.review_plan(plan, settings=settings)
    mine = r["agents"][0]["power"]
    assert mine["source"] == "history"
    store = Store.open_readonly(settings.home)
    try:
        paths = store.results_paths(eval_id)
    finally:
        store.close()
    theirs = plan_power(estimate_inputs(settings.home, paths, eval_id), n_tasks=20, ks=[2])
    assert mine["omega2"] == pytest.approx(theirs["inputs"]["omega2"], rel=1e-9, abs=1e-12)
    assert mine["sigma2_base"] == pytest.approx(theirs["inputs"]["sigma2_base"], rel=1e-9)
    a, b = mine["rows"][0], theirs["rows"][0]
    assert a["variance"] == pytest.approx(b["variance"], rel=1e-9, abs=1e-15)
    # the simulated runs are random (run ids hash the eval id): when every run of the history
    # passed, nothing varies and neither side gives an MDE; otherwise both give the same
    assert (a["mde"] is None) == (b["mde"] is None) == (b["variance"] == 0.0)
    if b["mde"] is not None:
        assert a["mde"] == pytest.approx(b["mde"], rel=1e-9)


def test_reuse_counts_the_runs_an_eval_would_take(ran: tuple[Settings, Path, str, float],
                                                  ) -> None:
    settings, plan, _, real = ran
    again = _write(plan.parent / "reuse.yaml", _small_plan(reuse=True))
    r = api.review_plan(again, settings=settings)
    assert r["reuse"]["runs"] == {"min": 40, "max": 40}
    assert r["reuse"]["saved_usd"]["min"] == pytest.approx(real, rel=1e-6)
    assert r["total"]["after_reuse_usd"]["min"] == pytest.approx(0.0, abs=0.10 * real)
    assert api.review_plan(plan, settings=settings)["reuse"] is None
    # once an eval has reused them, its rows (cost 0, reused_from set) are no run's cost
    api.run(again, settings=settings)
    after = api.review_plan(plan, settings=settings)
    assert after["agents"][0]["history"]["runs"] == 40
    assert after["total"]["total_usd"]["min"] == pytest.approx(real, rel=0.10)


def test_paired_power_matches_plan_power(tmp_path: Path) -> None:
    """Two agents of the plan, paired on the tasks both ran: plan power --base --new."""
    from evalfleet.analysis.power import estimate_inputs, plan_power
    from evalfleet.store import Store

    settings = Settings(home=tmp_path / "home")
    plan = _small_plan(suite={"builtin": "humaneval", "limit": 10},
                       simulator={"models": {"sim-large": {"skill": 0.8, "latency_s": 0.02},
                                             "sim-small": {"skill": 0.5, "latency_s": 0.02}},
                                  "seed": 5})
    plan["agents"] = [{"name": "agent", "version": "1", "kind": "openai", "model": "sim-small",
                       "args": OPENAI},
                      {"name": "agent", "version": "2", "kind": "openai", "model": "sim-large",
                       "args": OPENAI}]
    path = _write(tmp_path / "plan.yaml", plan)
    eval_id = api.run(path, settings=settings).eval_id
    (pair,) = api.review_plan(path, settings=settings)["power"]["pairs"]
    assert pair["source"] == "history" and pair["pair"] == "agent@2 vs agent@1"
    store = Store.open_readonly(settings.home)
    try:
        paths = store.results_paths(eval_id)
    finally:
        store.close()
    theirs = plan_power(estimate_inputs(settings.home, paths, eval_id, base="agent@1",
                                        new="agent@2"), n_tasks=10, ks=[2])
    assert pair["omega2"] == pytest.approx(theirs["inputs"]["omega2"], rel=1e-9, abs=1e-12)
    assert pair["sigma2_new"] == pytest.approx(theirs["inputs"]["sigma2_new"], rel=1e-9)
    assert pair["rows"][0]["mde"] == pytest.approx(theirs["rows"][0]["mde"], rel=1e-9)


def _priced_plan(**extra: Any) -> dict[str, Any]:
    return _small_plan(
        estimate={"tokens_in": 1000, "tokens_out": 200, "seconds": 30},
        costs={"infra_usd_per_hour": 0.36, "review_usd_per_run": 2.0, "review_fraction": 0.1},
        **extra)


def test_empty_home_uses_prices_and_matches_a_hand_computation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "absent"
    plan = _write(tmp_path / "plan.yaml", _priced_plan(
        rate_limits={"sim-large": {"requests_per_minute": 2}}))
    r = api.review_plan(plan, workers=4, settings=Settings(home=home))
    (agent,) = r["agents"]
    assert agent["source"] == "prices" and not r["history"]
    assert agent["sources"]["model"].startswith("price table (sim-large)")
    assert agent["sources"]["tokens_in"] == "plan.estimate.tokens_in"
    runs = 20 * 2
    model = (1000 * 2.50 + 200 * 10.00) / 1e6  # sim-large: $2.50 / $10 per million tokens
    infra = 30 * 0.36 / 3600
    review = 0.1 * 2.0
    assert agent["runs"] == {"min": runs, "max": runs}
    assert agent["unit"]["model_usd"] == pytest.approx(model)
    assert agent["cost"]["infra_usd"]["min"] == pytest.approx(runs * infra)
    assert agent["cost"]["review_usd"]["min"] == pytest.approx(runs * review)
    assert r["total"]["total_usd"]["min"] == pytest.approx(runs * (model + infra))
    assert r["total"]["with_review_usd"]["min"] == pytest.approx(runs * (model + infra + review))
    # 40 runs x 30 s over 4 workers is 300 s, but 40 requests at 2 a minute take 20 minutes
    wall = r["wall"]["min"]
    assert wall["bounds"]["workers"] == pytest.approx(runs * 30 / 4)
    assert wall["bound"] == "rate_limits.sim-large.requests_per_minute"
    assert wall["seconds"] == pytest.approx(60 * runs / 2)
    assert r["wall"]["workers"] == 4 and r["wall"]["workers_source"] == "--workers"
    power = agent["power"]
    assert power["source"] == "assumed"
    assert not home.exists()  # read-only: an absent home stays absent
    assert _cli(monkeypatch, "plan", "review", str(plan), "--home", str(home)) == 0
    assert not home.exists()


def test_assumed_power_matches_plan_power(tmp_path: Path) -> None:
    from evalfleet.analysis.power import assumed_inputs, plan_power

    plan = _write(tmp_path / "plan.yaml", _priced_plan())
    p = api.review_plan(plan, settings=Settings(home=tmp_path / "h"))["agents"][0]["power"]
    theirs = plan_power(assumed_inputs(p["omega2"], p["sigma2_base"]), n_tasks=20, ks=[2])
    assert p["rows"][0]["mde"] == pytest.approx(theirs["rows"][0]["mde"], rel=1e-9)


def test_adaptive_plan_gives_a_range_and_budgets_are_checked(tmp_path: Path) -> None:
    plan = _priced_plan(runs={"min": 1, "max": 3}, budget_usd=0.3)
    del plan["runs_per_task"]
    plan["agents"][0]["budget_usd"] = 0.2
    r = api.review_plan(_write(tmp_path / "plan.yaml", plan),
                        settings=Settings(home=tmp_path / "h"))
    assert r["adaptive"] and r["runs"] == {"min": 20, "max": 60}
    unit = r["agents"][0]["unit"]["total_usd"]
    assert r["total"]["total_usd"]["min"] == pytest.approx(20 * unit)
    assert r["total"]["total_usd"]["max"] == pytest.approx(60 * unit)
    assert any("adaptive" in n for n in r["notes"])
    # $0.15 at 1 run per task, $0.45 at 3 (review is never budgeted): $0.3 and $0.2 fit
    # only the minimum
    assert r["budget"]["fits"] is False and "minimum" in r["budget"]["note"]
    assert r["agents"][0]["budget"]["fits"] is False
    assert [row["k"] for row in r["agents"][0]["power"]["rows"]] == [1, 3]
    roomy = {**plan, "budget_usd": 100.0}
    r2 = api.review_plan(_write(tmp_path / "roomy.yaml", roomy),
                         settings=Settings(home=tmp_path / "h"))
    assert r2["budget"]["fits"] is True


def test_unpriced_model_is_unknown_not_zero(tmp_path: Path) -> None:
    plan = _priced_plan()
    plan["agents"] = [{"name": "x", "kind": "openai", "model": "no-such-model",
                       "args": OPENAI},
                      {"name": "free", "kind": "openai", "model": "no-such-model", "price": 0,
                       "args": OPENAI}]
    r = api.review_plan(_write(tmp_path / "plan.yaml", plan),
                        settings=Settings(home=tmp_path / "h"))
    unpriced, free = r["agents"]
    assert unpriced["unit"]["model_usd"] is None and unpriced["cost"]["total_usd"]["min"] is None
    assert "UNPRICED" in unpriced["sources"]["model"]
    assert free["unit"]["model_usd"] == 0.0
    assert r["total"]["total_usd"]["min"] is None and r["unpriced"] == ["x@0"]
    assert r["total"]["priced_usd"]["min"] == pytest.approx(2 * 40 * 30 * 0.36 / 3600)
    assert any("no price" in w for w in r["warnings"])


def test_heuristic_without_estimate(tmp_path: Path) -> None:
    """No plan.estimate: prompt chars / 4 plus the system prompt, one call (tools: false),
    output tokens from max_tokens."""
    from evalfleet.spec.loaders import load_suite_ref
    from evalfleet.spec.plan import SuiteRef

    plan = _small_plan()
    plan["agents"][0]["args"] = {**OPENAI, "max_tokens": 300, "system_prompt": "x" * 400}
    r = api.review_plan(_write(tmp_path / "plan.yaml", plan),
                        settings=Settings(home=tmp_path / "h"))
    unit = r["agents"][0]["unit"]
    tasks = load_suite_ref(SuiteRef(builtin="humaneval", limit=20)).tasks
    mean_in = sum(len(t.input) / 4 + 100 for t in tasks) / len(tasks)
    assert unit["tokens_in"] == pytest.approx(mean_in)
    assert unit["tokens_out"] == 300 and unit["model_calls"] == 1
    assert unit["seconds"] == pytest.approx(0.02)  # the simulator's latency x 1 call
    assert "heuristic" in r["agents"][0]["sources"]["tokens_in"]


def test_default_system_tokens_follow_the_adapter() -> None:
    from evalfleet.agents.openai_agent import DEFAULT_SYSTEM

    assert len(DEFAULT_SYSTEM) // 4 == review_mod.DEFAULT_SYSTEM_TOKENS


def test_json_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    plan = _write(tmp_path / "plan.yaml", _priced_plan(budget_usd=100.0))
    assert _cli(monkeypatch, "plan", "review", str(plan), "--home", str(tmp_path / "h"),
                "--json", "--workers", "8") == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"plan", "name", "home", "history", "suite", "adaptive",
                        "runs_per_task", "runs", "agents", "total", "unpriced", "wall",
                        "budget", "power", "reuse", "warnings", "notes"}
    (agent,) = doc["agents"]
    assert set(agent) == {"index", "label", "model", "fingerprint", "source", "history",
                          "price", "runs", "unit", "cost", "sources", "budget", "power"}
    assert set(agent["cost"]) == {"model_usd", "infra_usd", "review_usd", "total_usd",
                                  "with_review_usd"}
    assert set(agent["unit"]) >= {"model_usd", "infra_usd", "review_usd", "total_usd",
                                  "tokens_in", "tokens_out", "seconds"}
    assert set(agent["sources"]) >= {"model", "infra", "review", "tokens_in", "tokens_out",
                                     "seconds"}
    for figure in (*agent["cost"].values(), *doc["total"].values()):
        if figure is not None:
            assert set(figure) == {"min", "max"}
    assert doc["wall"]["workers"] == 8
    assert {"seconds", "bound", "bounds"} <= set(doc["wall"]["min"])
    assert doc["budget"]["fits"] is True
    row = agent["power"]["rows"][0]
    assert {"k", "mde", "variance", "upper_bound"} <= set(row) and math.isfinite(row["mde"])


def test_text_output_names_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    plan = _write(tmp_path / "plan.yaml", _priced_plan())
    assert _cli(monkeypatch, "plan", "review", str(plan), "--home", str(tmp_path / "h")) == 0
    out = capsys.readouterr().out
    assert "prices" in out and "plan.estimate.tokens_in" in out and "wall time" in out
    assert "minimum detectable effect" in out


@pytest.mark.parametrize("plan_text", [
    "name: x\nsuite: {builtin: humaneval}\nagents: []\n",
    "name: x\nsuite: {builtin: humaneval}\nbogus: 1\nagents: [{name: a, kind: python}]\n",
    "name: x\nsuite: {path: nowhere.jsonl}\nagents: [{name: a, kind: python}]\n",
])
def test_bad_plan_exits_2_with_one_line(plan_text: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(plan_text)
    home = tmp_path / "h"
    assert _cli(monkeypatch, "plan", "review", str(plan), "--home", str(home)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert not home.exists()


def test_workers_below_one_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    plan = _write(tmp_path / "plan.yaml", _priced_plan())
    assert _cli(monkeypatch, "plan", "review", str(plan), "--workers", "0") == 2
    assert "--workers" in capsys.readouterr().err


def test_a_review_from_history_imports_neither_sqlalchemy_nor_pyarrow_nor_scipy(
        ran: tuple[Settings, Path, str, float]) -> None:
    """`plan review` answers in well under a second as a whole process: it reads the SQLite
    journal with sqlite3 and the Parquet files with DuckDB, and never loads SQLAlchemy,
    pyarrow (and numpy with it), scipy or statsmodels, which together cost over a second of
    start-up."""
    settings, plan, _, _ = ran
    out, modules, err = cli_in_process(["plan", "review", str(plan), "--home",
                                        str(settings.home), "--json"])
    assert json.loads(out)["agents"][0]["source"] == "history", err[-2000:]
    loaded = {m.split(".")[0] for m in modules}
    assert "duckdb" in loaded  # it did read the history
    assert not loaded & {"sqlalchemy", "pyarrow", "numpy", "scipy", "statsmodels", "pandas"}, \
        loaded


def test_the_sqlite_snapshot_and_the_store_give_the_same_review(
        ran: tuple[Settings, Path, str, float], tmp_path: Path) -> None:
    """The SQLAlchemy-free reader of the default layout answers exactly as the store does
    (which a review uses for a journal URL or a warehouse elsewhere), with superseded
    batches in the journal: the driver compacted the eval as it ended."""
    settings, plan, eval_id, _ = ran
    import sqlite3

    from evalfleet.store.snapshot import JournalSnapshot

    con = sqlite3.connect(settings.home / "journal.db")
    try:
        (superseded,) = con.execute(
            "SELECT count(*) FROM batches WHERE superseded_by IS NOT NULL").fetchone()
    finally:
        con.close()
    assert superseded > 0

    via_store = settings.model_copy(
        update={"journal_url": f"sqlite:///{(settings.home / 'journal.db').absolute()}"})
    snap = JournalSnapshot(settings.home)
    try:
        store = api.open_reader(settings)
        try:
            assert snap.all_results_paths() == store.all_results_paths()
            assert snap.eval_plan(eval_id) == store.journal.get_eval(eval_id)["plan"]
        finally:
            store.close()
    finally:
        snap.close()
    a = api.review_plan(plan, settings=settings)
    b = api.review_plan(plan, settings=via_store)
    assert a["agents"][0]["source"] == "history"
    assert a == b
    with pytest.raises(UnknownEvalError):
        JournalSnapshot(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()
