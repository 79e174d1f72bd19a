"""Compaction: an eval's small committed results files merged into large, sorted ones.

The driver commits one Parquet file and one trajectory file per batch; with slow agents that
is about one row per file, and a reader pays about a millisecond per file. Compaction merges
them, crash-safe, while readers run:

1. **Write new.** The rows of the chosen live batches are read, brought to the current
   results schema (:func:`~evalfleet.store.results.conform`), sorted by
   :data:`SORT_KEYS` and written as one Parquet file (zstd, row groups of
   ``row_group_rows`` with min/max statistics, so DuckDB skips row groups by agent version,
   category or task), and their trajectories as one zstd JSON-lines file of independent
   frames; each row's ``trajectory_uri`` is rewritten to ``path#@OFFSET`` (the frame holding
   its line). Both are written under a ``.tmp`` name, fsynced and renamed.
2. **Record and swap**, in one journal transaction
   (:meth:`~evalfleet.store.journal.Journal.commit_compaction`): the new batch is recorded,
   the old batches' runs point to it and the old batches are marked superseded. Readers list
   the live batches in one SELECT, so they see either the old files or the new one, never
   both and never neither.
3. **Delete old, later.** A superseded batch's files are removed only once it has been
   superseded for longer than a grace period (:func:`purge_retired`; a reader that listed
   them just before the swap is still reading them), and then its journal row is dropped.

A crash after step 1 leaves files no batch references (the eval's driver removes them as
orphans); after step 2, superseded files that a later purge removes; during step 3, some of
them, which the next purge removes. At every point each committed row is in exactly one live
batch.

Every file operation goes through :mod:`evalfleet.store.fs`, so the warehouse root may be the
home or any fsspec URL; where a rename is not atomic (object stores), step 2 is still the only
point at which the new files count (see that module's consistency note).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

from evalfleet.errors import StoreError
from evalfleet.store import fs
from evalfleet.store.fs import RemoteFile, Root
from evalfleet.store.journal import Journal
from evalfleet.store.results import (
    ORPHAN_GRACE_S,
    RESULTS_SCHEMA,
    RESULTS_SCHEMA_VERSION,
    conform,
    eval_rel_dirs,
    schema_version,
    versioned_schema,
)

log = logging.getLogger("evalfleet.store.compaction")

SORT_KEYS = ("agent_version", "category", "task_id", "repeat")
"""Order of the rows in a compacted file: a slice by agent version and category reads only
the row groups whose statistics can hold it."""

ENCODINGS = {
    **dict.fromkeys(("latency_s", "cost_usd", "infra_cost_usd", "reused_cost_usd"),
                    "BYTE_STREAM_SPLIT"),
    **dict.fromkeys(("tokens_in", "tokens_cached", "tokens_out", "started_at", "finished_at"),
                    "DELTA_BINARY_PACKED"),
    "run_id": "DELTA_LENGTH_BYTE_ARRAY",
}
"""Parquet encodings of the columns that are (nearly) unique per row, where a dictionary only
costs: measured at 65 bytes per run with dictionaries everywhere, 49 with these. Every other
column keeps its dictionary (few distinct values, and sorted runs of them)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """When and how much to merge."""

    fan_in: int = 64
    """During an eval, files of similar size (the same power of ``fan_in`` rows) are merged
    once there are this many of them; the driver looks every ``fan_in`` commits. Rows are
    rewritten about log_fan_in(rows) times in all."""
    target_rows: int = 1_000_000
    """A compacted file holds at most this many rows."""
    live_max_rows: int = 64**3
    """... and at most this many while the eval runs: the driver merges between commits, and
    a merge of 1M rows would hold the commits up for tens of seconds; the end merges them."""
    target_bytes: int = 128 * 2**20
    """... and is made from at most this many bytes of Parquet."""
    row_group_rows: int = 128 * 1024
    """Rows per Parquet row group (the unit DuckDB skips by statistics)."""
    frame_bytes: int = 2**20
    """Uncompressed bytes of trajectory lines per zstd frame (the unit ``show`` reads)."""
    parquet_zstd_level: int = 9
    """zstd level of compacted Parquet pages (levels 3 to 9 differ by about 1% here)."""
    trajectory_zstd_level: int = 3
    """zstd level of trajectory frames (9 is 10% smaller and 7 times slower: the driver
    compacts between commits)."""


DEFAULT_POLICY = Policy()


@dataclass(frozen=True, slots=True)
class Merge:
    """One compacted file made (or, in a dry run, that would be made)."""

    batch_id: str
    inputs: int
    rows: int
    bytes_before: int
    bytes_after: int


