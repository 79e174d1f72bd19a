"""`evalfleet import jsonl`: the generic format goes through the driver's exactly-once write path.

Each test proves one guarantee: rows land with every field the line gave; a bad line is one
line naming the line and field, and nothing is written; importing twice adds nothing; a crash
midway is finished by the next import without a duplicate; a different file cannot pass for an
eval already imported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from evalfleet import api
from evalfleet.api import imports
from evalfleet.cli import main
from evalfleet.errors import SpecError
from evalfleet.settings import Settings
from evalfleet.store import Store


def _rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for agent, version, skill in (("coder", "1", 0.5), ("coder", "2", 0.8)):
        for t in range(6):
            for k in range(2):
                ok = (t * 7 + k * 3) % 10 < skill * 10
                rows.append({
                    "eval": "nightly-1", "task_id": f"t{t}", "agent": agent,
                    "agent_version": version, "model": f"m-{version}", "repeat": k,
                    "passed": ok, "tokens_in": 100 + t, "tokens_cached": 10,
                    "tokens_out": 20 + k, "cost_usd": 0.01 * (t + 1), "latency_s": 1.5 + k,
                    "started_at": "2026-03-01T10:00:00Z", "finished_at": 1772359205.5,
                    "category": "coding" if t % 2 else "math", "difficulty": 1 + t % 5,
                    "repository": f"repo{t % 3}", "input": f"task {t}",
                    "metrics": {"tests_passed": float(t)}})
    rows.append({"eval": "nightly-1", "task_id": "t0", "agent": "coder", "agent_version": "1",
                 "model": "m-1", "repeat": 2, "error_kind": "infra_error",
                 "error": "sandbox died", "category": "math", "difficulty": 1,
                 "repository": "repo0", "input": "task 0"})
    return rows


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cli(argv: list[str], monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["evalfleet", *argv])
    monkeypatch.setenv("COLUMNS", "200")
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _count(settings: Settings) -> int:
    return int(api.query("SELECT count(*) FROM runs", settings=settings)[1][0][0])


def test_rows_land_with_every_field(tmp_path: Path, settings: Settings) -> None:
    path = _write(tmp_path / "runs.jsonl", _rows())
    (done,) = api.import_jsonl(path, settings=settings)
    assert (done.eval_id, done.outcome, done.runs, done.committed, done.errored, done.tasks) \
        == ("nightly-1", "imported", 25, 25, 1, 6)
    assert done.agents == ("coder@1", "coder@2")
    _, rows = api.query(
        "SELECT task_id, agent_version, model, \"repeat\", status, score, passed, error_kind, "
        "tokens_in, tokens_cached, tokens_out, cost_usd, latency_s, category, difficulty, "
        "repository, metrics['tests_passed'], epoch(started_at), epoch(finished_at) "
        "FROM runs ORDER BY agent_version, task_id, \"repeat\"", settings=settings)
    got = {(r[0], r[1], r[3]): r for r in rows}
    src = {(r["task_id"], r["agent_version"], r["repeat"]): r for r in _rows()}
    assert set(got) == set(src)
    for key, r in src.items():
        g = got[key]
        if "error_kind" in r:
            assert g[4:8] == ("errored", None, None, "infra_error")
            continue
        assert g[2] == r["model"]
        assert g[4:8] == ("completed", 1.0 if r["passed"] else 0.0, r["passed"], None)
        assert g[8:13] == (r["tokens_in"], 10, r["tokens_out"], pytest.approx(r["cost_usd"]),
                           r["latency_s"])
        assert g[13:17] == (r["category"], r["difficulty"], r["repository"], float(key[0][1]))
        assert g[17:] == (1772359200.0, 1772359205.5)
    # the eval reads like any other: report, status, compare of the two versions
    rep = api.report("nightly-1", settings=settings)
    assert rep["coverage"]["errored"] == 1 and rep["coverage"]["scored"] == 24
    v1 = next(a for a in rep["agents"] if a["agent_version"] == "1")
    assert v1["excluded"]["infra_error"] == 1 and v1["overall"]["n_runs"] == 12
    assert api.status(settings=settings)["evals"][0]["status"] == "completed"
    cmp = api.compare(["nightly-1/coder@1", "nightly-1/coder@2"], settings=settings)
    assert cmp["n_shared_tasks"] == 6 and cmp["diff"]["n_tasks"] == 6


def test_import_twice_adds_nothing(tmp_path: Path, settings: Settings,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "runs.jsonl", _rows())
    api.import_jsonl(path, settings=settings)
    (again,) = api.import_jsonl(path, settings=settings)
    assert (again.outcome, again.committed) == ("already_imported", 0)
    assert _count(settings) == 25
    code, out, _ = _cli(["import", "jsonl", str(path), "--home", str(settings.home), "--json"],
                        monkeypatch, capsys)
    assert code == 0 and json.loads(out)["imports"][0]["outcome"] == "already_imported"
    assert _count(settings) == 25


def test_another_file_cannot_pass_for_an_imported_eval(tmp_path: Path,
                                                       settings: Settings) -> None:
    api.import_jsonl(_write(tmp_path / "a.jsonl", _rows()), settings=settings)
    changed = _rows()
    changed[0]["task_id"] = "t99"
    with pytest.raises(SpecError, match="imported before from a different"):
        api.import_jsonl(_write(tmp_path / "b.jsonl", changed), settings=settings)
    assert _count(settings) == 25


def test_a_crash_midway_is_finished_by_the_next_import(tmp_path: Path, settings: Settings,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "runs.jsonl", _rows())
    monkeypatch.setattr(imports, "IMPORT_BATCH", 10)
    real = Store.commit
    calls = {"n": 0}

    def crash_on_third(self: Store, ctx: Any, results: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the process dies between two batches
        return real(self, ctx, results)

    monkeypatch.setattr(Store, "commit", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        api.import_jsonl(path, settings=settings)
    assert _count(settings) == 20
    assert api.status(settings=settings)["evals"][0]["status"] == "interrupted"
    monkeypatch.setattr(Store, "commit", real)
    (done,) = api.import_jsonl(path, settings=settings)
    assert (done.outcome, done.committed, done.status) == ("resumed", 5, "completed")
    _, rows = api.query("SELECT count(*), count(DISTINCT run_id) FROM runs", settings=settings)
    assert rows == [(25, 25)]


@pytest.mark.parametrize(("line", "fix", "expected"), [
    ("{not json", None, "runs.jsonl:3: not valid JSON"),
    # json.loads raises a plain ValueError for an integer it cannot hold
    ('{"score": 1' + "0" * 5000 + "}", None,
     "runs.jsonl:3: not valid JSON (Exceeds the limit (4300 digits) for integer string "
     "conversion: value has 5001 digits)"),
    ("[1, 2]", None, "runs.jsonl:3: expected a JSON object, got list"),
    (None, {"colour": "red"}, "runs.jsonl:3: field 'colour' Extra inputs are not permitted"),
    (None, {"score": 1.5}, "runs.jsonl:3: field 'score' Input should be less than or equal"),
    (None, {"difficulty": 9}, "runs.jsonl:3: field 'difficulty'"),
    (None, {"passed": None}, "runs.jsonl:3: a completed run needs a score or passed"),
    (None, {"task_id": "has space"}, "runs.jsonl:3: field 'task_id'"),
    (None, {"repeat": 0, "task_id": "t0"}, "runs.jsonl:3: field 'repeat' run coder@1 t0 "
                                           "repeat 0 is already on line 1"),
    (None, {"category": "other", "task_id": "t0", "repeat": 5},
     "runs.jsonl:3: field 'category' task t0 has another category on line 1"),
])
def test_a_bad_line_is_one_line_exit_2_and_writes_nothing(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], line: str | None, fix: dict[str, Any] | None,
        expected: str) -> None:
    rows = _rows()
    path = tmp_path / "runs.jsonl"
    texts = [json.dumps(r) for r in rows]
    texts[2] = line if line is not None else json.dumps({**rows[2], **(fix or {})})
    path.write_text("\n".join(texts) + "\n")
    code, out, err = _cli(["import", "jsonl", str(path), "--home", str(settings.home)],
                          monkeypatch, capsys)
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err, err
    assert not settings.home.exists()  # checked whole before anything is written
