"""What planners and slices read from a home's SQLite journal, without SQLAlchemy.

`evalfleet plan review`, `slice` and `query` need only a few facts from the journal: which
results files are live (each committed row is in exactly one of them), which evals exist and
the plan an eval ran with. Importing SQLAlchemy for those costs about a quarter of a second (a
third of a review's whole process), so for the default layout (a SQLite journal, results in
the home) this module reads them with the standard library's ``sqlite3``, opened exactly as
:meth:`Journal.open_readonly` opens it: ``mode=ro``, ``query_only``, ``immutable`` only on a
read-only file system without a pending WAL. Anything else (PostgreSQL, a warehouse
elsewhere) goes through the store.

Tests check that a review, a slice and a query answer the same through both.
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any

from evalfleet.errors import StoreError, UnknownEvalError

__all__ = ["JournalSnapshot", "frozen", "readonly_connection"]


def frozen(path: Path) -> bool:
    """Whether the journal is on a read-only file system and complete without its WAL.

    Then no process can write it, so SQLite may open it ``immutable`` (without the ``-shm``
    index a WAL reader otherwise creates, which a read-only file system cannot hold). A
    non-empty ``-wal`` holds committed transactions that ``immutable`` would not read.
    """
    try:
        if not os.statvfs(path).f_flag & os.ST_RDONLY:
            return False
        wal = path.with_name(path.name + "-wal")
        return not wal.exists() or wal.stat().st_size == 0
    except OSError:
        return False


def readonly_connection(path: Path) -> sqlite3.Connection:
    """A connection to the SQLite journal at ``path`` that can neither create nor write it."""
    uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode=ro"
    if frozen(path):
        uri += "&immutable=1"
    con = sqlite3.connect(uri, uri=True, check_same_thread=False)
    # no journal_mode here: setting it is a write, and the file is WAL already
    con.execute("PRAGMA busy_timeout=30000")
    con.execute("PRAGMA query_only=1")
    return con


class JournalSnapshot:
    """The live results files and eval plans of a home whose journal is SQLite (read-only).

    Raises:
        UnknownEvalError: the home has no journal (nothing has run there).
        StoreError: the journal cannot be read.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        path = home / "journal.db"
        if not path.is_file():
            raise UnknownEvalError(f"no evals in {home} (nothing has run there yet)")
        try:
            self._con = readonly_connection(path)
            cols = {str(r[1]) for r in self._con.execute("PRAGMA table_info(batches)")}
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the journal of {home}: {exc}") from None
        if not cols:
            self._con.close()
            raise UnknownEvalError(f"no evals in {home} (its journal has no batches table)")
        # journals from before compaction have no superseded batches: all of them are live
        self._live = " WHERE superseded_by IS NULL" if "superseded_by" in cols else ""

    def all_results_paths(self) -> list[str]:
        """Parquet files of every eval's live batches, relative to the home (as
        :meth:`evalfleet.store.Store.all_results_paths` gives them for a home's own)."""
        try:
            rows = self._con.execute(f"SELECT results_path FROM batches{self._live}").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the journal of {self.home}: {exc}") from None
        return sorted(str(r[0]) for r in rows)

    def results_paths(self, eval_id: str) -> list[str]:
        """Parquet files of the eval's live batches, relative to the home."""
        where = f"{self._live} AND" if self._live else " WHERE"
        rows = self._read(f"SELECT results_path FROM batches{where} eval_id = ?", (eval_id,))
        return sorted(str(r[0]) for r in rows)

    def eval_exists(self, eval_id: str) -> bool:
        return bool(self._read("SELECT 1 FROM evals WHERE eval_id = ?", (eval_id,)))

    def find_evals(self, prefix: str) -> list[str]:
        """Eval ids starting with ``prefix``, compared literally and case-sensitively (as
        :meth:`evalfleet.store.journal.Journal.find_evals`)."""
        if not prefix:
            return []
        rows = self._read("SELECT eval_id FROM evals WHERE substr(eval_id, 1, ?) = ?",
                          (len(prefix), prefix))
        return sorted(str(r[0]) for r in rows)

    def _read(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        try:
            return self._con.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the journal of {self.home}: {exc}") from None

    def eval_plan(self, eval_id: str) -> dict[str, Any]:
        """The plan the eval stored when it was created.

        Raises:
            UnknownEvalError: no such eval.
        """
        try:
            row = self._con.execute("SELECT plan_json FROM evals WHERE eval_id = ?",
                                    (eval_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the journal of {self.home}: {exc}") from None
        if row is None:
            raise UnknownEvalError(f"no eval '{eval_id}' in {self.home}")
        plan: dict[str, Any] = json.loads(row[0])
        return plan

    def close(self) -> None:
        self._con.close()
