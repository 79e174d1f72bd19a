"""`evalfleet export`: the committed rows as one Parquet or CSV file, equal to `evalfleet query`'s.

Also: the Parquet schema carries each column's description; --where and eval ids select as
`slice` and `query` do; the export is a reader (creates and changes nothing in the home, and
refuses to write into it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from evalfleet import api
from evalfleet.cli import main
from evalfleet.errors import SpecError, UnknownEvalError
from evalfleet.settings import Settings
from evalfleet.store.results import RESULTS_SCHEMA


def _row(eval_name: str, t: int, k: int, version: str) -> dict[str, Any]:
    return {"eval": eval_name, "task_id": f"t{t}", "agent": "coder", "agent_version": version,
            "model": "m", "repeat": k, "score": ((t + k) % 4) / 4, "passed": (t + k) % 4 == 3,
            "tokens_in": 50 + t, "tokens_out": 5, "cost_usd": 0.001 * t,
            "started_at": f"2026-03-0{1 + k}T10:00:00Z",
            "category": "coding" if t % 2 else "math", "difficulty": 1 + t % 5,
            "metrics": {"tests": float(t), "lint": 0.5}}


@pytest.fixture
def filled(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path / "home")
    path = tmp_path / "runs.jsonl"
    rows = [_row(e, t, k, v) for e, v in (("ev-a", "1"), ("ev-b", "2"))
            for t in range(8) for k in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    api.import_jsonl(path, settings=settings)
    return settings


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


def _query_rows(settings: Settings, where: str = "") -> list[dict[str, Any]]:
    names, rows = api.query(f"SELECT * FROM runs {where} ORDER BY run_id", settings=settings)
    return [dict(zip(names, r, strict=True)) for r in rows]


def _snapshot(home: Path) -> dict[str, tuple[int, int]]:
    # SQLite's WAL index is added and touched by every reader (docs/architecture.md)
    return {str(p.relative_to(home)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in home.rglob("*") if p.is_file()
            and not p.name.endswith(("journal.db-shm", "journal.db-wal"))}


def test_parquet_round_trip_equals_query_rows_and_carries_column_docs(
        filled: Settings, tmp_path: Path) -> None:
    before = _snapshot(filled.home)
    out = tmp_path / "all.parquet"
    res = api.export_runs(out, settings=filled)
    assert (res["rows"], res["format"], res["path"]) == (48, "parquet", str(out))
    table = pq.read_table(out)
    got = sorted(table.to_pylist(), key=lambda r: r["run_id"])
    for r in got:
        r["metrics"] = dict(r["metrics"])
    assert got == _query_rows(filled)
    docs = {f.name: f.metadata[b"doc"].decode() for f in RESULTS_SCHEMA}
    for f in table.schema:
        assert f.metadata[b"doc"].decode() == docs[f.name]
    assert json.loads(table.schema.metadata[b"evalfleet.columns"]) == docs
    assert _snapshot(filled.home) == before  # a reader: nothing in the home changed
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_csv_of_some_evals_and_a_where_equals_the_same_query(
        filled: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "slice.csv"
    code, stdout, err = _cli(["export", "ev-b", "--where", "category=coding", "--where",
                              "difficulty>=3", "--out", str(out), "--home", str(filled.home),
                              "--json"], monkeypatch, capsys)
    assert code == 0, err
    res = json.loads(stdout)
    want = _query_rows(filled, "WHERE eval_id = 'ev-b' AND category = 'coding' "
                               "AND difficulty >= 3")
    assert res["rows"] == len(want) > 0 and res["evals"] == ["ev-b"]
    table = pacsv.read_csv(out)
    got = sorted(table.to_pylist(), key=lambda r: r["run_id"])
    assert [r["run_id"] for r in got] == [w["run_id"] for w in want]
    for g, w in zip(got, want, strict=True):
        assert (g["score"], g["passed"], g["task_id"], g["tokens_in"], g["difficulty"]) \
            == (w["score"], w["passed"], w["task_id"], w["tokens_in"], w["difficulty"])
        assert json.loads(g["metrics"]) == w["metrics"]
        assert g["started_at"] == w["started_at"]


def test_errors_are_one_line_and_the_home_is_never_a_target(
        filled: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for argv, expected in (
        (["--out", str(filled.home / "x.parquet")], "inside the evalfleet home"),
        (["--out", str(tmp_path / "x.txt")], "cannot tell the format"),
        (["--out", str(tmp_path / "x.csv"), "--format", "xlsx"], "unknown format 'xlsx'"),
        (["--out", str(tmp_path / "x.csv"), "--where", "colour=red"], "unknown field"),
        (["nope", "--out", str(tmp_path / "x.csv")], "no eval 'nope'"),
        ([], "give the file to write with --out"),
    ):
        code, _, err = _cli(["export", *argv, "--home", str(filled.home)], monkeypatch, capsys)
        assert code == 2, (argv, err)
        assert expected in err and err.strip().count("\n") == 0, err
    assert not (filled.home / "x.parquet").exists()


def test_a_missing_home_is_not_created(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "none")
    with pytest.raises(UnknownEvalError, match="no evals in"):
        api.export_runs(tmp_path / "x.parquet", settings=settings)
    assert not settings.home.exists() and not (tmp_path / "x.parquet").exists()
    with pytest.raises(SpecError, match="does not exist"):
        api.export_runs(tmp_path / "no" / "x.parquet", settings=settings)
