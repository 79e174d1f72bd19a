"""Report details and paired comparisons over real evals of scripted agents."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalfleet import api
from evalfleet.cli import app
from evalfleet.errors import SpecError
from evalfleet.settings import Settings


def _agent(name: str, fn: str, **kwargs: object) -> dict[str, object]:
    return {"name": name, "version": "1", "kind": "python",
            "args": {"callable": f"evalfleet.testing.agents:{fn}", "kwargs": kwargs}}


def _two_agent_eval(make_plan: Callable[..., Path], settings: Settings, runs: int) -> str:
    # "half" answers ok only for even task numbers: its score is 0.5, a paired drop from 1.0
    answers = {f"t{i:05d}": ("ok" if i % 2 == 0 else "no") for i in range(40)}
    plan = make_plan(n_tasks=40, runs_per_task=runs, agents=[
        _agent("good", "noop"), _agent("half", "echo_target", answers=answers)])
    return api.run(plan, settings=settings).eval_id


def test_regression_detected_with_k1_mcnemar(make_plan: Callable[..., Path],
                                             settings: Settings) -> None:
    eval_id = _two_agent_eval(make_plan, settings, runs=1)
    cmp = api.compare([f"{eval_id}/good@1", f"{eval_id}/half@1"], settings=settings)
    assert cmp["n_shared_tasks"] == 40
    assert cmp["diff"]["estimate"] == pytest.approx(-0.5)
    assert "McNemar" in cmp["diff"]["method"] or "mcnemar" in cmp["diff"]["method"].lower()
    assert cmp["diff"]["mcnemar"] == {"b_new_only": 0, "c_base_only": 20,
                                      "p_midp": pytest.approx(cmp["diff"]["mcnemar"]["p_midp"]),
                                      "p_exact": pytest.approx(2 * 0.5 ** 20)}
    assert cmp["overall_verdict"] == "regression"
    assert cmp["regressions"][0]["category"] == "(overall)"
    assert {c["category"] for c in cmp["by_category"]} == {"c0", "c1", "c2"}
    assert all("p_holm" in c and "p_bh" in c for c in cmp["by_category"])
    assert len([f for f in cmp["flips"] if f["direction"] == "broke"]) == 20


def test_no_change_against_itself(make_plan: Callable[..., Path], settings: Settings) -> None:
    eval_id = _two_agent_eval(make_plan, settings, runs=2)
    cmp = api.compare([f"{eval_id}/good@1", f"{eval_id}/good@1"], settings=settings)
    assert cmp["diff"]["estimate"] == 0.0
    assert cmp["overall_verdict"] == "no significant change"
    assert cmp["regressions"] == [] and cmp["flips"] == []
    assert "paired" in cmp["diff"]["method"]


def test_unshared_tasks_are_counted(make_plan: Callable[..., Path], settings: Settings,
                                    tmp_path: Path) -> None:
    a = api.run(make_plan(n_tasks=10, name="a"), settings=settings).eval_id
    b = api.run(make_plan(n_tasks=6, name="b"), settings=settings).eval_id
    cmp = api.compare([a, b], settings=settings)
    assert cmp["n_shared_tasks"] == 6
    assert cmp["unshared"]["only_base"]["count"] == 4
    assert cmp["unshared"]["only_base"]["not_in_other_plan"] == 4
    latest = api.compare(["noop@1", a], settings=settings)  # AGENT@VERSION = latest eval (b)
    assert latest["base"].startswith(b)


def test_ambiguous_side_is_a_clear_error(make_plan: Callable[..., Path],
                                         settings: Settings) -> None:
    eval_id = _two_agent_eval(make_plan, settings, runs=1)
    with pytest.raises(SpecError, match="has 2 agents"):
        api.compare([eval_id, eval_id], settings=settings)


def test_report_details(make_plan: Callable[..., Path], settings: Settings) -> None:
    eval_id = _two_agent_eval(make_plan, settings, runs=3)
    rep = api.report(eval_id, settings=settings)
    good, half = rep["agents"]
    assert good["overall"]["mean"] == 1.0 and half["overall"]["mean"] == 0.5
    assert [p["k"] for p in half["pass_k"]] == [1, 2, 3]
    assert half["pass_k"][2]["pass_hat_k"]["mean"] == 0.5
    assert half["tasks"][0]["mean"] == 0.0 and half["tasks"][0]["ci_high"] < 0.6
    assert {d["difficulty"] for d in half["by_difficulty"]} == {1, 2, 3, 4, 5}
    assert half["runs_per_task"] == {"min": 3, "mean": 3.0, "max": 3}
    assert set(half["latency"]) >= {"p50", "p90", "p99", "intervals"}
    assert rep["coverage"]["partial"] is False


def test_compare_cli_json(make_plan: Callable[..., Path], settings: Settings) -> None:
    eval_id = _two_agent_eval(make_plan, settings, runs=1)
    res = CliRunner().invoke(app, ["compare", f"{eval_id}/good@1", f"{eval_id}/half@1",
                                   "--home", str(settings.home), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) >= {"base", "new", "n_shared_tasks", "diff", "by_category", "regressions"}
    assert set(data["diff"]) >= {"estimate", "se", "ci_low", "ci_high", "p_value", "method"}
    text = CliRunner().invoke(app, ["compare", f"{eval_id}/good@1", f"{eval_id}/half@1",
                                    "--home", str(settings.home)])
    assert "regression" in text.stdout and "-50.0 pts" in text.stdout
