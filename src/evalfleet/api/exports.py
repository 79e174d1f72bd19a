"""Exports: the committed runs (all, some evals, or a ``--where`` slice) as one Parquet or CSV
file, for notebooks.

Read-only: the store is opened with ``open_reader`` and the rows are selected on the confined
DuckDB connection of :func:`evalfleet.store.warehouse.connect` (external access off, so DuckDB
itself cannot write a file: no ``COPY``). The batches it yields are written by pyarrow, under a
temporary name renamed into place, so a reader of the output never sees half a file. The
Parquet file keeps each column's one-line description in its field metadata (``doc``) and all
of them, with what was exported, in the schema metadata (``evalfleet.columns``,
``evalfleet.export``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from evalfleet.api.reads import open_reader, resolve_eval_id
from evalfleet.errors import SpecError
from evalfleet.settings import Settings, load_settings

if TYPE_CHECKING:
    import pyarrow as pa

ExportFormat = Literal["parquet", "csv"]
FORMATS: tuple[ExportFormat, ...] = ("parquet", "csv")
_BATCH_ROWS = 100_000
"""Rows per record batch streamed from DuckDB to the writer (memory stays bounded)."""


def export_format(out: Path, fmt: str | None) -> ExportFormat:
    """``fmt``, or the format the output's suffix names (``.parquet``, ``.csv``).

    Raises:
        SpecError: an unknown format, or none given and the suffix names none.
    """
    if fmt is None:
        suffix = out.suffix.lower().lstrip(".")
        if suffix in ("parquet", "pq"):
            return "parquet"
        if suffix == "csv":
            return "csv"
        raise SpecError(f"cannot tell the format from {out.name!r}: give --format parquet "
                        "or csv", field="--format")
    if fmt not in FORMATS:
        raise SpecError(f"unknown format {fmt!r} (choose parquet or csv)", field="--format")
    return fmt


def export_runs(out: Path, *, eval_ids: Sequence[str] = (), where: Sequence[str] = (),
                fmt: str | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Write the committed runs to ``out`` as Parquet or CSV; returns what was written.

    ``eval_ids`` (exact ids or unique prefixes) keeps only those evals, ``where`` holds
    ``FIELD OP VALUE`` clauses as ``evalfleet slice`` takes them (all must hold). In CSV the
    ``metrics`` map is a JSON object and times are ISO 8601 in UTC.

    Raises:
        SpecError: a bad format, clause or output path (a folder, or inside the home, where
            the store keeps only its own files).
        UnknownEvalError: no such eval, or no evals in the home.
    """
    kind = export_format(out, fmt)
    from evalfleet.api.slices import parse_where

    conditions = [parse_where(w) for w in where]
    settings = settings or load_settings()
    out = Path(out)
    target = out.absolute()
    if out.is_dir():
        raise SpecError(f"{out} is a folder; give a file name", field="--out")
    if target.parent.resolve().is_relative_to(settings.home.absolute().resolve()):
        raise SpecError(f"{out} is inside the evalfleet home {settings.home}; write the "
                        "export elsewhere", field="--out")
    if not target.parent.is_dir():
        raise SpecError(f"folder {target.parent} does not exist", field="--out")
    store = open_reader(settings)
    try:
        ids = [resolve_eval_id(store, e) for e in eval_ids]
        paths = [p for e in ids for p in store.results_paths(e)] if ids \
            else store.all_results_paths()
    finally:
        store.close()
    from evalfleet.store.warehouse import connect

    con = connect(settings.home, paths)
    try:
        sql, params = _select(con, conditions, csv=kind == "csv")
        rel = con.sql(sql, params=params)
        # DuckDB 2 names it to_arrow_reader; 1.x fetch_arrow_reader
        stream = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader
        reader = stream(_BATCH_ROWS)
        rows, columns = _write(reader, target, kind, {
            "evals": ids or "all", "where": list(where)})
    finally:
        con.close()
    return {"path": str(target), "format": kind, "rows": rows, "columns": columns,
            "evals": ids or None, "where": list(where), "bytes": target.stat().st_size}


def _select(con: Any, conditions: Sequence[Any], *, csv: bool) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for i, c in enumerate(conditions):
        text, p = c.sql(f"w{i}")
        clauses.append(text)
        params.update(p)
    cols = {r[0] for r in con.execute("SELECT name FROM pragma_table_info('runs')").fetchall()}
    # CSV has no map type: the metrics map becomes a JSON object
    star = "* REPLACE (CAST(to_json(metrics) AS VARCHAR) AS metrics)" \
        if csv and "metrics" in cols else "*"
    where_sql = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return f"SELECT {star} FROM runs{where_sql}", params


def column_docs() -> dict[str, str]:
    """Each results column's one-line description (``store/results.py:RESULTS_SCHEMA``)."""
    from evalfleet.store.results import RESULTS_SCHEMA

    return {f.name: (f.metadata or {}).get(b"doc", b"").decode("utf-8")
            for f in RESULTS_SCHEMA}


def _documented(schema: pa.Schema, export: dict[str, Any]) -> pa.Schema:
    import pyarrow as pa

    docs = column_docs()
    fields = [f.with_metadata({"doc": docs[f.name]}) if docs.get(f.name) else f
              for f in schema]
    meta = {"evalfleet.columns": json.dumps({f.name: docs.get(f.name, "") for f in schema}),
            "evalfleet.export": json.dumps(export)}
    return pa.schema(fields, metadata=meta)


def _write(reader: pa.RecordBatchReader, target: Path, kind: ExportFormat,
           export: dict[str, Any]) -> tuple[int, int]:
    """Stream ``reader`` into ``target`` (temp file, fsync, rename); returns rows, columns."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    rows = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as fh:
            if kind == "parquet":
                schema = _documented(reader.schema, export)
                with pq.ParquetWriter(fh, schema, compression="zstd") as pw:
                    for batch in reader:
                        rows += batch.num_rows
                        pw.write_batch(batch.replace_schema_metadata(None).cast(schema))
            else:
                with pacsv.CSVWriter(fh, reader.schema) as cw:
                    for batch in reader:
                        rows += batch.num_rows
                        cw.write_batch(batch)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return rows, len(reader.schema)
