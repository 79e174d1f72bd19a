"""DuckDB over the committed Parquet files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb


def connect(home: Path, paths: list[str]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view ``runs`` over the given results files."""
    con = duckdb.connect(":memory:")
    if paths:
        files = [str(home / p) for p in paths]
        con.read_parquet(files, union_by_name=True).create_view("runs")
    else:
        con.execute("CREATE VIEW runs AS SELECT NULL::VARCHAR AS run_id WHERE false")
    return con


def query(home: Path, paths: list[str], sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run SQL over the ``runs`` view; returns column names and rows."""
    con = connect(home, paths)
    try:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description or []]
        return names, cur.fetchall()
    finally:
        con.close()
