"""Tiered execution: the stratified selection (deterministic, rotating, covering) and the
report's full-suite estimate (stratified or difference estimator) of a sampled eval."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from conftest import write_jsonl_suite
from evalfleet import api, stats
from evalfleet._util.formatting import pct
from evalfleet.analysis.estimates import full_suite_estimate
from evalfleet.api.evals import planned_runs, planned_tasks
from evalfleet.cli import app
from evalfleet.cost import sampling
from evalfleet.settings import Settings
from evalfleet.spec import load_plan
from evalfleet.spec.plan import SampleSpec
from evalfleet.spec.task import Suite, Task

DAY = date(2026, 12, 2)  # a Wednesday


def _suite(n: int, *, categories: int = 6, name: str = "sim") -> Suite:
    tasks = [Task(id=f"task-{i:05d}", input="x", category=f"c{i % categories}",
                  difficulty=1 + (i * 7 // categories) % 5, target="ok",
                  scorer={"kind": "exact"}) for i in range(n)]
    return Suite(name=name, tasks=tuple(tasks))


def _ids(sel: sampling.Selection) -> list[str]:
    return [t.id for t in sel.tasks]


# -- selection ---------------------------------------------------------------------------------

_CHILD = """
import sys
from evalfleet.cost import sampling
from evalfleet.spec.plan import SampleSpec
from evalfleet.spec.task import Suite, Task
tasks = [Task(id=f"task-{i:05d}", input="x", category=f"c{i % 6}",
              difficulty=1 + (i * 7 // 6) % 5, target="ok", scorer={"kind": "exact"})
         for i in range(600)]
sel = sampling.select(Suite(name="sim", tasks=tuple(tasks)),
                      SampleSpec(tier="smoke", strata=("category", "difficulty"), seed=11))
print(",".join(t.id for t in sel.tasks))
"""


def test_same_seed_same_tasks_in_other_processes() -> None:
    """The order is a content hash, not Python's per-process salted hash()."""
    outs = set()
    for hash_seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", _CHILD], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
        outs.add(out)
    here = _ids(sampling.select(_suite(600), SampleSpec(tier="smoke",
                                                        strata=("category", "difficulty"),
                                                        seed=11)))
    assert outs == {",".join(here)}
    other = _ids(sampling.select(_suite(600), SampleSpec(tier="smoke",
                                                         strata=("category", "difficulty"),
                                                         seed=12)))
    assert other != here


def test_the_order_does_not_depend_on_the_file_order() -> None:
    suite = _suite(300)
    shuffled = Suite(name=suite.name, tasks=tuple(reversed(suite.tasks)))
    spec = SampleSpec(tier="weekly", strata=("category",), seed=4)
    assert set(_ids(sampling.select(suite, spec))) == set(_ids(sampling.select(shuffled, spec)))


def test_twenty_daily_smoke_selections_cover_every_task() -> None:
    """5% a day: 20 consecutive days run every task, and no task twice before its stratum is
    covered (the windows of consecutive days are disjoint)."""
    suite = _suite(1997)  # uneven strata: 5% of N_h is rarely a whole number
    spec = SampleSpec(tier="smoke", strata=("category", "difficulty"))
    seen: set[str] = set()
    per_stratum: dict[tuple[str, ...], list[set[str]]] = {}
    for k in range(20):
        sel = sampling.select(suite, spec, on=DAY + timedelta(days=k))
        assert 0.05 * len(suite.tasks) <= len(sel.tasks) < 0.05 * len(suite.tasks) + 31
        seen.update(_ids(sel))
        for s in sel.strata:
            per_stratum.setdefault(s.key, []).append(set(s.sampled))
    assert seen == {t.id for t in suite.tasks}
    for windows in per_stratum.values():
        n_h, big_n = len(windows[0]), len(set().union(*windows))
        disjoint = big_n // n_h  # whole windows before the first wrap
        assert sum(len(w) for w in windows[:disjoint]) == len(set().union(*windows[:disjoint]))


def test_weekly_rotation_changes_on_monday_and_covers_in_five_weeks() -> None:
    suite = _suite(500)
    spec = SampleSpec(tier="weekly")
    monday = DAY - timedelta(days=DAY.weekday())
    week = {tuple(_ids(sampling.select(suite, spec, on=monday + timedelta(days=d))))
            for d in range(7)}
    assert len(week) == 1
    seen: set[str] = set()
    for w in range(5):
        seen.update(_ids(sampling.select(suite, spec, on=monday + timedelta(weeks=w))))
    assert seen == {t.id for t in suite.tasks}
    # a seed wins over the date
    seeded = SampleSpec(tier="weekly", seed=3)
    assert _ids(sampling.select(suite, seeded, on=monday)) == \
        _ids(sampling.select(suite, seeded, on=monday + timedelta(weeks=9)))


def test_every_stratum_gets_its_share_and_sizes_add_up() -> None:
    suite = _suite(403, categories=7)
    for tier, share in (("smoke", 0.05), ("weekly", 0.2)):
        sel = sampling.select(suite, SampleSpec(tier=tier, strata=("category", "difficulty")),
                              on=DAY)
        groups: dict[tuple[str, ...], int] = {}
        for t in suite.tasks:
            key = (t.category, str(t.difficulty))
            groups[key] = groups.get(key, 0) + 1
        assert {s.key: s.population for s in sel.strata} == groups
        for s in sel.strata:
            assert s.size == max(1, math.ceil(share * s.population - 1e-9)) >= 1
            assert set(s.sampled) <= set(s.task_ids) and len(set(s.sampled)) == s.size
        assert sum(s.size for s in sel.strata) == len(sel.tasks)
        assert sum(s.population for s in sel.strata) == len(suite.tasks)
        # the selection keeps the suite's order
        order = {t.id: i for i, t in enumerate(suite.tasks)}
        assert [order[i] for i in _ids(sel)] == sorted(order[i] for i in _ids(sel))


def test_full_tier_and_no_sample_run_everything() -> None:
    suite = _suite(50)
    assert sampling.select(suite, None).tasks == suite.tasks
    assert sampling.select(suite, SampleSpec(tier="full")).tasks == suite.tasks
    assert not sampling.select(suite, SampleSpec(tier="full")).sampled


# -- plans and evals ---------------------------------------------------------------------------

def _agent(name: str, version: str, passing: list[str]) -> dict[str, Any]:
    return {"name": name, "version": version, "kind": "python",
            "args": {"callable": "evalfleet.testing.agents:echo_target",
                     "kwargs": {"answers": {t: "ok" for t in passing}}}}


def _plan(tmp_path: Path, name: str, suite: Path, agents: list[dict[str, Any]],
          **fields: Any) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "suite": {"path": str(suite)},
                                    "agents": agents, **fields}, sort_keys=False))
    return path


