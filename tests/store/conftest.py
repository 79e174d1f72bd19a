"""A small finished eval shared by the store tests, and helpers to fingerprint a home."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from evalfleet import api
from evalfleet.settings import Settings
from evalfleet.store import Journal


@dataclass(frozen=True)
class DoneEval:
    """A home holding one completed eval."""

    home: Path
    eval_id: str
    planned: int
    settings: Settings


@pytest.fixture
def done_eval(make_plan: Callable[..., Path], settings: Settings) -> DoneEval:
    summary = api.run(make_plan(n_tasks=6, name="small"), settings=settings)
    assert summary.status == "completed" and summary.done == 6
    return DoneEval(settings.home, summary.eval_id, 6, settings)


def fingerprint(home: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``home`` except SQLite's WAL side files: (mode, sha256 of content).

    A WAL reader may create ``journal.db-shm`` / ``-wal`` (SQLite's shared-memory index, which
    every reader of a WAL database needs); they hold no data of their own.
    """
    out: dict[str, tuple[int, str]] = {}
    for f in sorted(home.rglob("*")):
        if f.is_file() and not f.name.endswith(("-shm", "-wal")):
            out[f.relative_to(home).as_posix()] = (
                f.stat().st_mode, hashlib.sha256(f.read_bytes()).hexdigest())
    return out


@pytest.fixture(params=["sqlite", "postgres"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Journal]:
    """An empty journal on SQLite, then on PostgreSQL (EVALFLEET_TEST_POSTGRES_URL; skipped
    without it unless EVALFLEET_REQUIRE_POSTGRES=1)."""
    from tests.store.test_journal_contract import PG_URL, REQUIRE_PG, _postgres_schema

    if request.param == "sqlite":
        j = Journal.open(tmp_path)
        yield j
        j.close()
        return
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("EVALFLEET_REQUIRE_POSTGRES=1 but EVALFLEET_TEST_POSTGRES_URL is unset")
        pytest.skip("EVALFLEET_TEST_POSTGRES_URL is unset (.ci/postgres.sh start prints it)")
    url, drop = _postgres_schema(PG_URL)
    j = Journal(url)
    try:
        yield j
    finally:
        j.close()
        drop()
