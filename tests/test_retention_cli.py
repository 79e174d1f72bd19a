"""`evalfleet retention show|apply|pin|unpin|pins` and what `show` says of a removed
trajectory, on a real eval run by the driver."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import committed_rows
from tests.store.conftest import fingerprint

from evalfleet import api
from evalfleet.cli.main import main
from evalfleet.settings import Settings

COLD = ["--hot-days", "0", "--warm-days", "0"]
WARM = ["--hot-days", "0", "--warm-days", "1000", "--warm-sample", "0"]


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.setenv("COLUMNS", "200")
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def done(make_plan: Callable[..., Path], settings: Settings) -> str:
    s = api.run(make_plan(n_tasks=12, name="ret", agents=[
        {"name": "noop", "version": v, "kind": "python",
         "args": {"callable": "evalfleet.testing.agents:noop"}} for v in ("1", "2")]),
        settings=settings)
    assert s.done == 24
    return s.eval_id


def _stable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(({k: v for k, v in r.items() if k != "trajectory_uri"} for r in rows),
                  key=lambda r: r["run_id"])


@pytest.mark.slow
def test_show_dry_run_pin_apply_and_a_removed_trajectory(
        done: str, settings: Settings, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    home = str(settings.home)
    rows = _stable(committed_rows(settings.home))
    code, out, err = _cli(["retention", "show", "--json", "--home", home], capsys, monkeypatch)
    assert code == 0, err
    (e,) = json.loads(out)["evals"]
    assert (e["tier"], e["rows"], e["trajectories"], e["applied"]) == ("hot", 24, 24, None)
    # a hot eval is left alone
    code, out, _ = _cli(["retention", "apply", "--home", home], capsys, monkeypatch)
    assert code == 0 and "hot, every trajectory kept" in out
    # pin one run by a prefix of its id, for a review
    run_ids = sorted(r["run_id"] for r in rows)
    pinned, gone = run_ids[3], run_ids[4]
    code, out, err = _cli(["retention", "pin", pinned[:14], "--kind", "review", "--note",
                           "flaky test", "--home", home], capsys, monkeypatch)
    assert code == 0 and f"run {pinned}" in out and "pinned as review" in out, err
    code, out, _ = _cli(["retention", "pins", "--json", "--home", home], capsys, monkeypatch)
    assert [(p["run_id"], p["kind"], p["note"]) for p in json.loads(out)["pins"]] == [
        (pinned, "review", "flaky test")]
    # the dry run says what a cold apply removes, and writes nothing
    before = fingerprint(settings.home)
    code, out, err = _cli(["retention", "apply", "--dry-run", "--json", *COLD, "--home", home],
                          capsys, monkeypatch)
    assert code == 0, err
    dry = json.loads(out)
    (e,) = dry["evals"]
    assert (e["tier"], e["status"], e["trajectories_removed"], e["trajectories_kept"],
            e["pinned_kept"]) == ("cold", "would_thin", 23, 1, 1)
    assert dry["totals"]["bytes_freed"] == e["bytes_freed"] > 0
    assert fingerprint(settings.home) == before
    code, out, _ = _cli(["retention", "apply", *COLD, "--home", home], capsys, monkeypatch)
    assert code == 0
    assert f"eval {done} (cold" in out and "removed 23 trajectories, kept 1 (1 pinned)" in out
    assert _stable(committed_rows(settings.home)) == rows  # every row, once, unchanged
    # show: the removed trajectory is said to be removed, the pinned one is there
    code, out, err = _cli(["show", gone, "--home", home], capsys, monkeypatch)
    assert code == 0, err
    assert "trajectory removed by retention (cold, applied " in out
    assert "the trajectory file is missing" not in out
    shown = api.show_run(gone, settings=settings)
    assert shown["trajectory_removed"].startswith("removed by retention (cold")
    assert shown["run"]["trajectory_uri"] == "" and shown["events"] == []
    kept = api.show_run(pinned, settings=settings)
    assert kept["trajectory_found"] and kept["events"] and not kept["trajectory_removed"]
    code, out, _ = _cli(["retention", "show", "--json", *COLD, "--home", home], capsys,
                        monkeypatch)
    (e,) = json.loads(out)["evals"]
    assert (e["applied"], e["trajectories"], e["trajectories_removed"], e["pinned"]) == (
        "cold", 1, 23, 1)
    code, out, _ = _cli(["retention", "show", *COLD, "--home", home], capsys, monkeypatch)
    assert code == 0 and done in out and "cold" in out
    # unpinned, the next apply removes it too
    code, out, _ = _cli(["retention", "unpin", pinned, "--home", home], capsys, monkeypatch)
    assert code == 0 and "1 pin(s) removed" in out
    code, out, _ = _cli(["retention", "apply", "--json", *COLD, "--home", home], capsys,
                        monkeypatch)
    assert json.loads(out)["evals"][0]["trajectories_removed"] == 1
    assert api.show_run(pinned, settings=settings)["trajectory_removed"]


def test_warm_apply_keeps_one_per_stratum_at_sample_zero(
        done: str, settings: Settings, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _cli(["retention", "apply", "--json", *WARM, "--home",
                           str(settings.home)], capsys, monkeypatch)
    assert code == 0, err
    (e,) = json.loads(out)["evals"]
    _, strata = api.query("SELECT count(DISTINCT (agent_version, category, passed)) FROM runs",
                          settings=settings)
    assert e["tier"] == "warm" and e["trajectories_kept"] == strata[0][0]
    assert e["trajectories_removed"] == 24 - strata[0][0]


@pytest.mark.parametrize(("argv", "env", "words"), [
    (["retention", "pin", "nosuchrun", "--kind", "review"], {}, "no run 'nosuchrun'"),
    (["retention", "pin", "x", "--kind", "lunch"], {}, "pin kind must be one of"),
    (["retention", "apply", "--hot-days", "10", "--warm-days", "5"], {},
     "warm days (5.0) must be at least the hot days (10.0)"),
    (["retention", "show", "--warm-sample", "2"], {}, "warm sample must be a fraction"),
    (["retention", "apply", "--dry-run"], {"EVALFLEET_RETENTION_HOT_DAYS": "soon"},
     "EVALFLEET_RETENTION_HOT_DAYS must be a number, not 'soon'"),
    (["retention", "apply", "nosucheval"], {}, "no eval 'nosucheval'"),
])
def test_mistakes_are_one_line_and_exit_2(
        done: str, settings: Settings, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str],
        words: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    before = fingerprint(settings.home)
    code, out, err = _cli([*argv, "--home", str(settings.home)], capsys, monkeypatch)
    assert code == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert words in err, err
    assert fingerprint(settings.home) == before


def test_no_home_is_no_evals_and_creates_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for sub in (["show"], ["apply", "--dry-run"], ["apply"], ["pins"]):
        code, _, err = _cli(["retention", *sub, "--home", str(tmp_path / "none")], capsys,
                            monkeypatch)
        assert code == 2 and "no evals in" in err, (sub, err)
    assert not (tmp_path / "none").exists()