def test_planned_runs_of_a_sampled_plan(tmp_path: Path) -> None:
    suite_path = write_jsonl_suite(tmp_path / "s.jsonl", 40, categories=4)
    plan = load_plan(_plan(tmp_path, "p", suite_path,
                           [_agent("a", "1", []), _agent("b", "1", [])],
                           runs_per_task=3, sample={"tier": "weekly", "seed": 2}))
    suite = api.validate_plan(plan)
    tasks = planned_tasks(plan, suite)
    assert len(tasks) == 4 * math.ceil(0.2 * 10)
    assert planned_runs(plan, suite) == len(tasks) * 2 * 3
    assert {r[1] for r in api.run_ids("e", plan, suite)} == {t.id for t in tasks}


def test_plan_check_shows_the_sample(tmp_path: Path, settings: Settings) -> None:
    suite_path = write_jsonl_suite(tmp_path / "s.jsonl", 40, categories=4)
    plan = _plan(tmp_path, "p", suite_path, [_agent("a", "1", [])],
                 sample={"tier": "smoke", "fraction": 0.25, "seed": 5})
    r = api.check_plan(plan, settings=settings)
    assert r["sample"] == {"tier": "smoke", "fraction": 0.25, "strata": ["category"],
                           "rotation": 5, "rotation_source": "seed 5", "tasks": 12,
                           "population": 40, "n_strata": 4}
    assert r["runs_planned"] == 12
    res = CliRunner().invoke(app, ["plan", "check", str(plan)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "sample: tier smoke, 25% of each of 4 strata (category) = 12 of 40 tasks; " \
           "rotation 5 (seed 5)" in text
    assert "runs planned: 12 (12 tasks x 1 agents" in text


def test_a_date_rotation_is_pinned_in_the_stored_plan(tmp_path: Path,
                                                      settings: Settings) -> None:
    """Resume or more repeats on another day must select the tasks chosen at creation."""
    from evalfleet.store import Store

    suite_path = write_jsonl_suite(tmp_path / "s.jsonl", 60, categories=3)
    plan = load_plan(_plan(tmp_path, "p", suite_path, [_agent("a", "1", [])],
                           sample={"tier": "smoke", "fraction": 0.1}))
    suite = api.validate_plan(plan)
    store = Store(settings.home)
    try:
        eval_id = api.create_eval(store, plan, suite, on=DAY)
        stored = load_plan_json(store.journal.get_eval(eval_id)["plan"])
        record = (settings.home / "samples" / f"{eval_id}.json").read_text()
        # an id clash fails without touching the existing eval's record
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
            api.create_eval(store, plan, suite, eval_id, on=DAY + timedelta(days=1))
        assert (settings.home / "samples" / f"{eval_id}.json").read_text() == record
    finally:
        store.close()
    today = DAY
    assert stored.sample is not None
    assert stored.sample.seed == (today - date(1970, 1, 1)).days
    later = planned_tasks(stored, suite, on=today + timedelta(days=3))
    assert later == planned_tasks(plan, suite, on=today)
    assert later != planned_tasks(plan, suite, on=today + timedelta(days=3))
    rec_path = settings.home / "samples" / f"{eval_id}.json"
    rec = json.loads(rec_path.read_text())
    assert stat.S_IMODE(rec_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(rec_path.parent.stat().st_mode) == 0o700
    assert rec["rotation"] == stored.sample.seed and rec["rotation_source"].startswith("UTC day")
    assert [(s["population"], s["sample"]) for s in rec["strata"]] == [(20, 2)] * 3
    assert sorted(t for s in rec["strata"] for t in s["sampled"]) == sorted(t.id for t in later)


def load_plan_json(data: dict[str, Any]) -> Any:
    from evalfleet.spec.plan import Plan

    return Plan.model_validate(data)


# -- estimates ---------------------------------------------------------------------------------

def test_formula_of_the_full_suite_estimate() -> None:
    """V = sum_h W_h^2 [(1 - f_h) s_h^2 + f_h sigma_h^2] / n_h: fpc on the between-task part,
    none on the run noise of the sampled tasks."""
    x = np.array([0.0, 1.0, 1.0, 0.5, 0.0, 1.0, 0.5])
    labels = ["a", "a", "a", "b", "b", "b", "b"]
    sizes = {"a": 10, "b": 20}
    exact = stats.stratified_mean(x, labels, sizes)
    # run variance known and zero: deterministic tasks, the textbook fpc formula
    zero = full_suite_estimate(x, labels, sizes, run_variance=np.zeros(7))
    assert zero.estimate == pytest.approx(exact.estimate)
    assert zero.se == pytest.approx(exact.se)
    # run variance known: add W^2 f sigma^2 / n per stratum
    rv = np.array([0.01, 0.02, 0.03, 0.04, 0.0, 0.02, 0.02])
    est = full_suite_estimate(x, labels, sizes, run_variance=rv)
    wa, wb = 10 / 30, 20 / 30
    noise = wa**2 * (3 / 10) * rv[:3].mean() / 3 + wb**2 * (4 / 20) * rv[3:].mean() / 4
    assert est.se == pytest.approx(math.sqrt(exact.se**2 + noise))
    assert est.se_run_noise == pytest.approx(math.sqrt(noise))
    # one run per task: noise bounded by the task-mean variance, i.e. no fpc at all
    one = full_suite_estimate(x, labels, sizes)
    no_fpc = wa**2 * np.var(x[:3], ddof=1) / 3 + wb**2 * np.var(x[3:], ddof=1) / 4
    assert one.se == pytest.approx(math.sqrt(no_fpc))
    # the interval is t with Satterthwaite df over the combined terms (a_h s_h^2 / (n_h - 1))
    terms = [wa**2 * np.var(x[:3], ddof=1) / 3, wb**2 * np.var(x[3:], ddof=1) / 4]
    df = sum(terms) ** 2 / (terms[0] ** 2 / 2 + terms[1] ** 2 / 3)
    assert one.df == pytest.approx(df)
    from scipy import stats as sps
    assert one.ci_high - one.estimate == pytest.approx(sps.t.ppf(0.975, df) * one.se)
    # the difference estimator: the baseline's full mean plus stratified paired differences
    base = np.array([0.0, 1.0, 0.0, 0.5, 0.0, 1.0, 1.0])
    diff = full_suite_estimate(x, labels, sizes, base=base, base_population_mean=0.4)
    d = x - base
    assert diff.estimate == pytest.approx(0.4 + wa * d[:3].mean() + wb * d[3:].mean())
    v = (wa**2 * ((1 - 0.3) * np.var(d[:3], ddof=1) + 0.3 * np.var(x[:3], ddof=1)) / 3
         + wb**2 * ((1 - 0.2) * np.var(d[3:], ddof=1) + 0.2 * np.var(x[3:], ddof=1)) / 4)
    assert diff.se == pytest.approx(math.sqrt(v))
    assert diff.method.startswith("difference estimator")


def _run(plan: Path, settings: Settings) -> str:
    summary = api.run(plan, settings=settings)
    assert summary.status == "completed"
    return summary.eval_id


def test_sampled_eval_reports_the_stratified_estimate(tmp_path: Path,
                                                      settings: Settings) -> None:
    suite_path = write_jsonl_suite(tmp_path / "s.jsonl", 16, categories=2)
    passing = ["t00000", "t00002", "t00004", "t00001", "t00003", "t00005", "t00007"]
    plan = _plan(tmp_path, "smoke", suite_path, [_agent("a", "1", passing)],
                 sample={"tier": "smoke", "fraction": 0.5, "seed": 1})
    eval_id = _run(plan, settings)
    rep = api.report(eval_id, settings=settings)
    fs = rep["agents"][0]["full_suite"]
    assert fs["kind"] == "stratified" and fs["baseline"] is None and fs["alternative"] is None
    assert fs["method"].startswith("stratified estimator over 2 strata, n=8 of N=16")
    rec = json.loads((settings.home / "samples" / f"{eval_id}.json").read_text())
    vals = {s["label"]: [1.0 if t in passing else 0.0 for t in s["sampled"]]
            for s in rec["strata"]}
    assert set(vals) == {"category=c0", "category=c1"}
    expect = sum(0.5 * np.mean(v) for v in vals.values())
    assert fs["estimate"] == pytest.approx(expect)
    se = math.sqrt(sum(0.25 * np.var(v, ddof=1) / 4 for v in vals.values()))
    assert fs["se"] == pytest.approx(se)
    assert (fs["tier"], fs["fraction"], fs["n"], fs["population"]) == ("smoke", 0.5, 8, 16)
    res = CliRunner().invoke(app, ["report", eval_id, "--home", str(settings.home)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # the terminal wraps long lines
    shown = pct(fs["estimate"], fs["ci_low"], fs["ci_high"])
    assert shown.startswith(f"{100 * expect:.1f}%")
    assert f"a@1: full-suite estimate {shown} " in text
    assert "(stratified estimator; 50% smoke sample, 8 of 16 tasks)" in text
    js = json.loads(CliRunner().invoke(app, ["report", eval_id, "--home", str(settings.home),
                                             "--json"]).stdout)
    assert js["agents"][0]["full_suite"]["estimate"] == pytest.approx(expect)
    # a damaged or missing record costs the estimate, never the report
    rec_path = settings.home / "samples" / f"{eval_id}.json"
    rec_path.write_text(json.dumps({"strata": [{"label": "category=c0"}]}))
    fs = api.report(eval_id, settings=settings)["agents"][0]["full_suite"]
    assert fs["estimate"] is None and "cannot be used" in fs["note"]
    rec_path.unlink()
    fs = api.report(eval_id, settings=settings)["agents"][0]["full_suite"]
    assert fs["estimate"] is None and fs["note"].startswith("no sample record")
    res = CliRunner().invoke(app, ["report", eval_id, "--home", str(settings.home)])
    assert "a@1: no full-suite estimate: no sample record" in " ".join(res.output.split())


def test_a_full_baseline_gives_the_difference_estimator(tmp_path: Path,
                                                        settings: Settings) -> None:
    suite_path = write_jsonl_suite(tmp_path / "s.jsonl", 16, categories=2)
    old = [f"t{i:05d}" for i in range(0, 16, 2)] + ["t00001"]
    new = [f"t{i:05d}" for i in range(0, 16, 2)] + ["t00001", "t00003", "t00005"]
    # two full evals of version 1: the most recent one is the baseline
    _run(_plan(tmp_path, "older", suite_path, [_agent("a", "1", [])]), settings)
    base_id = _run(_plan(tmp_path, "full", suite_path, [_agent("a", "1", old)]), settings)
    # a sampled eval is no baseline, nor is a full eval of another agent name
    _run(_plan(tmp_path, "other", suite_path, [_agent("z", "1", new)]), settings)
    _run(_plan(tmp_path, "other-sample", suite_path, [_agent("a", "9", [])],
               sample={"tier": "weekly", "fraction": 0.5, "seed": 4}), settings)
    eval_id = _run(_plan(tmp_path, "smoke", suite_path, [_agent("a", "2", new)],
                         sample={"tier": "smoke", "fraction": 0.5, "seed": 1}), settings)
    fs = api.report(eval_id, settings=settings)["agents"][0]["full_suite"]
    assert fs["kind"] == "difference"
    assert fs["baseline"]["eval_id"] == base_id and fs["baseline"]["agent_version"] == "1"
    assert fs["baseline"]["full_suite_mean"] == pytest.approx(len(old) / 16)
    assert fs["method"].startswith("difference estimator")
    rec = json.loads((settings.home / "samples" / f"{eval_id}.json").read_text())
    est, var = len(old) / 16, 0.0
    for s in rec["strata"]:
        x = np.array([1.0 if t in new else 0.0 for t in s["sampled"]])
        b = np.array([1.0 if t in old else 0.0 for t in s["sampled"]])
        est += 0.5 * float(np.mean(x - b))
        var += 0.25 * (0.5 * np.var(x - b, ddof=1) + 0.5 * np.var(x, ddof=1)) / 4
    assert fs["estimate"] == pytest.approx(est)
    assert fs["se"] == pytest.approx(math.sqrt(var))
    # the stratified estimate is shown beside it, and matches the estimate without a baseline
    plain = sum(0.5 * np.mean([1.0 if t in new else 0.0 for t in s["sampled"]])
                for s in rec["strata"])
    assert fs["alternative"]["kind"] == "stratified"
    assert fs["alternative"]["estimate"] == pytest.approx(plain)
    res = CliRunner().invoke(app, ["report", eval_id, "--home", str(settings.home)])
    assert f"difference estimator: baseline {base_id} (a@1, 56.2%) plus paired differences" \
        in " ".join(res.output.split())


def test_the_baseline_is_found_in_a_warehouse_elsewhere(tmp_path: Path) -> None:
    """With results on object storage (here fsspec's memory://) the baseline's files are read
    where they are, not looked for under the home."""
    import uuid

    settings = Settings(home=tmp_path / "home",
                        warehouse_url=f"memory://baseline-{uuid.uuid4().hex}")
    suite_path = write_jsonl_suite(tmp_path / "s.jsonl", 16, categories=2)
    old = [f"t{i:05d}" for i in range(0, 16, 2)]
    base_id = _run(_plan(tmp_path, "full", suite_path, [_agent("a", "1", old)]), settings)
    eval_id = _run(_plan(tmp_path, "smoke", suite_path, [_agent("a", "2", old)],
                         sample={"tier": "smoke", "fraction": 0.5, "seed": 1}), settings)
    assert not (settings.home / "results").exists()  # the rows live in the warehouse
    fs = api.report(eval_id, settings=settings)["agents"][0]["full_suite"]
    assert fs["kind"] == "difference", fs
    assert fs["baseline"]["eval_id"] == base_id
    assert fs["baseline"]["full_suite_mean"] == pytest.approx(len(old) / 16)
