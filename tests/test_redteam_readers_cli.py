"""Red-team findings on the readers and the command line, each pinned by a test.

What a user's shell sees is checked through the real entry point (``python -m evalfleet``):
exit code, one error line, no traceback, valid JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalfleet.settings import Settings


def _run(*args: str, cwd: Path, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "100", "EVALFLEET_HOME": str(home or cwd / "home")}
    return subprocess.run([sys.executable, "-m", "evalfleet", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=180)


def _strict_json(text: str) -> Any:
    """Parse JSON as any strict parser would: NaN and Infinity are not JSON."""

    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def _one_line_error(r: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "──" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


_AGENTS = [{"name": "noop", "version": "1", "kind": "python",
            "args": {"callable": "evalfleet.testing.agents:noop"}},
           {"name": "echo", "version": "1", "kind": "python",
            "args": {"callable": "evalfleet.testing.agents:echo_target"}}]


def _suite(path: Path, categories: list[str]) -> Path:
    with path.open("w") as fh:
        for i, cat in enumerate(categories):
            fh.write(json.dumps({"id": f"t{i}", "input": "say ok", "category": cat,
                                 "difficulty": 1, "target": "ok",
                                 "scorer": {"kind": "exact"}}) + "\n")
    return path


def _plan(tmp_path: Path, categories: list[str], name: str = "p") -> Path:
    suite = _suite(tmp_path / f"{name}.jsonl", categories)
    plan = tmp_path / f"{name}.yaml"
    plan.write_text(yaml.safe_dump({"name": name, "suite": {"path": str(suite)},
                                    "agents": _AGENTS}))
    return plan


def _eval(tmp_path: Path, home: Path, categories: list[str]) -> str:
    from evalfleet import api

    summary = api.run(_plan(tmp_path, categories), settings=Settings(home=home))
    return summary.eval_id


# -- user data is never read as Rich markup ------------------------------------------------------

MARKUP_CATEGORIES = ["[/bad]", "[bold red]loud", "plain"]


@pytest.fixture(scope="module")
def markup_eval(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("markup")
    home = tmp / "home"
    return home, _eval(tmp, home, MARKUP_CATEGORIES)


def test_tasks_prints_a_category_that_looks_like_markup(tmp_path: Path) -> None:
    suite = _suite(tmp_path / "s.jsonl", MARKUP_CATEGORIES)
    r = _run("tasks", str(suite), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[/bad]" in r.stdout and "[bold red]loud" in r.stdout


def test_report_prints_a_category_that_looks_like_markup(markup_eval: tuple[Path, str],
                                                         tmp_path: Path) -> None:
    home, eval_id = markup_eval
    r = _run("report", eval_id, cwd=tmp_path, home=home)
    assert r.returncode == 0, r.stderr
    assert "[/bad]" in r.stdout and "[bold red]loud" in r.stdout
    # the legend of the interval notation is shown, not eaten as a markup tag
    assert "[low-high]" in r.stdout


def test_compare_prints_a_category_that_looks_like_markup(markup_eval: tuple[Path, str],
                                                          tmp_path: Path) -> None:
    home, eval_id = markup_eval
    r = _run("compare", f"{eval_id}/noop@1", f"{eval_id}/echo@1", cwd=tmp_path, home=home)
    assert r.returncode == 0, r.stderr
    assert "[/bad]" in r.stdout and "[bold red]loud" in r.stdout


def test_run_prints_its_report_with_a_markup_category(tmp_path: Path) -> None:
    plan = _plan(tmp_path, MARKUP_CATEGORIES)
    r = _run("run", str(plan), "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[/bad]" in r.stdout


# -- --home that is not a directory ---------------------------------------------------------------

@pytest.mark.parametrize("argv", [("run", "PLAN", "--quiet"), ("resume", "x", "--quiet"),
                                  ("demo", "--limit", "1", "--quiet")], ids=" ".join)
def test_driver_commands_with_home_a_file_fail_in_one_line(argv: tuple[str, ...],
                                                           tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    plan = _plan(tmp_path, ["c"])
    args = [str(plan) if a == "PLAN" else a for a in argv]
    r = _run(*args, "--home", str(afile), cwd=tmp_path)
    line = _one_line_error(r)
    # resume looks for the eval first, read-only: "no evals in HOME", like the readers
    assert str(afile) in line and ("not a directory" in line or "no evals" in line)
    assert afile.read_text() == "not a directory\n"


def test_resume_in_a_missing_home_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "typo"
    r = _run("resume", "x", "--quiet", "--home", str(home), cwd=tmp_path)
    assert "no evals" in _one_line_error(r)
    assert not home.exists()


def test_resume_of_an_unknown_eval_writes_nothing(plain_eval: tuple[Path, str],
                                                  tmp_path: Path) -> None:
    home, _ = plain_eval
    before = (home / "journal.db").read_bytes()
    r = _run("resume", "no-such-eval", "--quiet", cwd=tmp_path, home=home)
    assert "no eval" in _one_line_error(r)
    assert (home / "journal.db").read_bytes() == before


def test_run_with_home_under_a_file_fails_in_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = _run("run", str(_plan(tmp_path, ["c"])), "--quiet", "--home", str(afile / "h"),
             cwd=tmp_path)
    _one_line_error(r)


# -- --json is JSON --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def plain_eval(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("plain")
    home = tmp / "home"
    return home, _eval(tmp, home, ["a", "b", "c"])


def test_query_json_has_no_infinity_tokens(plain_eval: tuple[Path, str], tmp_path: Path) -> None:
    home, _ = plain_eval
    r = _run("query", "SELECT 'inf'::DOUBLE AS a, '-inf'::FLOAT AS b, 'nan'::DOUBLE AS c, "
             "[1.0, 'inf'::DOUBLE] AS l", "--json", cwd=tmp_path, home=home)
    assert r.returncode == 0, r.stderr
    assert _strict_json(r.stdout) == [{"a": None, "b": None, "c": None, "l": [1.0, None]}]


def test_query_json_keeps_every_column_of_the_same_name(plain_eval: tuple[Path, str],
                                                        tmp_path: Path) -> None:
    home, _ = plain_eval
    r = _run("query", "SELECT 1 AS a, 2 AS a, 3 AS a_1", "--json", cwd=tmp_path, home=home)
    assert r.returncode == 0, r.stderr
    row = _strict_json(r.stdout)[0]
    assert sorted(row.values()) == [1, 2, 3], row


def test_plan_power_with_a_vanishing_delta_is_a_usage_error(tmp_path: Path) -> None:
    r = _run("plan", "power", "--omega2", "0.1", "--sigma2", "0.1", "--delta", "1e-300",
             cwd=tmp_path)
    assert "--delta" in _one_line_error(r) or "delta" in r.stderr


def test_plan_power_json_is_strict_json(tmp_path: Path) -> None:
    r = _run("plan", "power", "--omega2", "0.1", "--sigma2", "0.1", "--delta", "1e-150",
             "--tasks", "10", "--json", cwd=tmp_path)
    assert r.returncode in (0, 2), r.stderr
    if r.returncode == 0:
        _strict_json(r.stdout)


# -- compare never claims certainty from a handful of ties ---------------------------------------

def test_compare_of_all_ties_gives_no_point_interval(tmp_path: Path) -> None:
    from evalfleet import api

    home = tmp_path / "home"
    plan = tmp_path / "ties.yaml"
    suite = _suite(tmp_path / "ties.jsonl", ["a", "a", "b", "b", "c", "c"])
    agents = [{**_AGENTS[0], "name": n} for n in ("noop", "same")]
    plan.write_text(yaml.safe_dump({"name": "ties", "suite": {"path": str(suite)},
                                    "agents": agents}))
    eval_id = api.run(plan, settings=Settings(home=home)).eval_id
    cmp = api.compare([f"{eval_id}/noop@1", f"{eval_id}/same@1"], settings=Settings(home=home))
    d = cmp["diff"]
    assert d["estimate"] == 0.0 and d["p_value"] == 1.0
    # six tied tasks do not show the difference is exactly 0: no zero-width interval
    assert not (d["ci_low"] == d["ci_high"] == 0.0), d
    assert "SE 0" in d["method"]
    for c in cmp["by_category"]:
        assert c["ci_low"] is None or c["ci_low"] < c["ci_high"], c
    r = _run("compare", f"{eval_id}/noop@1", f"{eval_id}/same@1", cwd=tmp_path, home=home)
    assert r.returncode == 0, r.stderr
    assert "+0.0 to +0.0" not in r.stdout
    for fmt in ("--markdown", "--html"):
        r = _run("compare", f"{eval_id}/noop@1", f"{eval_id}/same@1", fmt, "-", cwd=tmp_path,
                 home=home)
        assert r.returncode == 0, r.stderr


# -- a home on a read-only file system (an archive, a snapshot) can still be read ---------------

def test_readers_read_a_home_on_a_read_only_file_system(plain_eval: tuple[Path, str],
                                                        tmp_path: Path) -> None:
    import shutil

    src, eval_id = plain_eval
    home = tmp_path / "archive"
    shutil.copytree(src, home)
    wal = home / "journal.db-wal"
    if wal.exists():
        assert wal.stat().st_size == 0  # the driver checkpointed and closed
        wal.unlink()
    (home / "journal.db-shm").unlink(missing_ok=True)
    mnt = tmp_path / "ro"
    mnt.mkdir()
    bind = subprocess.run(["mount", "--bind", str(home), str(mnt)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(mnt)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        for argv in (("status",), ("report", eval_id),
                     ("query", "SELECT count(*) AS n FROM runs", "--json")):
            r = _run(*argv, cwd=tmp_path, home=mnt)
            assert r.returncode == 0, (argv, r.stderr)
        assert _strict_json(r.stdout) == [{"n": 6}]
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_query_with_an_empty_eval_id_is_refused_not_all_evals(plain_eval: tuple[Path, str],
                                                              tmp_path: Path) -> None:
    # `evalfleet query ... --eval "$EVAL"` with EVAL unset must not quietly mix every eval
    home, _ = plain_eval
    r = _run("query", "SELECT count(*) FROM runs", "--eval", "", cwd=tmp_path, home=home)
    assert "no eval" in _one_line_error(r)


def test_plan_power_never_says_zero_tasks_are_needed(tmp_path: Path) -> None:
    r = _run("plan", "power", "--omega2", "0", "--sigma2", "0", "--tasks", "50", "--json",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = _strict_json(r.stdout)
    for row in doc["rows"]:
        assert row["tasks_needed"] != 0 and row["mde"] != 0.0, row
    assert any("assumed variance" in n for n in doc["notes"]), doc["notes"]
    r = _run("plan", "power", "--omega2", "0", "--sigma2", "0", "--tasks", "50", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("target", ["missing-dir/r.md", "."], ids=["missing folder", "a directory"])
@pytest.mark.parametrize("option", ["--markdown", "--html"])
def test_export_to_an_unwritable_path_is_one_line(plain_eval: tuple[Path, str], tmp_path: Path,
                                                  target: str, option: str) -> None:
    home, eval_id = plain_eval
    r = _run("report", eval_id, option, target, cwd=tmp_path, home=home)
    line = _one_line_error(r)
    assert option in line and "cannot write" in line


@pytest.mark.parametrize("url", ["foo://x", "not a url"])
@pytest.mark.parametrize("argv", [("status",), ("report", "x"), ("run", "PLAN", "--quiet")],
                         ids=" ".join)
def test_a_bad_journal_url_is_one_line(url: str, argv: tuple[str, ...], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALFLEET_JOURNAL_URL", url)
    plan = _plan(tmp_path, ["c"])
    r = _run(*[str(plan) if a == "PLAN" else a for a in argv], cwd=tmp_path)
    assert "EVALFLEET_JOURNAL_URL" in _one_line_error(r)


@pytest.mark.parametrize("budget", ["inf", "1e300"])
def test_resume_with_an_absurd_budget_is_one_line(plain_eval: tuple[Path, str], tmp_path: Path,
                                                  budget: str) -> None:
    home, eval_id = plain_eval
    r = _run("resume", eval_id, "--budget", budget, "--quiet", cwd=tmp_path, home=home)
    assert "--budget" in _one_line_error(r)


def test_readers_with_a_committed_file_missing_say_so_in_one_line(
        plain_eval: tuple[Path, str], tmp_path: Path) -> None:
    import shutil

    src, eval_id = plain_eval
    home = tmp_path / "copy"
    shutil.copytree(src, home)
    next((home / "results" / f"eval_id={eval_id}").glob("*.parquet")).unlink()
    for argv in (("report", eval_id), ("query", "SELECT 1 FROM runs"), ("show", "0"),
                 ("compare", f"{eval_id}/noop@1", f"{eval_id}/echo@1"),
                 ("plan", "power", "--from", eval_id, "--base", "noop@1")):
        r = _run(*argv, cwd=tmp_path, home=home)
        assert "missing" in _one_line_error(r, code=1), argv


def test_report_of_one_task_does_not_say_its_se_is_0(tmp_path: Path) -> None:
    from evalfleet import api

    home = tmp_path / "home"
    plan = _plan(tmp_path, ["only"])
    plan.write_text(yaml.safe_dump({**yaml.safe_load(plan.read_text()), "runs_per_task": 2}))
    eval_id = api.run(plan, settings=Settings(home=home)).eval_id
    rep = api.report(eval_id, settings=Settings(home=home))
    for a in rep["agents"]:
        o = a["overall"]
        assert o["se"] is None and o["ci_low"] < o["ci_high"], o
        assert "SE 0" not in o["method"] and "no SE" in o["method"], o["method"]
