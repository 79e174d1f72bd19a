"""`evalfleet query` runs one SELECT over the committed results and can touch nothing else."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalfleet import api
from evalfleet.errors import SpecError

from .conftest import DoneEval, fingerprint


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _attacks(home: Path, outside: Path) -> list[str]:
    journal = home / "journal.db"
    return [
        f"COPY runs TO '{journal}' (FORMAT csv)",
        f"COPY (SELECT 1) TO '{outside.parent / 'out.csv'}'",
        f"EXPORT DATABASE '{outside.parent / 'dump'}'",
        f"ATTACH '{journal}' AS j (TYPE sqlite)",
        f"ATTACH '{outside.parent / 'new.duckdb'}' AS n",
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_parquet('{outside}')",
        f"SELECT * FROM '{outside}'",
        f"SELECT * FROM read_text('{journal}')",
        f"SELECT * FROM read_blob('{journal}')",
        f"SELECT * FROM glob('{home}/*')",
        "SELECT * FROM query('ATTACH ''/tmp/x.db''')",
        "INSTALL sqlite",
        "LOAD sqlite",
        "PRAGMA version",
        "PRAGMA database_list",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "CALL pragma_version()",
        "CREATE TABLE t AS SELECT 1",
        "CREATE OR REPLACE VIEW runs AS SELECT 1 AS run_id",
        "INSERT INTO runs (run_id) VALUES ('x')",
        "DELETE FROM runs",
        "UPDATE runs SET passed = true",
        "DROP VIEW runs",
        "CHECKPOINT",
        "SELECT 1; DROP VIEW runs",
        f"SELECT 1; COPY runs TO '{journal}'",
    ]


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A Parquet file that is not one of the home's committed results."""
    path = tmp_path / "outside" / "secret.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"secret": ["s3cr3t"]}), path)
    return path


def test_every_statement_but_select_is_refused(done_eval: DoneEval, outside: Path) -> None:
    home = done_eval.home
    before = fingerprint(home)
    around = sorted(outside.parent.iterdir())
    for sql in _attacks(home, outside):
        with pytest.raises(SpecError) as info:
            api.query(sql, settings=done_eval.settings)
        message = str(info.value)
        assert info.value.exit_code == 2, sql
        assert message.startswith(("query refused:", "query failed:")), (sql, message)
        assert "\n" not in message, (sql, message)
        assert "s3cr3t" not in message and "root:" not in message, (sql, message)
    assert fingerprint(home) == before
    assert sorted(outside.parent.iterdir()) == around
    assert not Path("/tmp/x.db").exists()


def test_selects_over_the_committed_results_work(done_eval: DoneEval) -> None:
    settings = done_eval.settings
    names, rows = api.query("SELECT status, count(*) AS n FROM runs GROUP BY ALL",
                            settings=settings)
    assert names == ["status", "n"] and rows == [("completed", done_eval.planned)]
    _, rows = api.query("WITH p AS (SELECT * FROM runs WHERE passed) SELECT count(*) FROM p",
                        eval_id=done_eval.eval_id[:6], settings=settings)
    assert rows == [(done_eval.planned,)]
    _, rows = api.query("SELECT count(DISTINCT run_id) FROM runs", settings=settings)
    assert rows == [(done_eval.planned,)]


def test_cli_refuses_copy_over_the_journal_with_one_line(done_eval: DoneEval) -> None:
    journal = done_eval.home / "journal.db"
    before = _sha(journal)
    cli = [sys.executable, "-m", "evalfleet", "query", "--home", str(done_eval.home)]
    res = subprocess.run([*cli, f"COPY runs TO '{journal}' (FORMAT csv)"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "refused" in res.stderr
    assert _sha(journal) == before
    ok = subprocess.run([*cli, "--json", "SELECT count(*) AS n FROM runs"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert '"n": 6' in ok.stdout