@dataclass(slots=True)
class CompactionReport:
    """What compacting one eval did."""

    eval_id: str
    files_before: int
    files_after: int
    rows: int
    merges: list[Merge] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out = asdict(self)
        out["bytes_before"] = sum(m.bytes_before for m in self.merges)
        out["bytes_after"] = sum(m.bytes_after for m in self.merges)
        return out


def _tier(rows: int, fan_in: int) -> int:
    t = 0
    while rows >= fan_in:
        rows //= fan_in
        t += 1
    return t


def plan_merges(batches: Sequence[dict[str, Any]], sizes: dict[str, int], policy: Policy,
                *, final: bool) -> list[list[dict[str, Any]]]:
    """Groups of live batches to merge, each into one file, oldest first.

    Only files under the targets take part. ``final`` (the eval ended): all of them, in as
    few groups as the targets allow. Otherwise only sizes of which there are ``fan_in``
    files (size-tiered: each row is rewritten about log_fan_in times, not at every merge),
    into files of at most ``live_max_rows``.
    """
    cap = policy.target_rows if final else min(policy.target_rows, policy.live_max_rows)
    small = [b for b in batches if b["n_rows"] < cap
             and sizes.get(b["batch_id"], 0) < policy.target_bytes]
    if final:
        pools = [small]
    else:
        tiers: dict[int, list[dict[str, Any]]] = {}
        for b in small:
            tiers.setdefault(_tier(int(b["n_rows"]), policy.fan_in), []).append(b)
        pools = [p for _, p in sorted(tiers.items()) if len(p) >= policy.fan_in]
    groups: list[list[dict[str, Any]]] = []
    for pool in pools:
        cur: list[dict[str, Any]] = []
        rows = size = 0
        for b in pool:
            n, s = int(b["n_rows"]), sizes.get(b["batch_id"], 0)
            if cur and (rows + n > cap or size + s > policy.target_bytes):
                groups.append(cur)
                cur, rows, size = [], 0, 0
            cur.append(b)
            rows += n
            size += s
        groups.append(cur)
    return [g for g in groups if len(g) >= 2]


def compact_eval(home: Path | Root, journal: Journal, eval_id: str, *, final: bool,
                 policy: Policy = DEFAULT_POLICY, dry_run: bool = False,
                 now: float | None = None) -> CompactionReport:
    """Merge the eval's small live files (see :func:`plan_merges`) by the protocol above.

    Only the eval's driver (or ``evalfleet compact`` holding the eval's claim) may call this
    without ``dry_run``; readers may run meanwhile. ``home`` is the warehouse root (a home
    ``Path``, or a :class:`~evalfleet.store.fs.Root`).

    Raises:
        StoreError: an input file is missing, damaged, written by a newer evalfleet, or its
            rows disagree with the journal; nothing of that merge is recorded.
    """
    root = fs.as_root(home)
    batches = list(journal.iter_batches(eval_id))
    on_disk = fs.sizes(root, [b["results_path"] for b in batches])
    sizes = {b["batch_id"]: on_disk.get(b["results_path"], 0) for b in batches}
    groups = plan_merges(batches, sizes, policy, final=final)
    report = CompactionReport(eval_id, files_before=len(batches), files_after=len(batches),
                              rows=sum(int(b["n_rows"]) for b in batches), dry_run=dry_run)
    for group in groups:
        traj = fs.sizes(root, [b["trajectories_path"] for b in group])
        before = sum(sizes[b["batch_id"]] + traj.get(b["trajectories_path"] or "", 0)
                     for b in group)
        if dry_run:
            merge = Merge("", len(group), sum(int(b["n_rows"]) for b in group), before, 0)
        else:
            merge = _merge(root, journal, eval_id, group, policy, before, now)
        report.merges.append(merge)
        report.files_after -= len(group) - 1
    return report


def purge_retired(home: Path | Root, journal: Journal, eval_id: str | None = None, *,
                  grace_s: float = ORPHAN_GRACE_S, now: float | None = None) -> list[str]:
    """Delete the files of batches superseded more than ``grace_s`` ago, then forget them.

    Any writer may do this for any eval: the journal already says the rows are elsewhere,
    and the grace period covers a reader that listed the files just before the swap. A crash
    midway leaves files or rows that the next purge removes.
    """
    now = time.time() if now is None else now
    root = fs.as_root(home)
    retired = journal.retired_batches(eval_id, before=now - grace_s)
    removed: list[str] = []
    done: list[str] = []
    for b in retired:
        for rel in (b["results_path"], b["trajectories_path"]):
            if rel and _own_file(rel, b["eval_id"]):
                _remove_file(fs.file(root, rel))
                removed.append(rel)
        done.append(b["batch_id"])
    if done:
        journal.drop_retired(done)
    return removed


