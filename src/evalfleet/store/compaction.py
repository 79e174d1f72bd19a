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

   A merge's memory does not grow with its group (see "Memory" below).
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

**Memory.** A merge streams: its memory is bounded by :class:`Policy`'s ``merge_rows``,
``merge_fan_in`` and ``row_group_rows``, not by the rows of its group (measured: the final
merge of a 1,000,000-run eval, 20 compacted files and 35 batch files, peaked at about 85 MB
of Arrow memory, against 900 MB when it read the group whole; the row group being filled is
most of it). Inputs written by compaction are already sorted (their row groups'
``sorting_columns`` say so) and are read a batch at a time and merged k-way; the others (a
commit's batch file, in its commit's order) are collected, rewritten and sorted
``merge_rows`` at a time, each sorted chunk but the last written to a temporary Arrow file
(the system's temporary directory, removed when the merge ends). At most ``merge_fan_in``
sorted runs are read at once; with more, the smallest are first merged into a temporary
file. A round emits every buffered row whose sort key is below the smallest last key any
unfinished run has read, so rows of equal key always leave together, sorted by
:data:`SORT_KEYS` and then ``run_id``: a run appearing in two batches (its id fixes its task,
agent and repeat, hence its key) shows as two equal neighbours. Every emitted chunk must start
strictly above where the previous one ended, so the output is sorted even if an input's
metadata were wrong (the merge then fails instead). Trajectories are decompressed as a
stream, a chunk at a time; a compacted file's frames are copied as they are, its rows'
offsets shifted. Arrow allocates from the system allocator while a merge runs
(:func:`_merge_pool`).
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

from evalfleet._util.arrow import arrow_without_pandas
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
    """Rows per Parquet row group (the unit DuckDB skips by statistics). A merge holds the row
    group it is filling: about 55 MB of Arrow memory at 128k rows."""
    frame_bytes: int = 2**20
    """Uncompressed bytes of trajectory lines per zstd frame (the unit ``show`` reads)."""
    parquet_zstd_level: int = 9
    """zstd level of compacted Parquet pages (levels 3 to 9 differ by about 1% here)."""
    trajectory_zstd_level: int = 3
    """zstd level of trajectory frames (9 is 10% smaller and 7 times slower: the driver
    compacts between commits)."""
    merge_rows: int = 8 * 1024
    """Rows a merge holds at once, about, besides the row group it is filling: the chunk in
    which it sorts rows that are not sorted yet, and the sum of the batches it reads from its
    sorted inputs (about 430 bytes of memory a row)."""
    merge_fan_in: int = 6
    """Sorted runs a merge reads at once; more are first merged into temporary files, the
    smallest first. Each open compacted file costs about 5 MB (its current pages and
    dictionaries) besides its batch."""


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
            # Arrow data and plain values only: pyarrow need not import pandas for them
            with arrow_without_pandas():
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
    """All of a batch's rows, checked and conformed (retention's rewrite reads them whole;
    a merge streams them with :func:`_input_batches`)."""
    try:
        with fs.parquet_file(root, b["results_path"]) as pf:
            _check_input(pf, b)
            table = conform(pf.read())
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot compact {b['results_path']}: {exc}") from None
    return table


def _check_input(pf: pq.ParquetFile, b: dict[str, Any]) -> None:
    """Refuse a batch file written by a newer evalfleet (a newer schema version, or columns
    this version does not know) or whose row count disagrees with the journal's."""
    version = schema_version(pf.schema_arrow.metadata)
    if version > RESULTS_SCHEMA_VERSION:
        raise StoreError(f"{b['results_path']} has results schema version {version}, "
                         f"newer than this evalfleet's {RESULTS_SCHEMA_VERSION}; "
                         "upgrade to compact it")
    # unknown columns raise here, before any write (Schema.empty_table would import pandas)
    conform(pa.Table.from_batches([], schema=pf.schema_arrow))
    if pf.metadata.num_rows != int(b["n_rows"]):
        raise StoreError(f"{b['results_path']} holds {pf.metadata.num_rows} rows, the journal "
                         f"says {b['n_rows']}; not compacted")


def _line_run_id(line: bytes) -> str:
    head = b'{"run_id": "'
    if line.startswith(head):  # how the writer puts it: first key
        end = line.find(b'"', len(head))
        if end > 0:
            return line[len(head):end].decode("utf-8")
    return str(json.loads(line).get("run_id"))


READ_BYTES = 2**20
"""Bytes a merge reads at a time: a trajectory file decompressed, or a compacted one
copied."""


def _iter_lines(fh: BinaryIO, chunk_bytes: int | None = None) -> Iterator[bytes]:
    """The non-blank lines of a zstd JSON-lines file (one frame or many), decompressed as a
    stream ``chunk_bytes`` (:data:`READ_BYTES`) at a time; a line may span chunks."""
    chunk_bytes = chunk_bytes or READ_BYTES
    reader = zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
    rest = b""
    while chunk := reader.read(chunk_bytes):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from (line for line in lines if line.strip())
    if rest.strip():
        yield rest


class _FrameWriter:
    """Appends trajectory lines as independent zstd frames and copies whole compacted files."""

    def __init__(self, path: Path | BinaryIO, policy: Policy, *,
                 keep_offsets: bool = True) -> None:
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
        self.keep_offsets = keep_offsets
        self.offset: dict[str, int] = {}
        """Each added line's frame offset by run id (with ``keep_offsets``; a merge keeps what
        :meth:`add_line` returns instead, one input at a time)."""

    def add_line(self, run_id: str, line: bytes) -> int:
        """Append a line; returns the offset of the frame that will hold it (the frame being
        filled starts where the file ends now)."""
        self.buf.append(line)
        if self.keep_offsets:
            self.buf_ids.append(run_id)
        self.buf_len += len(line) + 1
        at = self.pos
        if self.buf_len >= self.frame_bytes:
            self.flush()
        return at

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
            while chunk := src.read(READ_BYTES):
                self.fh.write(chunk)
                self.pos += len(chunk)
        return base

    def close(self) -> None:
        self.flush()
        self.fh.flush()
        self.fh.close()


def _parquet_writer(fh: BinaryIO, schema: pa.Schema, policy: Policy) -> pq.ParquetWriter:
    """A writer of compacted Parquet: zstd, statistics, :data:`ENCODINGS`, and the rows'
    order (:data:`SORT_KEYS`) recorded as each row group's ``sorting_columns``."""
    sorting = [pq.SortingColumn(RESULTS_SCHEMA.get_field_index(k)) for k in SORT_KEYS]
    return pq.ParquetWriter(
        fh, schema, compression="zstd", compression_level=policy.parquet_zstd_level,
        sorting_columns=sorting, write_statistics=True, column_encoding=ENCODINGS,
        use_dictionary=[f.name for f in RESULTS_SCHEMA if f.name not in ENCODINGS])


def write_rows(fh: BinaryIO, table: pa.Table, policy: Policy) -> None:
    """Write sorted rows (:data:`SORT_KEYS`) as a compacted Parquet file to ``fh``: zstd,
    row groups of ``policy.row_group_rows`` with statistics, :data:`ENCODINGS`."""
    with _parquet_writer(fh, table.schema, policy) as w:
        w.write_table(table, row_group_size=policy.row_group_rows)


# the streaming merge ----------------------------------------------------------------------

class _Null:
    """A null key value: above every value (Arrow sorts nulls last), equal only to itself."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return other is self

    def __gt__(self, other: object) -> bool:
        return other is not self

    def __ge__(self, other: object) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return other is self

    def __hash__(self) -> int:
        return 0


_NULL = _Null()

Key = tuple[Any, ...]
"""A row's :data:`SORT_KEYS` as Python values (``_NULL`` for a null), which compare as
Arrow sorts them: strings by code point (UTF-8's byte order), nulls last."""

_ORDER = [(k, "ascending") for k in (*SORT_KEYS, "run_id")]
"""How a merge sorts: :data:`SORT_KEYS`, then ``run_id`` (a fixed order among equal keys,
and a run present twice as neighbours)."""


def _keys(batch: pa.RecordBatch) -> list[Key]:
    """The keys of every row of a batch (a few thousand rows: what a run holds)."""
    cols = []
    for k in SORT_KEYS:
        col = batch.column(k)
        values = col.to_pylist()
        cols.append([_NULL if v is None else v for v in values] if col.null_count else values)
    return list(zip(*cols, strict=True))


def _row_key(t: pa.Table, i: int) -> Key:
    return tuple(_NULL if v is None else v for v in (t.column(k)[i].as_py() for k in SORT_KEYS))


def _one_batch(t: pa.Table) -> pa.RecordBatch:
    batches = t.to_batches()
    return batches[0] if len(batches) == 1 else t.combine_chunks().to_batches()[0]


class _Run:
    """A stream of rows sorted by :data:`SORT_KEYS`, read a batch at a time into ``buf``
    (``keys[at:]`` are its rows' keys).

    :meth:`fill` keeps ``buf`` non-empty and, unless the stream has ended, ending on a key
    above its first: every row the stream has still to give is at least :attr:`last`.
    """

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self.batches = batches
        self.buf: pa.RecordBatch | None = None
        self.keys: list[Key] = []
        self.at = 0
        self.done = False

    @property
    def rows(self) -> int:
        return 0 if self.buf is None else self.buf.num_rows

    @property
    def last(self) -> Key:
        return self.keys[-1]

    def fill(self) -> None:
        while not self.done and (self.rows == 0 or self.keys[self.at] == self.keys[-1]):
            nxt = next(self.batches, None)
            if nxt is None:
                self.done = True
            elif nxt.num_rows and self.buf is not None and self.buf.num_rows:
                self.buf = pa.concat_batches([self.buf, nxt])  # a key as long as a batch
                self.keys, self.at = self.keys[self.at:] + _keys(nxt), 0
            elif nxt.num_rows:
                self.buf, self.keys, self.at = nxt, _keys(nxt), 0

    def count_below(self, bound: Key) -> int:
        """How many leading rows have a key below ``bound`` (a bisection)."""
        return bisect.bisect_left(self.keys, bound, lo=self.at) - self.at

    def take(self, n: int) -> pa.RecordBatch:
        assert self.buf is not None
        out, self.buf = self.buf.slice(0, n), self.buf.slice(n)
        self.at += n
        return out


class _Sink:
    """Receives a merge's output, chunk by chunk, each sorted by :data:`_ORDER`; checks that
    each starts strictly above where the previous ended (so the whole is sorted and rows of
    equal key came together) and holds no run twice."""

    def __init__(self, write: Callable[[pa.Table], None], eval_id: str) -> None:
        self.write = write
        self.eval_id = eval_id
        self.last: Key | None = None
        self.rows = 0

    def __call__(self, t: pa.Table) -> None:
        n = t.num_rows
        if self.last is not None and not _row_key(t, 0) > self.last:
            raise StoreError(f"eval {self.eval_id}: a compacted file's rows are not in the "
                             "order its metadata says; not compacted")
        rid = t.column("run_id")
        if n > 1 and pc.any(pc.equal(rid.slice(1), rid.slice(0, n - 1))).as_py():
            raise StoreError(f"eval {self.eval_id}: a run appears in two committed batches; "
                             "not compacted")
        self.last = _row_key(t, n - 1)
        self.rows += n
        self.write(t)


RELEASE_EVERY = 64
"""Rounds of a merge after which Arrow's pool is asked to return freed memory to the system
(a merge frees and allocates a chunk of rows every round)."""


def _merge_runs(runs: Sequence[_Run], sink: _Sink) -> None:
    """Merge sorted runs into ``sink``: each round emits, sorted, every buffered row below
    the smallest ``last`` of the runs not yet ended (no row still unread can be below it)."""
    for r in runs:
        r.fill()
    active = [r for r in runs if r.rows]
    rounds = 0
    while active:
        rounds += 1
        if rounds % RELEASE_EVERY == 0:
            pa.default_memory_pool().release_unused()
        bound = min((r.last for r in active if not r.done), default=None)
        parts = []
        for r in active:
            n = r.rows if bound is None else r.count_below(bound)
            if n:
                parts.append(r.take(n))
        if not parts:  # a run whose rows are not sorted after all
            raise StoreError(f"eval {sink.eval_id}: a compacted file's rows are not in the "
                             "order its metadata says; not compacted")
        sink(pa.Table.from_batches(parts).sort_by(_ORDER))
        for r in active:
            r.fill()
        active = [r for r in active if r.rows]


class _Spill:
    """Sorted runs written to temporary Arrow IPC files (the system's temporary directory,
    made when first needed and removed with everything in it when the merge ends)."""

    def __init__(self, stack: contextlib.ExitStack, batch_rows: int) -> None:
        self.stack = stack
        self.batch_rows = max(1, batch_rows)
        self.dir: Path | None = None
        self.count = 0

    def writer(self) -> tuple[Path, pa.ipc.RecordBatchFileWriter]:
        if self.dir is None:
            self.dir = Path(self.stack.enter_context(
                tempfile.TemporaryDirectory(prefix="evalfleet-merge-")))
        self.count += 1
        path = self.dir / f"run{self.count}.arrow"
        options = pa.ipc.IpcWriteOptions(compression="lz4")
        return path, pa.ipc.new_file(str(path), RESULTS_SCHEMA, options=options)

    def write(self, table: pa.Table) -> Iterable[pa.RecordBatch]:
        """One sorted table as a run file; returns its stream."""
        path, w = self.writer()
        with w:
            w.write_table(table, max_chunksize=self.batch_rows)
        return _read_spill(path)

    def merge(self, runs: Sequence[Iterable[pa.RecordBatch]], sink_of: Callable[
            [Callable[[pa.Table], None]], _Sink]) -> Iterable[pa.RecordBatch]:
        """Merge some runs into one run file; returns its stream."""
        path, w = self.writer()
        with w:
            _merge_runs([_Run(iter(r)) for r in runs],
                        sink_of(lambda t: w.write_table(t, max_chunksize=self.batch_rows)))
        return _read_spill(path)


def _read_spill(path: Path) -> Iterator[pa.RecordBatch]:
    """A run file's batches, one read at a time."""
    with pa.OSFile(str(path)) as fh:
        reader = pa.ipc.open_file(fh)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


class _Rewrite:
    """Rewrites one input's ``trajectory_uri`` values for the merged trajectory file."""

    def __init__(self, tp: str, rel_traj: str) -> None:
        self.tp = tp
        self.rel_traj = rel_traj
        self.base: int | None = None
        """Where the input's file was copied (its ``#@OFFSET`` URIs are shifted by it)."""
        self.run_ids: pa.Array | None = None
        """... or the run ids of its lines, re-framed one by one, and their frames'
        offsets."""
        self.offsets: pa.Array | None = None

    def __call__(self, t: pa.Table) -> pa.Table:
        uri = t.column("trajectory_uri")
        if self.base is not None:
            prefix = f"{self.tp}#@"
            hit = pc.fill_null(pc.starts_with(uri, prefix), False)
            digits = pc.if_else(hit, pc.utf8_slice_codeunits(uri, len(prefix)), "0")
            offset = pc.add(pc.cast(digits, pa.int64()), self.base)
        elif self.run_ids is not None and self.offsets is not None:
            run_id = t.column("run_id")
            line = pc.index_in(run_id, value_set=self.run_ids)
            hit = pc.fill_null(pc.and_(
                pc.equal(uri, pc.binary_join_element_wise(f"{self.tp}#", run_id, "")),
                pc.is_valid(line)), False)
            offset = pc.take(self.offsets, line)
        else:
            return t
        if not pc.any(hit).as_py():
            return t
        new = pc.binary_join_element_wise(f"{self.rel_traj}#@",
                                          pc.cast(offset, pa.string()), "")
        i = RESULTS_SCHEMA.get_field_index("trajectory_uri")
        return t.set_column(i, RESULTS_SCHEMA.field(i), pc.if_else(hit, new, uri))


def _is_sorted(pf: pq.ParquetFile) -> bool:
    """Whether every row group says its rows are sorted by :data:`SORT_KEYS` (as compacted
    files are; a batch file is in its commit's order)."""
    names = pf.schema_arrow.names
    want = [(k, False) for k in SORT_KEYS]
    for g in range(pf.metadata.num_row_groups):
        cols = pf.metadata.row_group(g).sorting_columns or ()
        got = [(names[c.column_index] if c.column_index < len(names) else None, c.descending)
               for c in cols]
        if got[:len(want)] != want or any(c.nulls_first for c in cols[:len(want)]):
            return False
    return True


def _has_offset_uris(pf: pq.ParquetFile, tp: str) -> bool:
    """Whether any row points into ``tp`` by frame offset (a compacted trajectory file,
    copied whole) rather than by run id (a batch's file, whose lines are re-framed)."""
    prefix = f"{tp}#@"
    if "trajectory_uri" not in pf.schema_arrow.names:
        return False
    for batch in pf.iter_batches(batch_size=64 * 1024, columns=["trajectory_uri"],
                                 use_threads=False):
        if pc.any(pc.fill_null(pc.starts_with(batch.column(0), prefix), False)).as_py():
            return True
    return False


@contextlib.contextmanager
def _reading(rel: str) -> Iterator[None]:
    """Read errors of an input as the StoreError compaction raises for them."""
    try:
        yield
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot compact {rel}: {exc}") from None


def _input_batches(root: Root, b: dict[str, Any], rewrite: _Rewrite | None,
                   batch_rows: int) -> Iterator[pa.RecordBatch]:
    """A batch file's rows, ``batch_rows`` at a time, conformed and with their trajectory
    URIs rewritten; the file is open only while the stream is read (read on this thread:
    memory allocated by Arrow's pool threads and freed here is kept longer by mimalloc)."""
    rel = b["results_path"]
    with _reading(rel), fs.parquet_file(root, rel) as pf:
        yield from _conformed(pf, rewrite, batch_rows)


def _conformed(pf: pq.ParquetFile, rewrite: _Rewrite | None,
               batch_rows: int) -> Iterator[pa.RecordBatch]:
    for batch in pf.iter_batches(batch_size=max(1, batch_rows), use_threads=False):
        if batch.num_rows:
            t = conform(pa.Table.from_batches([batch]))
            yield _one_batch(rewrite(t) if rewrite is not None else t)


class _GroupMerge:
    """One merge: the group's trajectories into one file, its rows into sorted runs, then the
    runs into one Parquet file, within :class:`Policy`'s ``merge_rows`` and ``merge_fan_in``."""

    def __init__(self, root: Root, eval_id: str, rel_traj: str, policy: Policy,
                 stack: contextlib.ExitStack) -> None:
        self.root = root
        self.eval_id = eval_id
        self.rel_traj = rel_traj
        self.chunk = max(2, policy.merge_rows)
        self.fan_in = max(2, policy.merge_fan_in)
        self.spill = _Spill(stack, self.chunk // self.fan_in)
        self.sorted_inputs: list[tuple[dict[str, Any], _Rewrite | None]] = []
        """Large sorted inputs, read as runs of their own once every trajectory is written."""
        self.runs: list[tuple[int, Iterable[pa.RecordBatch]]] = []
        """Sorted chunks of the other inputs' rows (run files), with their rows."""
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0

    def add_inputs(self, group: Sequence[dict[str, Any]], traj: _FrameWriter) -> bool:
        """Write every input's trajectories to ``traj`` and sort the rows of those inputs that
        are not read as sorted runs; returns whether any input had a trajectory file."""
        wrote = False
        for b in group:
            with _reading(b["results_path"]), fs.parquet_file(self.root,
                                                              b["results_path"]) as pf:
                _check_input(pf, b)
                tp: str | None = b["trajectories_path"]
                rewrite: _Rewrite | None = None
                if tp and fs.is_file(self.root, tp):
                    wrote = True
                    rewrite = _Rewrite(tp, self.rel_traj)
                    if _has_offset_uris(pf, tp):
                        rewrite.base = traj.copy_file(self.root, tp)
                    else:
                        self._reframe(traj, tp, rewrite)
                if (_is_sorted(pf) and pf.metadata.num_rows >= self.chunk // 2
                        and (rewrite is None or rewrite.base is not None)):
                    self.sorted_inputs.append((b, rewrite))  # read once trajectories are done
                    continue
                for batch in _conformed(pf, rewrite, self.chunk):
                    self._add_unsorted(batch)
        return wrote

    def _reframe(self, traj: _FrameWriter, tp: str, rewrite: _Rewrite) -> None:
        """Append a batch's trajectory lines one by one, noting each line's frame."""
        run_ids: list[str] = []
        offsets: list[int] = []
        with _reading(tp), fs.open_read(self.root, tp) as fh:
            for line in _iter_lines(fh):
                rid = _line_run_id(line)
                run_ids.append(rid)
                offsets.append(traj.add_line(rid, line))
        rewrite.run_ids = pa.array(run_ids, pa.string())
        rewrite.offsets = pa.array(offsets, pa.int64())

    def _add_unsorted(self, batch: pa.RecordBatch) -> None:
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        if self.pending_rows > self.chunk:
            rows = self.pending_rows
            self.runs.append((rows, self.spill.write(self._sorted_pending())))

    def _sorted_pending(self) -> pa.Table:
        out = pa.Table.from_batches(self.pending).sort_by(_ORDER)
        self.pending, self.pending_rows = [], 0
        return out

    def write(self, sink: _Sink) -> None:
        """Merge every run into ``sink``, at most ``merge_fan_in`` at once (beyond that, the
        smallest are merged into a run file first), the runs of a pass read in batches that
        together hold about ``merge_rows``."""
        runs: list[tuple[int, Callable[[int], Iterable[pa.RecordBatch]]]] = [
            (int(b["n_rows"]), functools.partial(_input_batches, self.root, b, rw))
            for b, rw in self.sorted_inputs]
        runs += [(n, functools.partial(_as_is, r)) for n, r in self.runs]
        if self.pending:
            last = self._sorted_pending()
            runs.append((last.num_rows, functools.partial(_slices, last)))
        while len(runs) > self.fan_in:
            # the fewest rows that bring the runs down to merge_fan_in: the smallest runs,
            # as many as that takes (at most merge_fan_in), merged into one
            runs.sort(key=lambda r: r[0])
            take = min(self.fan_in, len(runs) - self.fan_in + 1)
            now, runs = runs[:take], runs[take:]
            merged = self.spill.merge([r(self.chunk // self.fan_in) for _, r in now],
                                      functools.partial(_Sink, eval_id=self.eval_id))
            runs.append((sum(n for n, _ in now), functools.partial(_as_is, merged)))
        step = max(1, self.chunk // max(1, len(runs)))
        streams = [r(step) for _, r in runs]
        try:
            _merge_runs([_Run(iter(s)) for s in streams], sink)
        finally:
            for s in streams:
                if isinstance(s, Iterator) and hasattr(s, "close"):
                    s.close()


def _as_is(batches: Iterable[pa.RecordBatch], _batch_rows: int) -> Iterable[pa.RecordBatch]:
    """A run file's stream (its batches were cut when it was written)."""
    return batches


def _slices(t: pa.Table, n: int) -> Iterator[pa.RecordBatch]:
    """A sorted table held in memory, as a stream of batches of ``n`` rows."""
    if t.num_rows:
        whole = _one_batch(t)
        for start in range(0, t.num_rows, max(1, n)):
            yield whole.slice(start, n)


class _RowGroups:
    """Writes sorted tables as row groups of exactly ``row_group_rows`` (the last one
    shorter): ParquetWriter closes a row group at the end of every write."""

    def __init__(self, writer: pq.ParquetWriter, rows: int) -> None:
        self.writer = writer
        self.size = max(1, rows)
        self.buf: list[pa.Table] = []
        self.held = 0

    def __call__(self, t: pa.Table) -> None:
        self.buf.append(t)
        self.held += t.num_rows
        while self.held >= self.size:
            held = pa.concat_tables(self.buf)
            self.writer.write_table(held.slice(0, self.size), row_group_size=self.size)
            rest = held.slice(self.size)
            self.buf, self.held = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> None:
        if self.held:
            self.writer.write_table(pa.concat_tables(self.buf), row_group_size=self.size)
        self.buf, self.held = [], 0


def merge_memory_pool() -> pa.MemoryPool:
    """The pool a merge allocates from (:func:`_merge_pool`; a test may measure another)."""
    return pa.system_memory_pool()


_pool_lock = threading.Lock()
_pool_merges = 0
_pool_before: pa.MemoryPool | None = None


@contextlib.contextmanager
def _merge_pool() -> Iterator[None]:
    """Arrow's default memory pool while a merge runs (in any thread): the system allocator.

    pyarrow's default, mimalloc, keeps freed pages a while; a merge frees and allocates a
    chunk of rows every round, and its resident set grew by a fifth to a half more than with
    the system allocator (the final merge of 1M rows alone: +154 MB against +128; a merge of
    64 batch files of 1,024 rows: +97 MB against +66; ``bench/memory.py --runs 1000000``
    peaked at 395 MB against 370). The previous pool comes back when the last merge ends;
    arrays allocated meanwhile keep the pool they came from.
    """
    global _pool_merges, _pool_before
    pool = merge_memory_pool()
    with _pool_lock:
        if _pool_merges == 0:
            _pool_before = pa.default_memory_pool()
            pa.set_memory_pool(pool)
        _pool_merges += 1
    try:
        yield
    finally:
        with _pool_lock:
            _pool_merges -= 1
            if _pool_merges == 0 and _pool_before is not None:
                pa.set_memory_pool(_pool_before)
                _pool_before = None
        pool.release_unused()
        pa.default_memory_pool().release_unused()


def _merge(root: Root, journal: Journal, eval_id: str, group: Sequence[dict[str, Any]],
           policy: Policy, bytes_before: int, now: float | None) -> Merge:
    batch_id = uuid.uuid4().hex[:20]
    results_dir, traj_dir = eval_rel_dirs(eval_id)
    rel_results = f"{results_dir}/{batch_id}.parquet"
    rel_traj = f"{traj_dir}/{batch_id}.jsonl.zst"
    n_rows = sum(int(b["n_rows"]) for b in group)
    fs.makedirs(root, traj_dir)
    written: list[str] = []
    has_traj = False
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(_merge_pool())
            merge = _GroupMerge(root, eval_id, rel_traj, policy, stack)
            written.append(rel_traj + fs.TMP_SUFFIX)
            traj = _FrameWriter(fs.open_tmp(root, rel_traj), policy, keep_offsets=False)
            try:
                has_traj = merge.add_inputs(group, traj)
            finally:
                traj.close()
            if has_traj:
                fs.publish_tmp(root, rel_traj)
                written[-1] = rel_traj
            else:
                fs.remove(root, rel_traj + fs.TMP_SUFFIX)
                written.pop()
            fs.makedirs(root, results_dir)
            written.append(rel_results + fs.TMP_SUFFIX)
            with fs.open_tmp(root, rel_results) as fh, \
                    _parquet_writer(fh, versioned_schema(), policy) as w:
                groups = _RowGroups(w, policy.row_group_rows)
                sink = _Sink(groups, eval_id)
                merge.write(sink)
                groups.close()
            if sink.rows != n_rows:
                raise StoreError(f"eval {eval_id}: {sink.rows} rows merged, the journal "
                                 f"says {n_rows}; not compacted")
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
