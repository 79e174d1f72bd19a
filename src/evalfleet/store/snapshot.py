"""What planners, slices and reports read from a home's SQLite journal, without SQLAlchemy.

`evalfleet plan review`, `slice`, `query` and `report` need only a few facts from the journal:
which results files are live (each committed row is in exactly one of them), which evals exist,
an eval's row and plan, its budget-cancelled runs and its quarantined tasks. Importing
SQLAlchemy for those costs about a quarter of a second (a third of a review's whole process),
so for the default layout (a SQLite journal, results in the home) this module reads them with
the standard library's ``sqlite3``, opened exactly as :meth:`Journal.open_readonly` opens it:
``mode=ro``, ``query_only``, ``immutable`` only on a read-only file system without a pending
WAL. Anything else (PostgreSQL, a warehouse elsewhere) goes through the store.

Each method answers as the :class:`~evalfleet.store.journal.Journal` method of the same name
does, on a journal in the compact runs layout (an integer eval key and status codes, migration
``0009_runs_compact``) or in the layout before it. Tests check that a review, a slice, a query
and a report answer the same through both.
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evalfleet.errors import StoreError, UnknownEvalError

__all__ = ["RUN_STATUSES", "JournalSnapshot", "frozen", "readonly_connection"]

RUN_STATUSES = ("pending", "done", "leased", "cancelled", "quarantined")
"""A run's status as the compact runs table stores it: its index in this list (append only).
The journal's schema (``evalfleet.store.schema``) imports it from here: this module loads no
SQLAlchemy, so readers decode the codes without it."""


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
    """The live results files, evals, budget-cancelled runs and quarantined tasks of a home
    whose journal is SQLite (read-only).

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
        self._is_compact = False

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

    def select(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Rows of one read-only SELECT with ``:name`` parameters (the query_only connection
        refuses anything else)."""
        return self._read(sql, params)

    def _read(self, sql: str, args: tuple[Any, ...] | Mapping[str, Any]) -> list[Any]:
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

    def get_eval(self, eval_id: str) -> dict[str, Any]:
        """The eval's row as a dict (``plan`` parsed), as :meth:`Journal.get_eval`.

        Raises:
            UnknownEvalError: no such eval.
        """
        names, rows = self._named("SELECT * FROM evals WHERE eval_id = ?", (eval_id,))
        if not rows:
            raise UnknownEvalError(f"no eval '{eval_id}' in this home")
        out = dict(zip(names, rows[0], strict=True))
        out["plan"] = json.loads(out.pop("plan_json"))
        return out

    def list_evals(self) -> list[dict[str, Any]]:
        """Every eval, newest first, without the plan (as :meth:`Journal.list_evals`)."""
        names = [n for n in self._columns("evals") if n != "plan_json"]
        rows = self._read(f"SELECT {', '.join(names)} FROM evals ORDER BY created_at DESC", ())
        return [dict(zip(names, r, strict=True)) for r in rows]

    def cancelled_by_agent(self, eval_id: str) -> dict[int, int]:
        """Cancelled runs per agent index, agents without any left out (as
        :meth:`Journal.cancelled_by_agent`)."""
        of, args = self._runs_of(eval_id)
        rows = self._read(f"SELECT agent_index, count(*) FROM runs WHERE {of} AND status = ? "
                          "GROUP BY agent_index", (*args, self._status("cancelled")))
        return {int(i): int(n) for i, n in rows}

    def quarantined(self, eval_id: str, evidence: int = 5) -> list[dict[str, Any]]:
        """The eval's quarantined tasks with their runs ended ``quarantined`` and their last
        ``evidence`` infrastructure errors (as :meth:`Journal.quarantined`); none from a
        journal without the tables."""
        if not self._columns("quarantined_tasks"):
            return []
        of, args = self._runs_of(eval_id)
        out: list[dict[str, Any]] = []
        for task_id, failures, at in self._read(
                "SELECT task_id, failures, quarantined_at FROM quarantined_tasks "
                "WHERE eval_id = ? ORDER BY quarantined_at", (eval_id,)):
            (ended,), = self._read(f"SELECT count(*) FROM runs WHERE {of} AND task_id = ? "
                                   "AND status = ?",
                                   (*args, task_id, self._status("quarantined")))
            errs = self._read("SELECT run_id, attempt, error FROM task_failures "
                              "WHERE eval_id = ? AND task_id = ? ORDER BY failure_id DESC "
                              "LIMIT ?", (eval_id, task_id, evidence))
            out.append({"task_id": task_id, "failures": int(failures),
                        "quarantined_at": float(at), "runs_quarantined": int(ended),
                        "errors": [{"run_id": r, "attempt": int(a), "error": e}
                                   for r, a, e in reversed(errs)]})
        return out

    def _runs_of(self, eval_id: str) -> tuple[str, tuple[Any, ...]]:
        """The condition selecting the eval's rows of the runs table, and its arguments: by
        integer eval key in the compact layout, by eval id before it."""
        if self._compact():
            return "eval_key = (SELECT eval_key FROM eval_keys WHERE eval_id = ?)", (eval_id,)
        return "eval_id = ?", (eval_id,)

    def _status(self, name: str) -> int | str:
        """A run status as the runs table stores it: its code in the compact layout, the
        name before it."""
        return RUN_STATUSES.index(name) if self._compact() else name

    def _compact(self) -> bool:
        """Whether the runs table is in the compact layout (only a yes is cached: a writer may
        migrate the journal while this reader is open)."""
        if not self._is_compact:
            self._is_compact = "eval_key" in self._columns("runs")
        return self._is_compact

    def _columns(self, table: str) -> list[str]:
        """The table's columns in order; none for a table the journal does not have."""
        return [str(r[1]) for r in self._read(f"PRAGMA table_info({table})", ())]

    def _named(self, sql: str, args: tuple[Any, ...]) -> tuple[list[str], list[Any]]:
        """The column names and rows of a query."""
        try:
            cur = self._con.execute(sql, args)
            return [str(d[0]) for d in cur.description], cur.fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the journal of {self.home}: {exc}") from None

    def close(self) -> None:
        self._con.close()
