"""A small finished eval shared by the store tests, and helpers to fingerprint a home."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from evalfleet import api
from evalfleet.settings import Settings


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
