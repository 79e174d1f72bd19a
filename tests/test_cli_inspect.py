"""`show`, `suites`, `tasks`, `plan check` and `status` as a user sees them.

A small home is made once for the module by two fast evals: one runs a
noop agent on a repo-tasks task (so a run fails with a per-test report), the other has a long
plan name (so its eval id crowds the status table) and enough runs that two ids share a prefix.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalfleet.cli import main

LONG_NAME = "a-plan-name-long-enough-to-crowd-the-status-table"


def _write_plan(path: Path, **fields: Any) -> Path:
    path.write_text(yaml.safe_dump(fields, sort_keys=False))
    return path


NOOP = {"name": "noop", "version": "1", "kind": "python",
        "args": {"callable": "evalfleet.testing.agents:noop"}}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from evalfleet import api
    from evalfleet.settings import Settings

    root = tmp_path_factory.mktemp("inspect")
    home = root / "home"
    repo = _write_plan(root / "repo.yaml", name="repo",
                       suite={"builtin": "repo-tasks", "ids": ["calc-division-by-zero"]},
                       agents=[NOOP])
    with (root / "suite.jsonl").open("w") as fh:
        for i in range(9):
            fh.write(json.dumps({"id": f"t{i}", "input": "say ok", "target": "ok",
                                 "scorer": {"kind": "exact"}}) + "\n")
    long = _write_plan(root / "long.yaml", name=LONG_NAME, suite={"path": "suite.jsonl"},
                       agents=[NOOP], runs_per_task=2)
    for plan in (repo, long):
        summary = api.run(plan, settings=Settings(home=home, sandbox="local"))
        assert summary.status == "completed", summary
    yield home


def _run_main(argv: list[str], monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["evalfleet", *argv])
    monkeypatch.setenv("COLUMNS", "200")
    code: int = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _evals(home: Path) -> dict[str, str]:
    from evalfleet import api
    from evalfleet.settings import Settings

    return {e["plan_name"]: e["eval_id"]
            for e in api.status(settings=Settings(home=home))["evals"]}


def _run_ids(home: Path, eval_id: str) -> list[str]:
    from evalfleet import api
    from evalfleet.settings import Settings

    _, rows = api.query("SELECT run_id FROM runs ORDER BY 1", eval_id=eval_id,
                        settings=Settings(home=home))
    return [row[0] for row in rows]


# --- status -----------------------------------------------------------------------------------

def _status_at(columns: int, argv: list[str], monkeypatch: pytest.MonkeyPatch,
               capsys: pytest.CaptureFixture[str]) -> list[str]:
    from rich.console import Console

    # the module (evalfleet.cli.main is also the name of the entry-point function)
    cli_main = importlib.import_module("evalfleet.cli.main")
    # the console a terminal of that width gets (rich reads COLUMNS when it is created)
    monkeypatch.setattr(cli_main, "out", Console(width=columns))
    code, out, err = _run_main(argv, monkeypatch, capsys)
    assert code == 0, err
    return out.splitlines()


@pytest.mark.parametrize("columns", [80, 120])
def test_status_prints_whole_eval_ids(home: Path, columns: int,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    ids = _evals(home)
    assert len(ids[LONG_NAME]) > 60  # longer than its share of an 80-column table
    lines = _status_at(columns, ["status", "--home", str(home)], monkeypatch, capsys)
    for eval_id in ids.values():
        assert any(eval_id in line for line in lines), (eval_id, lines)


@pytest.mark.parametrize("columns", [80, 120])
def test_status_of_one_eval_prints_whole_id_and_agent(
        home: Path, columns: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    eval_id = _evals(home)[LONG_NAME]
    lines = _status_at(columns, ["status", eval_id, "--home", str(home)], monkeypatch, capsys)
    assert any(eval_id in line for line in lines), lines
    assert any("noop@1" in line for line in lines), lines


# --- show -------------------------------------------------------------------------------------

def test_show_explains_a_failed_run(home: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    run_id = _run_ids(home, _evals(home)["repo"])[0]
    code, out, err = _run_main(["show", run_id[:10], "--home", str(home)], monkeypatch, capsys)
    assert code == 0, err
    assert run_id in out and "calc-division-by-zero" in out and "noop@1" in out
    assert "answer=ok" in out  # the agent's answer event, from the trajectory
    # the scorer's per-test report: which expected tests failed, with their output
    assert "of 4 expected tests passed" in out, out
    assert "test_hidden_division.DivisionTest.test_divide_by_zero" in out
    assert "ZeroDivisionError" in out


def test_show_json_has_row_events_in_order_and_report(
        home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    run_id = _run_ids(home, _evals(home)["repo"])[0]
    code, out, err = _run_main(["show", run_id, "--home", str(home), "--json"], monkeypatch,
                               capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["run"]["run_id"] == run_id and data["run"]["task_id"] == "calc-division-by-zero"
    kinds = [e["kind"] for e in data["events"]]
    assert kinds.index("answer") < kinds.index("scorer")
    times = [e["t"] for e in data["events"]]
    assert times == sorted(times)
    (report,) = data["scorer_reports"]
    failing = report.get("failing") or report.get("tests")
    assert "test_hidden_division.DivisionTest.test_divide_by_zero" in json.dumps(failing)


def test_show_renders_unknown_report_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    """A scorer report of another shape (a `tests` list, unknown fields) is still shown."""
    from rich.console import Console

    from evalfleet.cli.inspect_cmds import render_run

    data = {"run": {"run_id": "r1", "eval_id": "e1", "status": "failed", "score": 0.0,
                    "novel_column": "kept"},
            "events": [{"t": 1.0, "kind": "thought", "text": "line one\nline two"},
                       {"t": 2.5, "kind": "scorer", "scorer": "plugin", "verdict": "no",
                        "tests": [{"name": "t_ok", "outcome": "passed"},
                                  {"name": "t_bad", "outcome": "failed", "output": "boom!"}]}]}
    data["scorer_reports"] = [data["events"][1]]
    render_run(Console(width=100), data)
    out = capsys.readouterr().out
    assert "novel_column=kept" in out
    assert "thought" in out and "line two" in out and "+1.50s" in out
    assert "verdict=no" in out
    assert "FAILED t_bad" in out and "boom!" in out and "t_ok" in out


def test_show_prefix_must_be_unique_and_known(home: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    ids = _run_ids(home, _evals(home)[LONG_NAME])
    assert len(ids) == 18
    firsts = [i[0] for i in ids]
    shared = next(c for c in firsts if firsts.count(c) > 1)  # 18 ids, 16 hex digits
    code, _, err = _run_main(["show", shared, "--home", str(home)], monkeypatch, capsys)
    assert code == 2 and "matches" in err and "runs" in err, err
    code, _, err = _run_main(["show", "zzzz", "--home", str(home)], monkeypatch, capsys)
    assert code == 2 and "no committed run 'zzzz'" in err, err
    assert "Traceback" not in err


def test_show_creates_no_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run_main(["show", "abc", "--home", str(tmp_path / "none")], monkeypatch,
                             capsys)
    assert code == 2, err
    assert not (tmp_path / "none").exists()


# --- suites and tasks ---------------------------------------------------------------------------

def test_suites_lists_the_builtins(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run_main(["suites", "--json"], monkeypatch, capsys)
    assert code == 0, err
    by_name = {s["suite"]: s for s in json.loads(out)}
    assert set(by_name) == {"humaneval", "repo-tasks"}
    assert by_name["humaneval"]["tasks"] == 164
    assert by_name["repo-tasks"]["tasks"] == 30
    for s in by_name.values():
        assert sum(s["categories"].values()) == s["tasks"]
    code, out, _ = _run_main(["suites"], monkeypatch, capsys)
    assert code == 0 and "humaneval" in out and "164" in out and "bugfix" in out


def test_tasks_lists_and_filters(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run_main(["tasks", "repo-tasks", "--json"], monkeypatch, capsys)
    assert code == 0, err
    every = json.loads(out)["tasks_listed"]
    assert len(every) == 30
    assert {t["scorer"] for t in every} == {"tests"}
    code, out, _ = _run_main(["tasks", "repo-tasks", "--category", "bugfix", "--json"],
                             monkeypatch, capsys)
    bugfix = json.loads(out)["tasks_listed"]
    assert bugfix == [t for t in every if t["category"] == "bugfix"] and bugfix
    code, out, _ = _run_main(["tasks", "repo-tasks", "--category", "bugfix"], monkeypatch,
                             capsys)
    assert code == 0 and "calc-division-by-zero" in out and "inventory-csv-export" not in out


def test_tasks_of_a_suite_file_and_bad_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "s.jsonl"
    suite.write_text(json.dumps({"id": "only", "input": "x", "target": "y", "category": "c",
                                 "difficulty": 4, "scorer": {"kind": "regex",
                                                             "args": {"pattern": "y"}}}) + "\n")
    code, out, err = _run_main(["tasks", str(suite), "--json"], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(out)["tasks_listed"] == [
        {"id": "only", "category": "c", "difficulty": 4, "scorer": "regex", "network": False,
         "timeout_s": 120.0}]
    code, _, err = _run_main(["tasks", "imagenet"], monkeypatch, capsys)
    assert code == 2 and "no suite 'imagenet'" in err
    code, _, err = _run_main(["tasks", "repo-tasks", "--category", "poetry"], monkeypatch, capsys)
    assert code == 2 and "poetry" in err and "Traceback" not in err


# --- plan check -------------------------------------------------------------------------------

def test_plan_check_says_what_would_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EVALFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EVALFLEET_SANDBOX", "local")
    with (tmp_path / "s.jsonl").open("w") as fh:
        for i, (scorer, network) in enumerate([({"kind": "exact"}, False),
                                               ({"kind": "exact"}, True),
                                               ({"kind": "python", "args": {
                                                   "callable": "evalfleet.testing.agents:noop"}},
                                                False)]):
            fh.write(json.dumps({"id": f"t{i}", "input": "x", "target": "ok", "category": "c",
                                 "scorer": scorer, "network": network}) + "\n")
    plan = _write_plan(tmp_path / "p.yaml", name="p", suite={"path": "s.jsonl"},
                       agents=[NOOP, {**NOOP, "version": "2"}], runs_per_task=3)
    code, out, err = _run_main(["plan", "check", str(plan), "--json"], monkeypatch, capsys)
    assert code == 0, err
    r = json.loads(out)
    assert r["runs_planned"] == 3 * 2 * 3
    assert r["suite"]["tasks"] == 3 and r["sandbox"] == "local"
    assert [a["label"] for a in r["agents"]] == ["noop@1", "noop@2"]
    warnings = " ".join(r["warnings"])
    assert "noop@1" in warnings and "noop@2" in warnings and "unsandboxed" in warnings
    assert "python scorer" in warnings and "network" in warnings and "t1" in warnings
    code, out, _ = _run_main(["plan", "check", str(plan)], monkeypatch, capsys)
    assert code == 0
    assert "OK" in out and "runs planned: 18" in out and "warning:" in out
    assert not (tmp_path / "home").exists()  # checking runs and creates nothing


def test_plan_check_rejects_what_run_rejects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("EVALFLEET_HOME", str(tmp_path / "home"))
    corpus = Path(__file__).parent / "corpus" / "bad_plans"
    monkeypatch.syspath_prepend(str(corpus))
    for name, expected in [("06-negative-runs.yaml", "06-negative-runs.yaml:5: field "
                                                     "'runs_per_task'"),
                           ("35-agent-import-raises.yaml", "agents.1.args.callable"),
                           ("31-yaml-bomb.yaml", "expands to more than")]:
        code, out, err = _run_main(["plan", "check", str(corpus / name)], monkeypatch, capsys)
        assert code == 2, (name, err)
        assert expected in " ".join(err.split()), err
        assert out == "" and "Traceback" not in err
    assert not (tmp_path / "home").exists()


def test_plan_check_of_the_demo_plan(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    import evalfleet

    demo = Path(evalfleet.__file__).parent / "plans" / "demo.yaml"
    code, out, err = _run_main(["plan", "check", str(demo), "--json"], monkeypatch, capsys)
    assert code == 0, err
    r = json.loads(out)
    assert r["simulated_model"] is True
    assert r["runs_planned"] == 164 * 2 * r["runs_per_task"]
    assert [a["kind"] for a in r["agents"]] == ["openai", "openai"]
    assert not any("unsandboxed" in w for w in r["warnings"])  # openai agents are not python