def _own_file(rel: str, eval_id: str) -> bool:
    """Whether ``rel`` lies in the eval's own directories (a journal row never sends a
    delete elsewhere)."""
    return ".." not in rel.split("/") and (rel.startswith(f"results/eval_id={eval_id}/")
                                           or rel.startswith(f"trajectories/{eval_id}/"))


def _remove_file(path: Path | RemoteFile) -> None:
    """Delete one superseded file (:func:`evalfleet.store.fs.file`), missing or not."""
    path.unlink(missing_ok=True)


def _read_rows(root: Root, b: dict[str, Any]) -> pa.Table:
    try:
        with fs.parquet_file(root, b["results_path"]) as pf:
            version = schema_version(pf.schema_arrow.metadata)
            if version > RESULTS_SCHEMA_VERSION:
                raise StoreError(f"{b['results_path']} has results schema version {version}, "
                                 f"newer than this evalfleet's {RESULTS_SCHEMA_VERSION}; "
                                 "upgrade to compact it")
            table = conform(pf.read())
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot compact {b['results_path']}: {exc}") from None
    if table.num_rows != int(b["n_rows"]):
        raise StoreError(f"{b['results_path']} holds {table.num_rows} rows, the journal says "
                         f"{b['n_rows']}; not compacted")
    return table


def _line_run_id(line: bytes) -> str:
    head = b'{"run_id": "'
    if line.startswith(head):  # how the writer puts it: first key
        end = line.find(b'"', len(head))
        if end > 0:
            return line[len(head):end].decode("utf-8")
    return str(json.loads(line).get("run_id"))


