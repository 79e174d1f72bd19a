"""DuckDB over the committed Parquet files, confined to them.

Every connection is in memory and, once the ``runs`` view exists, can read only the committed
files behind it: external access (any other file, COPY, ATTACH, extensions) is switched off and
the configuration locked, so SQL run on it cannot write anything or read anything else.

Files of a warehouse on another file system (``fsspec`` URLs, see :mod:`evalfleet.store.fs`)
are read through DuckDB's fsspec integration (``register_filesystem``), never its ``httpfs``
extension: autoloading extensions is switched off on such a connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from evalfleet.errors import SpecError, StoreError
from evalfleet.store import fs, results
from evalfleet.store.results import RESULTS_MIGRATIONS

if TYPE_CHECKING:
    from evalfleet.store.journal import Journal

_READ_ONLY_STATEMENTS = frozenset({"SELECT"})
"""Statement types a user's query may be: SELECT, including WITH ... SELECT, VALUES, FROM ...,
DESCRIBE, SUMMARIZE and SHOW, which DuckDB parses as SELECT."""


def connect(home: Path, paths: list[str],
            journal: Journal | None = None) -> duckdb.DuckDBPyConnection:
    """A confined DuckDB connection with a view ``runs`` over the given results files, the
    view ``scores`` over it (see :func:`_scores_view`), and with a ``journal``, tables
    ``rollups`` and ``evals`` (see :func:`_journal_tables`).

    ``paths`` are relative to ``home`` or, for a warehouse elsewhere, absolute paths or URLs
    (what :meth:`~evalfleet.store.Store.results_paths` gives)."""
    con = duckdb.connect(":memory:")
    try:
        # a query must not see the caller's Python variables as tables, nor spill to disk
        con.execute("SET python_enable_replacements = false")
        con.execute("SET temp_directory = ''")
        files = require_files(home, paths)
        if files:
            fs.register_duckdb(con, files)  # remote files: through fsspec, never httpfs
            allowed = _allow(con, files)
            rel = _migrated(con.read_parquet(files, union_by_name=True))
            if allowed:
                rel.create_view("runs")
            else:  # a DuckDB without allowed_paths: keep the rows in memory instead
                rel.create("runs")
        else:
            con.from_arrow(results.RESULTS_SCHEMA.empty_table()).create("runs")
        _scores_view(con)
        if journal is not None:
            _journal_tables(con, journal)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def scored_sql(alias: str = "") -> str:
    """:data:`SCORED_SQL` for the table alias ``alias`` (e.g. ``r`` gives ``r.status ...``)."""
    a = f"{alias}." if alias else ""
    return (f"{a}status IN ('completed', 'failed') AND {a}score IS NOT NULL "
            f"AND isfinite({a}score) AND {a}score BETWEEN 0 AND 1")


SCORED_SQL = scored_sql()
"""Runs that count in scores: completed runs and agent failures (timeouts, agent errors) with a
valid score; infra, scorer and configuration errors and cancelled runs are missing data. A row
with a NaN or out-of-range score (written before scores were validated) is left out."""


def _scores_view(con: duckdb.DuckDBPyConnection) -> None:
    """The view ``scores``: one row per (eval, agent name and version, task) over ``runs``,
    with its runs, scored runs, mean score and passed count over the scored runs, and the
    task's category, difficulty and repository (the smallest, should its runs disagree).

    Columns that files of this home lack (written by an older version) are NULL in the view.
    """
    have = set(con.table("runs").columns)
    keys = ("eval_id", "agent_name", "agent_version", "task_id")
    needed = {"status", "score", "passed", *keys}
    if not needed <= have:  # not results rows at all: no view rather than a broken one
        return

    def first(col: str) -> str:
        return f"min({col}) AS {col}" if col in have else f"NULL AS {col}"

    con.execute(f"""
        CREATE VIEW scores AS
        SELECT {', '.join(keys)}, {first('category')}, {first('difficulty')},
               {first('repository')},
               count(*) AS n_runs,
               count(*) FILTER (WHERE {SCORED_SQL}) AS n_scored,
               avg(score) FILTER (WHERE {SCORED_SQL}) AS mean_score,
               count(*) FILTER (WHERE {SCORED_SQL} AND passed) AS n_passed
        FROM runs
        GROUP BY {', '.join(keys)}""")


def _migrated(rel: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """The rows with the named results-schema migrations applied: a column renamed since
    some files were written reads under its new name, from whichever name a file has.

    Without an old name among the files' columns (the usual case) the relation is returned as
    it is, so DuckDB prunes row groups exactly as before.
    """
    cols = rel.columns
    moves = {m.old: m for m in RESULTS_MIGRATIONS if m.old in cols}
    if not moves:
        return rel
    renamed = {m.new: m.old for m in moves.values()}

    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    exprs = [f"coalesce({q(c)}, {q(renamed[c])}) AS {q(c)}" if c in renamed else q(c)
             for c in cols if c not in moves]
    exprs += [f"{q(m.old)} AS {q(m.new)}" for m in moves.values() if m.new not in cols]
    return rel.project(", ".join(exprs))


def _journal_tables(con: duckdb.DuckDBPyConnection, journal: Journal) -> None:
    """In-memory tables ``rollups`` and ``evals`` read from the (read-only) journal, made
    before the connection is locked: SQL reads them, never the journal itself."""
    from evalfleet.store.rollups import evals_table, rollups_table

    con.from_arrow(rollups_table(journal)).create("rollups")
    con.from_arrow(evals_table(journal)).create("evals")


def require_files(home: Path, paths: list[str]) -> list[str]:
    """The absolute paths (or URLs) of committed results files, all of which must exist.

    Raises:
        StoreError: a file a committed batch references is gone (deleted or not copied with
            the home): one line, rather than a reader's traceback.
    """
    files = [p if fs.is_url(p) else str((home / p).absolute()) for p in paths]
    missing = fs.missing(files)
    if missing:
        where = "the warehouse" if any(fs.is_url(f) for f in missing) else str(home)
        raise StoreError(f"{len(missing)} committed results file(s) missing from {where}, "
                         f"e.g. {missing[0]}: the home or warehouse was changed outside "
                         "evalfleet")
    return files


def _allow(con: duckdb.DuckDBPyConnection, files: list[str]) -> bool:
    """Let the connection read exactly ``files`` once external access is off."""
    try:
        con.execute("SET allowed_paths = $files", {"files": files})
    except duckdb.CatalogException:
        return False
    return True


def check_read_only(sql: str) -> None:
    """Refuse anything but one SELECT statement.

    Raises:
        SpecError: several statements, or one that is not a SELECT (COPY, ATTACH, SET,
            PRAGMA, INSTALL, CREATE, INSERT ...), or SQL that does not parse.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise SpecError(f"query failed: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise SpecError(f"query refused: give one SELECT statement, not {len(statements)}")
    kind = statements[0].type.name
    if kind not in _READ_ONLY_STATEMENTS:
        raise SpecError(f"query refused: only SELECT over the eval data is allowed, not {kind}")


def query(home: Path, paths: list[str], sql: str,
          journal: Journal | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one SELECT over the ``runs`` view (and ``rollups`` and ``evals`` when given the
    journal); returns column names and rows.

    Raises:
        SpecError: the SQL is not a single SELECT, or DuckDB refused or failed it (one line).
    """
    check_read_only(sql)
    con = connect(home, paths, journal)
    try:
        cur = con.execute(sql)
        names = _unique([d[0] for d in cur.description or []])
        return names, cur.fetchall()
    except duckdb.Error as exc:
        raise SpecError(f"query failed: {_first_line(exc)}") from None
    finally:
        con.close()


def _unique(names: list[str]) -> list[str]:
    """Column names made unique (``a``, ``a_1``, ...), so that no column is lost by name.

    A repeated name gets the first free ``_N`` suffix that no other column is named.
    """
    literal = set(names)
    used: set[str] = set()
    out: list[str] = []
    for name in names:
        new, i = name, 0
        while new in used or (i and new in literal):
            i += 1
            new = f"{name}_{i}"
        used.add(new)
        out.append(new)
    return out


def _first_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
