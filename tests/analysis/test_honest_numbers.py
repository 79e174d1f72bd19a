"""Numbers that don't overclaim: intervals, coverage, excluded and failing runs, the test compare
picks, NaN scores, configuration errors and the progress counters, through real evals."""

from __future__ import annotations

import io
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from evalfleet import api, stats
from evalfleet.analysis.export import compare_markdown, report_html, report_markdown
from evalfleet.analysis.report import rate_dict
from evalfleet.cli import app, main
from evalfleet.cli.progress import RichProgress
from evalfleet.errors import ConfigError, SpecError
from evalfleet.execution.dispatcher import DispatchStats
from evalfleet.scoring.base import Score, ScoreContext
from evalfleet.settings import Settings
from evalfleet.spec import load_plan


def _agent(name: str, fn: str, version: str = "1", **kwargs: object) -> dict[str, object]:
    return {"name": name, "version": version, "kind": "python",
            "args": {"callable": f"evalfleet.testing.agents:{fn}", "kwargs": kwargs}}


def _cli(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--home", str(settings.home)])


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
          settings: Settings, *args: str) -> tuple[int, str]:
    """The real entry point (evalfleet errors become exit codes there); (code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["evalfleet", *args, "--home", str(settings.home)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, " ".join(capsys.readouterr().err.split())


def _words(text: str) -> str:
    return " ".join(text.split())


# -- intervals -------------------------------------------------------------------------------


def test_164_of_164_and_0_of_5_are_not_certain() -> None:
    ones, k1 = np.ones(164), np.ones(164, dtype=int)
    full = rate_dict(ones, k1, np.ones(164, dtype=bool))
    assert full["mean"] == 1.0 and full["ci_high"] == pytest.approx(1.0)
    assert full["ci_low"] == pytest.approx(stats.wilson_interval(164, 164).ci_low)
    assert 0.95 < full["ci_low"] < 0.99 and "Wilson" in full["method"]
    none = rate_dict(np.zeros(5), np.ones(5, dtype=int), np.ones(5, dtype=bool))
    assert none["ci_low"] == pytest.approx(0.0)
    assert none["ci_high"] == pytest.approx(stats.wilson_interval(0, 5).ci_high)
    assert none["ci_high"] > 0.4
    # K > 1 runs: the mean interval, which would be 0 wide, falls back to Wilson on tasks
    k3 = rate_dict(np.ones(10), np.full(10, 3), np.ones(10, dtype=bool))
    assert k3["ci_low"] == pytest.approx(stats.wilson_interval(10, 10).ci_low)
    assert "Wilson on 10/10 tasks" in k3["method"]
    # every task passed one run of two: SE 0 at 50% is no more certain than at 0% or 100%
    half = rate_dict(np.full(3, 0.5), np.full(3, 2), np.ones(3, dtype=bool))
    assert half["mean"] == 0.5 and half["ci_high"] - half["ci_low"] > 0.5
    assert half["ci_low"] == pytest.approx(0.12533, abs=1e-4)  # Wilson(1.5, 3), by hand


def test_report_intervals_never_collapse(make_plan: Callable[..., Path],
                                         settings: Settings) -> None:
    # difficulty 5 (every fifth task) is never solved: a hardest tier of 0/4
    answers = {f"t{i:05d}": ("no" if i % 5 == 4 else "ok") for i in range(20)}
    plan = make_plan(n_tasks=20, agents=[_agent("all", "noop"),
                                         _agent("tiered", "echo_target", answers=answers)])
    eval_id = api.run(plan, settings=settings).eval_id
    rep = json.loads(_cli(settings, "report", eval_id, "--json").stdout)
    every, tiered = rep["agents"]
    o = every["overall"]
    assert o["mean"] == 1.0 and o["ci_low"] < 1.0 and "Wilson" in o["method"]
    hardest = next(d for d in tiered["by_difficulty"] if d["difficulty"] == 5)
    assert hardest["mean"] == 0.0 and hardest["ci_high"] > 0.3 and hardest["method"]
    for a in rep["agents"]:
        for g in [a["overall"], *a["by_category"], *a["by_difficulty"]]:
            assert g["ci_high"] > g["ci_low"], g
    text = _cli(settings, "report", eval_id).stdout
    assert "± 0.0" not in text and "100.0% [" in text


def test_report_cluster_changes_the_standard_error(make_plan: Callable[..., Path],
                                                   settings: Settings) -> None:
    # passes are decided by category (c0 passes, c1 and c2 fail): tasks of a category are
    # not independent, and clustering by category must widen the SE
    answers = {f"t{i:05d}": ("ok" if i % 3 == 0 else "no") for i in range(30)}
    plan = make_plan(n_tasks=30, runs_per_task=2,
                     agents=[_agent("bycat", "echo_target", answers=answers)])
    eval_id = api.run(plan, settings=settings).eval_id
    flat = api.report(eval_id, settings=settings)["agents"][0]["overall"]
    clustered = json.loads(_cli(settings, "report", eval_id, "--json", "--cluster",
                                "category").stdout)["agents"][0]["overall"]
    assert clustered["clustered_by"] == "category" and clustered["n_clusters"] == 3
    assert flat["clustered_by"] == "task" and flat["n_clusters"] is None
    assert clustered["se"] > 2 * flat["se"]
    assert clustered["ci_high"] - clustered["ci_low"] > 2 * (flat["ci_high"] - flat["ci_low"])


# -- coverage, excluded and failing runs -----------------------------------------------------


def _infra_plan(make_plan: Callable[..., Path], tmp_path: Path, n_tasks: int,
                good_tasks: int = 0, **fields: Any) -> Path:
    """An agent whose every attempt is an infrastructure error, except on the first
    ``good_tasks`` tasks (their failure budget is already used up)."""
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    for i in range(good_tasks):
        (markers / f"t{i:05d}").write_text("99")
    return make_plan(n_tasks=n_tasks, agents=[_agent("infra", "flaky_infra",
                                                     marker_dir=str(markers), failures=99)],
                     execution={"max_attempts": 1}, **fields)


def test_all_infra_errors_is_no_score(make_plan: Callable[..., Path], settings: Settings,
                                      tmp_path: Path) -> None:
    res = _cli(settings, "run", str(_infra_plan(make_plan, tmp_path, 6)), "--quiet")
    assert res.exit_code == 1, res.output
    (ev,) = api.status(settings=settings)["evals"]
    rep = api.report(ev["eval_id"], settings=settings)
    cov = rep["coverage"]
    assert {k: cov[k] for k in ("planned", "done", "scored", "errored", "cancelled")} == \
        {"planned": 6, "done": 6, "scored": 0, "errored": 6, "cancelled": 0}
    assert cov["partial"] is True
    assert rep["agents"][0]["excluded"]["infra_error"] == 6
    out = _cli(settings, "report", ev["eval_id"])
    assert out.exit_code == 1
    assert "coverage 0/6 scored (PARTIAL)" in _words(out.stdout)
    assert "complete)" not in out.stdout
    assert "(PARTIAL)" in report_markdown(rep)


def test_some_infra_errors_make_the_result_partial_and_are_counted(
        make_plan: Callable[..., Path], settings: Settings, tmp_path: Path) -> None:
    plan = _infra_plan(make_plan, tmp_path, 10, good_tasks=7)
    eval_id = api.run(plan, settings=settings).eval_id
    res = _cli(settings, "report", eval_id, "--json")
    assert res.exit_code == 0
    rep = json.loads(res.stdout)
    assert rep["coverage"]["scored"] == 7 and rep["coverage"]["partial"] is True
    agent = rep["agents"][0]
    assert agent["excluded"]["infra_error"] == 3 and agent["excluded"]["total"] == 3
    assert agent["overall"]["mean"] == 1.0 and agent["overall"]["n_tasks"] == 7
    text = " ".join(_cli(settings, "report", eval_id).stdout.split())
    assert "coverage 7/10 scored (PARTIAL)" in text
    assert "excluded from the score: infra_error 3, scorer_error 0" in text
    md = report_markdown(api.report(eval_id, settings=settings))
    assert "7/10 planned runs scored (PARTIAL)" in md and "infra\\_error 3" in md
    page = report_html(api.report(eval_id, settings=settings))
    assert "7/10 planned runs scored (PARTIAL)" in page and "infra_error 3" in page


def test_report_lists_failing_run_ids(make_plan: Callable[..., Path],
                                      settings: Settings) -> None:
    plan = make_plan(n_tasks=25, agents=[_agent("boom", "boom")])
    eval_id = api.run(plan, settings=settings).eval_id
    rep = api.report(eval_id, settings=settings)
    failing = rep["agents"][0]["failing_runs"]
    assert failing["count"] == 25 and len(failing["runs"]) == 20
    ids = {r["run_id"] for r in failing["runs"]}
    con = duckdb.connect()
    try:
        failed = {r for (r,) in con.execute(
            f"SELECT run_id FROM read_parquet('{settings.home}/results/**/*.parquet') "
            "WHERE NOT passed").fetchall()}
    finally:
        con.close()
    assert len(ids) == 20 and ids <= failed
    text = " ".join(_cli(settings, "report", eval_id).stdout.split())
    assert "25 failing runs" in text and "evalfleet show RUN_ID" in text
    assert all(rid in text for rid in ids) and "and 5 more" in text


# -- compare ---------------------------------------------------------------------------------


def _pair(make_plan: Callable[..., Path], settings: Settings, runs: int,
          broken: set[int], n_tasks: int = 6) -> str:
    answers = {f"t{i:05d}": ("no" if i in broken else "ok") for i in range(n_tasks)}
    plan = make_plan(n_tasks=n_tasks, runs_per_task=runs,
                     agents=[_agent("base", "noop"),
                             _agent("new", "echo_target", version="2", answers=answers)])
    return api.run(plan, settings=settings).eval_id


def test_two_task_category_gets_the_mcnemar_mid_p_not_a_t_test(
        make_plan: Callable[..., Path], settings: Settings) -> None:
    # category c0 is t0 and t3: both break in NEW. One binary run per task: McNemar, b=0, c=2
    eval_id = _pair(make_plan, settings, runs=1, broken={0, 3})
    cmp = api.compare([f"{eval_id}/base@1", f"{eval_id}/new@2"], settings=settings)
    c0 = next(c for c in cmp["by_category"] if c["category"] == "c0")
    mc = stats.mcnemar_test(0, 2, 2)
    assert (mc.p_midp, mc.p_exact) == (0.25, 0.5)
    assert c0["test"] == "mcnemar-midp" and c0["p_value"] == pytest.approx(mc.p_midp)
    assert c0["mcnemar"]["p_exact"] == pytest.approx(mc.p_exact)
    text = " ".join(_cli(settings, "compare", f"{eval_id}/base@1", f"{eval_id}/new@2"
                         ).stdout.split())
    assert "McNemar mid-p" in text and "0.2500" in text
    row = next(line for line in compare_markdown(cmp).splitlines() if line.startswith("| c0 |"))
    assert "| 0.2500 | McNemar mid-p |" in row
    assert cmp["regressions"] == []  # p = 0.25 (Holm 0.75) decides: nothing flagged


def test_small_non_binary_comparison_uses_the_exact_permutation_p(
        make_plan: Callable[..., Path], settings: Settings) -> None:
    # K = 2 is not one binary run per task: with 2 tasks both down by 1, the exact sign-flip
    # p is 2/4 = 0.5, where a paired t on SE 0 would claim p < 0.0001
    eval_id = _pair(make_plan, settings, runs=2, broken={0, 3})
    cmp = api.compare([f"{eval_id}/base@1", f"{eval_id}/new@2"], settings=settings)
    c0 = next(c for c in cmp["by_category"] if c["category"] == "c0")
    assert c0["test"] == "permutation-exact" and c0["p_value"] == pytest.approx(0.5)
    assert cmp["diff"]["test"] == "permutation-exact"
    perm = stats.paired_permutation_test(np.array([0.0, 1, 1, 0, 1, 1]), np.ones(6),
                                         n_resamples=math.inf)
    assert cmp["diff"]["p_value"] == pytest.approx(perm.p_value)
    assert cmp["overall_verdict"] == "no significant change"  # p = 0.5 decides


def test_large_binary_k1_decides_with_the_printed_mid_p(make_plan: Callable[..., Path],
                                                       settings: Settings) -> None:
    eval_id = _pair(make_plan, settings, runs=1, broken=set(range(0, 40, 2)), n_tasks=40)
    cmp = api.compare([f"{eval_id}/base@1", f"{eval_id}/new@2"], settings=settings)
    d = cmp["diff"]
    assert d["test"] == "mcnemar-midp"
    assert d["p_value"] == pytest.approx(stats.mcnemar_test(0, 20, 40).p_midp)
    assert cmp["overall_verdict"] == "regression"
    assert cmp["regressions"][0]["p_value"] == d["p_value"]


def test_mde_is_never_zero(make_plan: Callable[..., Path], settings: Settings) -> None:
    # every task drops by exactly 1: no variation, so no detectable-change figure
    eval_id = _pair(make_plan, settings, runs=2, broken=set(range(40)), n_tasks=40)
    cmp = api.compare([f"{eval_id}/base@1", f"{eval_id}/new@2"], settings=settings)
    assert cmp["mde_note"]["mde"] is None and "variance is 0" in cmp["mde_note"]["why"]
    text = " ".join(_cli(settings, "compare", f"{eval_id}/base@1", f"{eval_id}/new@2"
                         ).stdout.split())
    assert "detect about 0.0" not in text and "detectable change unknown" in text
    assert "can detect about 0.0" not in compare_markdown(cmp)


def test_compare_flags_a_higher_infra_error_rate(make_plan: Callable[..., Path],
                                                settings: Settings, tmp_path: Path) -> None:
    markers = tmp_path / "m"
    markers.mkdir()
    for i in range(6):
        (markers / f"t{i:05d}").write_text("99")  # 6 of 10 tasks run, 4 are infra errors
    plan = make_plan(n_tasks=10, execution={"max_attempts": 1}, agents=[
        _agent("base", "noop"),
        _agent("dodger", "flaky_infra", marker_dir=str(markers), failures=99)])
    eval_id = api.run(plan, settings=settings).eval_id
    cmp = api.compare([f"{eval_id}/base@1", f"{eval_id}/dodger@1"], settings=settings)
    ex = cmp["excluded"]
    assert ex["flagged"] is True
    assert ex["new"] == {"errored": 4, "scored": 6, "rate": 0.4}
    assert ex["base"]["rate"] == 0.0
    text = " ".join(_cli(settings, "compare", f"{eval_id}/base@1", f"{eval_id}/dodger@1"
                         ).stdout.split())
    assert "4/10 (40.0%) vs 0/10 (0.0%)" in text
    assert "4/10 (40.0%) vs 0/10 (0.0%)" in compare_markdown(cmp)
    back = api.compare([f"{eval_id}/dodger@1", f"{eval_id}/base@1"], settings=settings)
    assert back["excluded"]["flagged"] is False


# -- NaN scores and configuration errors -----------------------------------------------------


class _NaNScorer:
    """A broken plugin scorer: NaN for odd tasks, a fine 1.0 for even ones."""

    async def score(self, ctx: ScoreContext) -> Score:
        odd = int(ctx.task.id[1:]) % 2 == 1
        return Score(float("nan") if odd else 1.0, None if odd else True)


def test_nan_score_is_a_scorer_error_and_reports_still_work(
        make_plan: Callable[..., Path], settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("evalfleet.execution.dispatcher.create_scorer",
                        lambda spec: _NaNScorer())
    eval_id = api.run(make_plan(n_tasks=6), settings=settings).eval_id
    res = _cli(settings, "report", eval_id, "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    agent = rep["agents"][0]
    assert agent["overall"]["mean"] == 1.0 and agent["overall"]["n_tasks"] == 3
    assert agent["excluded"]["scorer_error"] == 3
    assert rep["coverage"]["scored"] == 3 and rep["coverage"]["partial"] is True
    assert "scorer_error 3" in " ".join(_cli(settings, "report", eval_id).stdout.split())
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"SELECT status, error_kind, score FROM read_parquet('{settings.home}/results/**/"
            "*.parquet') WHERE CAST(substr(task_id, 2) AS INTEGER) % 2 = 1").fetchall()
    finally:
        con.close()
    assert rows == [("errored", "scorer_error", None)] * 3  # no NaN was committed


def _openai_plan(tmp_path: Path, agent_args: dict[str, Any], model: str = "sim-large",
                 **fields: Any) -> Path:
    plan = {"name": "cfg", "suite": {"builtin": "humaneval", "limit": 20}, "runs_per_task": 1,
            "agents": [{"name": "agent", "version": "1", "kind": "openai", "model": model,
                        "args": {"tools": False, **agent_args}}],
            **fields}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_missing_api_key_stops_at_plan_check(tmp_path: Path, settings: Settings,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("EVALFLEET_TEST_UNSET_KEY", raising=False)
    path = _openai_plan(tmp_path, {"base_url": "http://127.0.0.1:9/v1",
                                   "api_key_env": "EVALFLEET_TEST_UNSET_KEY"})
    with pytest.raises(SpecError, match="EVALFLEET_TEST_UNSET_KEY") as info:
        api.validate_plan(load_plan(path), str(path))
    assert info.value.field == "agents.0.args.api_key_env"
    code, err = _main(monkeypatch, capsys, settings, "run", str(path), "--quiet")
    assert code == 2 and "EVALFLEET_TEST_UNSET_KEY" in err
    assert not (settings.home / "results").exists()  # nothing ran, nothing was scored 0
    monkeypatch.setenv("EVALFLEET_TEST_UNSET_KEY", "sk-test")
    api.validate_plan(load_plan(path), str(path))  # set: the plan is fine


def test_unknown_model_stops_the_eval_as_a_configuration_error(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = _openai_plan(tmp_path, {"base_url": "{simulator}", "api_key_env": None},
                        model="no-such-model", execution={"max_in_flight": 2},
                        simulator={"models": {"sim-large": {"skill": 0.8, "latency_s": 0.01}},
                                   "seed": 1})
    with pytest.raises(ConfigError, match="no-such-model"):
        api.run(path, settings=settings)
    (ev,) = api.status(settings=settings)["evals"]
    assert ev["status"] == "interrupted"  # resumable once the model name is fixed
    rep = api.report(ev["eval_id"], settings=settings)
    agent = rep["agents"][0]
    assert agent["overall"] is None and not agent.get("errors")  # no score, no agent failure
    # the runs the 404 ended are not results: nothing is committed, all wait for resume
    assert ev["done"] == 0
    code, err = _main(monkeypatch, capsys, Settings(home=tmp_path / "other"), "run",
                      str(path), "--quiet")
    assert code == 2 and "no-such-model" in err and "404" in err
    # the model name fixed, resume runs every run exactly once (none was lost to the error)
    from evalfleet.spec.plan import Plan
    from evalfleet.store.journal import Journal

    journal = Journal.open(settings.home)
    try:
        row = journal.get_eval(ev["eval_id"])
        plan = row["plan"]
        plan["agents"][0]["model"] = "sim-large"
        journal.update_plan(ev["eval_id"], Plan.model_validate(plan).model_dump_json())
    finally:
        journal.close()
    summary = api.resume(ev["eval_id"], settings=settings)
    assert summary.status == "completed" and summary.done == summary.planned == 20


# -- progress --------------------------------------------------------------------------------


class _Capture:
    def __init__(self) -> None:
        self.stats: DispatchStats | None = None

    def start(self, eval_id: str, stats: DispatchStats, sandbox: str,
              warnings: Sequence[str] = ()) -> None:
        self.stats = stats

    def stop(self) -> None:
        return None


def test_progress_counts_wrong_answers_as_failed(make_plan: Callable[..., Path],
                                                 settings: Settings) -> None:
    answers = {f"t{i:05d}": ("ok" if i < 2 else "no") for i in range(6)}
    hook = _Capture()
    api.run(make_plan(n_tasks=6, agents=[_agent("half", "echo_target", answers=answers)]),
            settings=settings, progress=hook)
    st = hook.stats
    assert st is not None and (st.passed, st.failed, st.errored) == (2, 4, 0)
    buf = io.StringIO()
    progress = RichProgress(Console(file=buf, width=120, force_terminal=False))
    progress.start("e", st, "local")
    progress.stop()
    assert "passed 2" in buf.getvalue() and "failed 4" in buf.getvalue()
    assert "errored 0" in buf.getvalue()