class _FrameWriter:
    """Appends trajectory lines as independent zstd frames and copies whole compacted files."""

    def __init__(self, path: Path | BinaryIO, policy: Policy) -> None:
        if isinstance(path, Path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self.fh: BinaryIO = open(fd, "wb")  # noqa: SIM115 - closed in close()
        else:  # a file object (retention's dry run counts the bytes it would write)
            self.fh = path
        self.zstd = zstandard.ZstdCompressor(level=policy.trajectory_zstd_level)
        self.frame_bytes = policy.frame_bytes
        self.pos = 0
        self.raw = 0
        self.buf: list[bytes] = []
        self.buf_ids: list[str] = []
        self.buf_len = 0
        self.offset: dict[str, int] = {}

    def add_line(self, run_id: str, line: bytes) -> None:
        self.buf.append(line)
        self.buf_ids.append(run_id)
        self.buf_len += len(line) + 1
        if self.buf_len >= self.frame_bytes:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        data = b"\n".join(self.buf) + b"\n"
        comp = self.zstd.compress(data)
        self.fh.write(comp)
        for rid in self.buf_ids:
            self.offset[rid] = self.pos
        self.pos += len(comp)
        self.raw += len(data)
        self.buf, self.buf_ids, self.buf_len = [], [], 0

    def copy_file(self, root: Root, rel: str) -> int:
        """Append a compacted file's frames as they are; returns the offset they start at."""
        self.flush()
        base = self.pos
        with fs.open_read(root, rel) as src:
            while chunk := src.read(4 * 2**20):
                self.fh.write(chunk)
                self.pos += len(chunk)
        return base

    def close(self) -> None:
        self.flush()
        self.fh.flush()
        self.fh.close()


def _merge_trajectories(root: Root, group: Sequence[dict[str, Any]],
                        tables: list[pa.Table], rel_traj: str,
                        policy: Policy) -> tuple[list[pa.Table], bool]:
    """Write the group's trajectories to ``rel_traj`` (+ ``.tmp``); returns the tables with
    ``trajectory_uri`` rewritten, and whether any trajectory was written."""
    tmp = rel_traj + fs.TMP_SUFFIX
    writer = _FrameWriter(fs.open_tmp(root, rel_traj), policy)
    pending: list[tuple[int, str]] = []  # (table index, old file) resolved after the last flush
    uris: list[list[str | None]] = []
    wrote = False
    try:
        for i, (b, t) in enumerate(zip(group, tables, strict=True)):
            col: list[str | None] = t.column("trajectory_uri").to_pylist()
            uris.append(col)
            tp: str | None = b["trajectories_path"]
            if not tp or not fs.is_file(root, tp):
                continue  # no trajectories, or already lost: the URIs stay as they were
            wrote = True
            if any(u and u.startswith(f"{tp}#@") for u in col):
                base = writer.copy_file(root, tp)
                uris[i] = [f"{rel_traj}#@{base + int(u[len(tp) + 2:])}"
                           if u and u.startswith(f"{tp}#@") else u for u in col]
                continue
            data = zstandard.ZstdDecompressor().stream_reader(
                fs.read_bytes(root, tp), read_across_frames=True).read()
            for line in data.splitlines():
                if line.strip():
                    writer.add_line(_line_run_id(line), line)
            pending.append((i, tp))
        writer.close()
    except BaseException:
        writer.fh.close()
        fs.remove(root, tmp)
        raise
    for i, tp in pending:
        rids = tables[i].column("run_id").to_pylist()
        uris[i] = [f"{rel_traj}#@{writer.offset[r]}"
                   if u == f"{tp}#{r}" and r in writer.offset else u
                   for u, r in zip(uris[i], rids, strict=True)]
    if not wrote:
        fs.remove(root, tmp)
        return tables, False
    fs.publish_tmp(root, rel_traj)
    field_index = RESULTS_SCHEMA.get_field_index("trajectory_uri")
    out = [t.set_column(field_index, RESULTS_SCHEMA.field(field_index),
                        pa.array(u, pa.string())) for t, u in zip(tables, uris, strict=True)]
    return out, True


def write_rows(fh: BinaryIO, table: pa.Table, policy: Policy) -> None:
    """Write sorted rows (:data:`SORT_KEYS`) as a compacted Parquet file to ``fh``: zstd,
    row groups of ``policy.row_group_rows`` with statistics, :data:`ENCODINGS`."""
    sorting = [pq.SortingColumn(RESULTS_SCHEMA.get_field_index(k)) for k in SORT_KEYS]
    with pq.ParquetWriter(
            fh, table.schema, compression="zstd",
            compression_level=policy.parquet_zstd_level, sorting_columns=sorting,
            write_statistics=True, column_encoding=ENCODINGS,
            use_dictionary=[f.name for f in RESULTS_SCHEMA if f.name not in ENCODINGS]) as w:
        w.write_table(table, row_group_size=policy.row_group_rows)


def _merge(root: Root, journal: Journal, eval_id: str, group: Sequence[dict[str, Any]],
           policy: Policy, bytes_before: int, now: float | None) -> Merge:
    batch_id = uuid.uuid4().hex[:20]
    results_dir, traj_dir = eval_rel_dirs(eval_id)
    rel_results = f"{results_dir}/{batch_id}.parquet"
    rel_traj = f"{traj_dir}/{batch_id}.jsonl.zst"
    tables = [_read_rows(root, b) for b in group]
    n_rows = sum(t.num_rows for t in tables)
    fs.makedirs(root, traj_dir)
    tables, has_traj = _merge_trajectories(root, group, tables, rel_traj, policy)
    written = [rel_traj] if has_traj else []
    try:
        table = pa.concat_tables(tables)
        if pc.count_distinct(table.column("run_id")).as_py() != n_rows:
            raise StoreError(f"eval {eval_id}: a run appears in two committed batches; "
                             "not compacted")
        table = table.sort_by([(k, "ascending") for k in SORT_KEYS])
        table = table.replace_schema_metadata(versioned_schema().metadata)
        fs.makedirs(root, results_dir)
        written.append(rel_results + fs.TMP_SUFFIX)
        with fs.open_tmp(root, rel_results) as fh:
            write_rows(fh, table, policy)
        fs.publish_tmp(root, rel_results)
        written[-1] = rel_results
        journal.commit_compaction(eval_id=eval_id, batch_id=batch_id, results_path=rel_results,
                                  trajectories_path=rel_traj if has_traj else None,
                                  n_rows=n_rows, replaced=[b["batch_id"] for b in group],
                                  now=now)
    except BaseException:
        # the old batches are still the live ones unless the swap happened after all; then
        # the new files hold the rows and must stay
        committed = True
        with contextlib.suppress(Exception):
            committed = journal.has_batch(batch_id)
        if not committed:
            for rel in written:
                fs.remove(root, rel)
        raise
    after = fs.size(root, rel_results) + fs.size(root, rel_traj if has_traj else None)
    log.debug("eval %s: %d files (%d rows) compacted into %s", eval_id, len(group), n_rows,
              rel_results)
    return Merge(batch_id, len(group), n_rows, bytes_before, after)
