"""Plan reuse: a run whose task, agent, scorer, sandbox and repeat match an earlier committed,
scored run is not executed again; changing any one of them executes it again.

Executions are counted by the agent itself (evalfleet.testing.agents:counting appends a line per
execution to a log), independently of the journal.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalfleet import api
from evalfleet.cli import main
from evalfleet.sandbox import get_provider
from evalfleet.settings import Settings
from evalfleet.spec import load_plan
from evalfleet.spec.loaders import load_suite_ref
from evalfleet.store import Store
from evalfleet.store.reuse import count_reusable, find_sources, plan_keys

N = 4


def _hidden(i: int) -> str:
    return textwrap.dedent(f"""\
        import unittest
        from pkg import f

        class T{i}(unittest.TestCase):
            def test_two(self):
                self.assertEqual(f(), 2)
        """)


def _task(i: int, sandboxed: bool) -> dict[str, Any]:
    task: dict[str, Any] = {"id": f"t{i}", "input": "say ok", "category": f"c{i % 2}",
                            "limits": {"timeout_s": 60}}
    if sandboxed:  # graded by hidden unittest files in a sandbox; odd tasks fail
        task.update(files={"pkg/__init__.py": f"def f():\n    return {1 + i % 2}\n"},
                    hidden_files={f"test_t{i}.py": _hidden(i)},
                    scorer={"kind": "tests", "args": {"timeout_s": 30}})
    else:  # graded in the driver by a text scorer; task t0 fails
        task.update(target="no" if i == 0 else "ok", scorer={"kind": "exact"})
    return task


class Case:
    """A suite and a plan on disk, both editable, and the agent's execution log."""

    def __init__(self, tmp_path: Path, *, sandboxed: bool = False, n: int = N) -> None:
        self.dir = tmp_path
        self.log = tmp_path / "executions.log"
        self.suite_path = tmp_path / "suite.jsonl"
        self.tasks = [_task(i, sandboxed) for i in range(n)]
        self.agent: dict[str, Any] = {
            "name": "counter", "version": "1", "kind": "python",
            "args": {"callable": "evalfleet.testing.agents:counting",
                     "kwargs": {"log": str(self.log)}}}
        self.plan: dict[str, Any] = {
            "name": "reuse", "suite": {"path": str(self.suite_path)}, "reuse": True,
            "costs": {"infra_usd_per_hour": 360.0}}

    def run(self, settings: Settings, progress: Any = None) -> tuple[str, int]:
        """Run the plan as a new eval: its id and how many runs the agent executed."""
        with self.suite_path.open("w") as fh:
            for t in self.tasks:
                fh.write(json.dumps(t) + "\n")
        plan = self.dir / "plan.yaml"
        plan.write_text(yaml.safe_dump({**self.plan, "agents": [self.agent]}))
        before = self.executions()
        summary = api.run(plan, settings=settings, progress=progress)
        assert summary.status == "completed"
        assert summary.done == summary.planned
        return summary.eval_id, self.executions() - before

    def executions(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0


class _Progress:
    """A progress hook that keeps the live counters it was given."""

    stats: Any = None

    def start(self, eval_id: str, stats: Any, sandbox: str, warnings: Any = ()) -> None:
        self.stats = stats

    def stop(self) -> None:
        pass


def _rows(settings: Settings, eval_id: str) -> list[dict[str, Any]]:
    cols, rows = api.query(
        f"SELECT run_id, task_id, repeat, status, score, passed, cost_usd, infra_cost_usd, "
        f"reused_from, reused_cost_usd, attempts FROM runs WHERE eval_id = '{eval_id}' "
        "ORDER BY task_id, repeat", settings=settings)
    return [dict(zip(cols, r, strict=True)) for r in rows]


def _reused(settings: Settings, eval_id: str) -> dict[str, str]:
    """task_id@repeat -> reused_from, for the eval's reused rows."""
    return {f"{r['task_id']}@{r['repeat']}": r["reused_from"] for r in _rows(settings, eval_id)
            if r["reused_from"] is not None}


def test_second_eval_of_the_same_plan_executes_nothing(tmp_path: Path,
                                                       settings: Settings) -> None:
    case = Case(tmp_path, sandboxed=True)
    first, ran = case.run(settings)
    assert ran == N
    progress = _Progress()
    second, ran = case.run(settings, progress)
    assert ran == 0  # nothing executed: every run was reused
    assert progress.stats is not None  # the progress display counts reused runs as done
    assert (progress.stats.already_done, progress.stats.done) == (N, 0)

    src = {r["task_id"]: r for r in _rows(settings, first)}
    rows = _rows(settings, second)
    assert len(rows) == N
    for r in rows:
        s = src[r["task_id"]]
        assert r["reused_from"] == s["run_id"]
        assert (r["status"], r["score"], r["passed"]) == (s["status"], s["score"], s["passed"])
        assert r["cost_usd"] == r["infra_cost_usd"] == 0.0 and r["attempts"] == 0
        assert r["reused_cost_usd"] == pytest.approx(s["cost_usd"] + s["infra_cost_usd"])
    saved = sum(s["cost_usd"] + s["infra_cost_usd"] for s in src.values())
    assert saved > 0  # the sandboxed runs cost infra dollars

    rep1 = api.report(first, settings=settings)
    rep2 = api.report(second, settings=settings)
    a1, a2 = rep1["agents"][0], rep2["agents"][0]
    assert a2["overall"] == a1["overall"]
    assert a2["by_category"] == a1["by_category"]
    assert [(t["task_id"], t["mean"]) for t in a2["tasks"]] == \
        [(t["task_id"], t["mean"]) for t in a1["tasks"]]
    assert a1["overall"]["mean"] == 0.5  # odd tasks fail: the scores copied are not all equal
    assert a1["reuse"] == {"runs": 0, "share": 0.0, "saved_usd": 0.0}
    assert a2["reuse"]["runs"] == N and a2["reuse"]["share"] == 1.0
    assert a2["reuse"]["saved_usd"] == pytest.approx(saved)
    assert a2["cost"]["total_usd"] == 0.0

    # reused runs count as done in status
    st = api.status(second, settings=settings)
    assert st["agents"][0]["done"] == N

    # a third eval reuses the same originals, not the second eval's copies
    third, ran = case.run(settings)
    assert ran == 0
    assert set(_reused(settings, third).values()) == {s["run_id"] for s in src.values()}
    assert api.report(third, settings=settings)["agents"][0]["reuse"]["saved_usd"] == \
        pytest.approx(saved)

    # show says where a reused run's result came from
    one = rows[0]
    data = api.show_run(one["run_id"], settings=settings)
    assert data["run"]["reused_from"] == one["reused_from"]
    assert [e["kind"] for e in data["events"]] == ["reused"]
    assert data["events"][0]["reused_from"] == one["reused_from"]


def test_count_reusable_matches_what_an_eval_reuses(tmp_path: Path, settings: Settings) -> None:
    case = Case(tmp_path)
    first, _ = case.run(settings)
    case.tasks[1]["input"] = "say ok, please"  # one task changes: 3 of 4 reusable
    plan_file = tmp_path / "plan.yaml"
    case.suite_path.write_text("".join(json.dumps(t) + "\n" for t in case.tasks))
    plan = load_plan(plan_file)
    suite = load_suite_ref(plan.suite, plan)
    store = Store(settings.home)
    try:
        keys = plan_keys(suite.tasks, plan.agents, get_provider(
            settings.sandbox or plan.execution.sandbox).name, range(plan.first_runs))
        n, saved = count_reusable(store.home, store.all_results_paths(), keys)
    finally:
        store.close()
    assert n == N - 1
    src = {r["task_id"]: r for r in _rows(settings, first)}
    assert saved == pytest.approx(sum(r["cost_usd"] + r["infra_cost_usd"]
                                      for t, r in src.items() if t != "t1"))
    second, ran = case.run(settings)
    assert ran == 1 and len(_reused(settings, second)) == n


@pytest.mark.parametrize("component", [None, "task_hash", "agent_fingerprint", "scorer_hash",
                                       "sandbox", "repeat"])
def test_every_key_component_must_match(tmp_path: Path, settings: Settings,
                                        component: str | None) -> None:
    # each component alone, the scorer's too (which task_hash also covers), decides the match
    case = Case(tmp_path, sandboxed=True)
    case.run(settings)
    plan = load_plan(tmp_path / "plan.yaml")
    suite = load_suite_ref(plan.suite, plan)
    keys = plan_keys(suite.tasks, plan.agents, get_provider("auto").name, range(1))
    if component is not None:
        other: dict[str, Any] = {"repeat": 1} if component == "repeat" else {component: "other"}
        keys = [dataclasses.replace(k, **other) for k in keys]
    store = Store(settings.home)
    try:
        found = find_sources(store.home, store.all_results_paths(), keys)
    finally:
        store.close()
    assert len(found) == (N if component is None else 0)


def test_a_reused_source_points_to_its_original(tmp_path: Path, settings: Settings) -> None:
    # with the original's eval out of reach, the only source is a reused copy: the new row
    # still names the original run, and saves what the original cost
    case = Case(tmp_path, sandboxed=True)
    first, _ = case.run(settings)
    case.run(settings)
    plan = load_plan(tmp_path / "plan.yaml")
    suite = load_suite_ref(plan.suite, plan)
    keys = plan_keys(suite.tasks, plan.agents, get_provider("auto").name, range(1))
    store = Store(settings.home)
    try:
        found = find_sources(store.home, store.all_results_paths(), keys, exclude_eval=first)
    finally:
        store.close()
    originals = {r["task_id"]: r for r in _rows(settings, first)}
    assert len(found) == N
    for i, task in enumerate(suite.tasks):
        o = originals[task.id]
        assert found[i].run_id == o["run_id"]
        assert found[i].cost_usd > 0
        assert found[i].cost_usd == pytest.approx(o["cost_usd"] + o["infra_cost_usd"])


def test_the_earliest_source_wins(tmp_path: Path, settings: Settings) -> None:
    case = Case(tmp_path)
    case.plan["reuse"] = False
    first, _ = case.run(settings)
    case.run(settings)  # a second original of every run
    case.plan["reuse"] = True
    third, ran = case.run(settings)
    assert ran == 0
    assert set(_reused(settings, third).values()) == {r["run_id"] for r in _rows(settings, first)}


# --- each change of one component of the key executes the runs it touches again -------------

@pytest.mark.parametrize("change", ["file", "hidden_file", "scorer"])
def test_a_changed_task_executes_again(tmp_path: Path, settings: Settings, change: str) -> None:
    case = Case(tmp_path, sandboxed=True)
    case.run(settings)
    t = case.tasks[2]
    if change == "file":
        t["files"] = {"pkg/__init__.py": "def f():\n    return 2  # changed\n"}
    elif change == "hidden_file":
        t["hidden_files"] = {"test_t2.py": _hidden(2) + "\n# changed\n"}
    else:
        t["scorer"] = {"kind": "tests", "args": {"timeout_s": 31}}
    second, ran = case.run(settings)
    assert ran == 1  # only the changed task executed again
    assert set(_reused(settings, second)) == {"t0@0", "t1@0", "t3@0"}


def test_a_new_agent_version_executes_again(tmp_path: Path, settings: Settings) -> None:
    case = Case(tmp_path)
    case.run(settings)
    case.agent["version"] = "2"
    second, ran = case.run(settings)
    assert ran == N and _reused(settings, second) == {}


def test_changed_agent_parameters_execute_again(tmp_path: Path, settings: Settings) -> None:
    case = Case(tmp_path)
    case.run(settings)
    case.agent["args"]["kwargs"]["sleep_s"] = 0.001
    second, ran = case.run(settings)
    assert ran == N and _reused(settings, second) == {}


def test_a_release_that_grades_differently_executes_again(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # the scorer's code is evalfleet's: a new grading version must not take old verdicts
    case = Case(tmp_path)
    case.run(settings)
    monkeypatch.setattr("evalfleet.store.results.GRADING_VERSION", "test-next")
    second, ran = case.run(settings)
    assert ran == N and _reused(settings, second) == {}


def test_price_and_budget_of_the_agent_do_not_invalidate(tmp_path: Path,
                                                         settings: Settings) -> None:
    case = Case(tmp_path)
    case.run(settings)
    case.agent["price"] = 0
    case.agent["budget_usd"] = 5.0
    second, ran = case.run(settings)
    assert ran == 0 and len(_reused(settings, second)) == N


def test_another_sandbox_provider_executes_again(tmp_path: Path, home: Path) -> None:
    if not get_provider("bwrap").available():
        pytest.skip("bubblewrap does not work here")
    case = Case(tmp_path, sandboxed=True)
    local, bwrap = Settings(home=home, sandbox="local"), Settings(home=home, sandbox="bwrap")
    case.run(local)
    second, ran = case.run(bwrap)
    assert ran == N and _reused(settings=bwrap, eval_id=second) == {}
    third, ran = case.run(bwrap)  # now bwrap has its own sources
    assert ran == 0
    assert set(_reused(bwrap, third).values()) == {r["run_id"] for r in _rows(bwrap, second)}


def test_deeper_plan_executes_only_its_new_repeats(tmp_path: Path, settings: Settings) -> None:
    case = Case(tmp_path)
    case.run(settings)
    case.plan["runs_per_task"] = 2
    second, ran = case.run(settings)
    assert ran == N  # repeat 1 of every task; repeat 0 reused
    assert set(_reused(settings, second)) == {f"t{i}@0" for i in range(N)}
    rep = api.report(second, settings=settings)["agents"][0]
    assert rep["overall"]["n_runs"] == 2 * N and rep["reuse"]["share"] == 0.5


def test_adaptive_rounds_are_reused_too(tmp_path: Path, settings: Settings) -> None:
    # adaptive depth adds rounds after the first; each round's runs are looked up when the
    # round starts, so a second eval of the same adaptive plan executes nothing at all
    case = Case(tmp_path, n=60)
    markers = tmp_path / "markers"
    markers.mkdir()
    case.agent = {"name": "rate", "version": "1", "kind": "python",
                  "args": {"callable": "evalfleet.testing.agents:task_rate",
                           "kwargs": {"marker_dir": str(markers)}}}
    # one run at a time: task_rate's answers depend on the order of a task's calls only
    case.plan["runs"] = {"min": 2, "max": 8, "target_halfwidth": 0.112}
    case.plan["execution"] = {"max_in_flight": 1}

    def executed() -> int:
        return sum(int(p.read_text()) for p in markers.iterdir())

    first, _ = case.run(settings)
    ran_first = executed()
    assert ran_first > 60 * 2  # later rounds ran
    second, _ = case.run(settings)
    assert executed() == ran_first
    rows = _rows(settings, second)
    assert len(rows) == ran_first and all(r["reused_from"] for r in rows)
    assert max(r["repeat"] for r in rows) >= 2
    assert api.report(second, settings=settings)["agents"][0]["overall"] == \
        api.report(first, settings=settings)["agents"][0]["overall"]


def test_errored_runs_are_not_reused(tmp_path: Path, settings: Settings) -> None:
    # the same agent spec errors (infra) on its first call per task and succeeds after
    case = Case(tmp_path)
    markers = tmp_path / "markers"
    markers.mkdir()
    case.agent = {"name": "flaky", "version": "1", "kind": "python",
                  "args": {"callable": "evalfleet.testing.agents:flaky_infra",
                           "kwargs": {"marker_dir": str(markers), "failures": 1}}}
    case.plan["execution"] = {"max_attempts": 1}
    first, _ = case.run(settings)
    assert {r["status"] for r in _rows(settings, first)} == {"errored"}
    second, _ = case.run(settings)
    assert _reused(settings, second) == {}
    assert sorted(int(p.read_text()) for p in markers.iterdir()) == [2] * N  # executed twice
    assert {r["status"] for r in _rows(settings, second)} == {"completed"}


def test_reuse_false_reuses_nothing(tmp_path: Path, settings: Settings) -> None:
    case = Case(tmp_path)
    case.run(settings)
    case.plan["reuse"] = False
    second, ran = case.run(settings)
    assert ran == N and _reused(settings, second) == {}
    assert api.report(second, settings=settings)["agents"][0]["reuse"]["runs"] == 0


def test_crash_after_reused_rows_commit_then_resume_commits_each_once(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    case = Case(tmp_path)
    case.plan["execution"] = {"write_batch": 1}  # one reused row per commit
    case.run(settings)
    before = case.executions()

    real = Store.commit
    calls = []

    def crash_after_first(self: Store, ctx: Any, results: Any) -> Any:
        rep = real(self, ctx, results)
        calls.append(len(results))
        if len(calls) == 2:
            raise KeyboardInterrupt("driver killed after a commit")
        return rep

    monkeypatch.setattr(Store, "commit", crash_after_first)
    plan = tmp_path / "plan.yaml"
    with pytest.raises(KeyboardInterrupt):
        api.run(plan, settings=settings)
    monkeypatch.setattr(Store, "commit", real)
    store = Store(settings.home)
    try:
        unfinished = [e["eval_id"] for e in store.journal.list_evals()
                      if e["status"] != "completed"]
        assert len(unfinished) == 1
        second = unfinished[0]
        assert store.journal.counts(second).get("done") == 2
    finally:
        store.close()
    summary = api.resume(second, settings=settings)
    assert summary.status == "completed" and summary.done == N
    rows = _rows(settings, second)
    assert len(rows) == N == len({r["run_id"] for r in rows})  # each run committed once
    assert all(r["reused_from"] for r in rows)
    assert case.executions() == before  # and none executed


def test_rows_of_the_eval_being_run_are_never_sources(tmp_path: Path,
                                                     settings: Settings) -> None:
    case = Case(tmp_path)
    first, _ = case.run(settings)
    plan = load_plan(tmp_path / "plan.yaml")
    suite = load_suite_ref(plan.suite, plan)
    keys = plan_keys(suite.tasks, plan.agents, get_provider(
        settings.sandbox or plan.execution.sandbox).name, range(1))
    store = Store(settings.home)
    try:
        paths = store.all_results_paths()
        assert len(find_sources(store.home, paths, keys)) == N
        assert find_sources(store.home, paths, keys, exclude_eval=first) == {}
    finally:
        store.close()


def test_show_and_report_say_what_was_reused(tmp_path: Path, settings: Settings,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    case = Case(tmp_path)
    first, _ = case.run(settings)
    second, _ = case.run(settings)
    row = _rows(settings, second)[0]
    monkeypatch.setenv("COLUMNS", "200")

    def cli(*argv: str) -> str:
        monkeypatch.setattr(sys, "argv", ["evalfleet", *argv, "--home", str(settings.home)])
        try:
            main()
        except SystemExit as exc:
            assert exc.code in (0, None)
        return capsys.readouterr().out

    out = cli("show", row["run_id"])
    assert f"not executed; its result is run {row['reused_from']}'s" in out
    out = cli("report", second)
    assert f"counter@1: {N} runs reused from earlier evals (100.0%, not executed)" in out
    assert "runs reused" not in cli("report", first)


def test_another_simulated_model_setting_executes_again(tmp_path: Path,
                                                         settings: Settings) -> None:
    # the model server the plan starts is part of what a run's outcome depends on: the same
    # agent against a simulated model of another skill is another run
    def plan(skill: float) -> Path:
        path = tmp_path / f"sim-{skill}.yaml"
        path.write_text(yaml.safe_dump({
            "name": "sim", "suite": {"builtin": "humaneval", "limit": 3}, "reuse": True,
            "agents": [{"name": "a", "kind": "openai", "model": "sim-small",
                        "args": {"base_url": "{simulator}", "api_key_env": None,
                                 "tools": False}}],
            "simulator": {"models": {"sim-small": {"skill": skill, "latency_s": 0.01}},
                          "seed": 1}}))
        return path

    first = api.run(plan(0.0), settings=settings)
    again = api.run(plan(1.0), settings=settings)
    assert _reused(settings, again.eval_id) == {}
    same = api.run(plan(1.0), settings=settings)
    assert len(_reused(settings, same.eval_id)) == 3
    assert set(_reused(settings, same.eval_id).values()).isdisjoint(
        {r["run_id"] for r in _rows(settings, first.eval_id)})
