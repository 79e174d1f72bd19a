"""Tiered retention: old evals keep their rows and rollups, and fewer trajectories.

Tiers by an eval's age (its finish time, else its creation time):

- **hot** (younger than ``hot_days``): everything is kept; retention does not touch the eval.
- **warm** (younger than ``warm_days``): rows, rollups and a stratified sample of
  trajectories: in each stratum (agent name and version, task category, passed) the
  ``ceil(warm_sample * n)`` runs (at least one) with the smallest hash of their run id
  (:func:`sample_key`) among the ``n`` that had a trajectory. The choice depends on nothing
  but the run ids and the rows, which retention never changes, so applying it again keeps
  the same runs and removes nothing more.
- **cold**: rows and rollups only; no trajectories.

Whatever the tier, retention never removes a results row, touches a rollup, or removes the
trajectory of a pinned run (:meth:`~evalfleet.store.journal.Journal.pin`: a review or a
decision references it, or someone pinned it by hand).

Thinning reuses compaction's protocol (:mod:`evalfleet.store.compaction`), fused with it:
the eval's live batches are grouped as the final compaction would group them
(:func:`~evalfleet.store.compaction.plan_merges`; an uncompacted eval is compacted on the
way), and each group that holds a trajectory to remove, or that compaction would merge, is
rewritten as one new batch:

1. **Write new**: the group's rows (checked against the journal, run ids unique), their
   ``trajectory_uri`` rewritten: a kept trajectory's to its frame in the new trajectory file
   (``path#@OFFSET``), a removed one's to ``""`` (:data:`REMOVED_URI`; NULL stays NULL: the
   run never had one); the kept trajectory lines re-framed into independent zstd frames.
   Both files are written under a ``.tmp`` name, fsynced and renamed.
2. **Record** in one journal transaction
   (:meth:`~evalfleet.store.journal.Journal.commit_compaction` with the removed runs): the
   new batch replaces the group's batches, unless one of the removed runs was pinned
   meanwhile (then nothing changes).
3. **Delete old, later**: the replaced files go once the grace period has passed
   (:func:`~evalfleet.store.compaction.purge_retired`), so a reader that listed them just
   before the swap still reads them.

A crash before step 2 leaves files no batch references (removed as orphans by the eval's
next driver, ``compact`` or ``retention apply``); after it, superseded files for a later
purge. Readers see either the old batches or the new one, so never a row lost or twice.

A dry run (``dry_run=True``) reads the same files and writes the same bytes into counters
instead of files, so it reports exactly what would be removed and what the new files weigh.

File operations go through the small functions at the end of this module (``_size``,
``_read_columns``, ``_open_lines``, ``_create``, ``_publish``, ``_delete``), each over
:mod:`evalfleet.store.fs`, so the warehouse root may be the home or an fsspec URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import zstandard

from evalfleet.errors import SpecError, StoreError
from evalfleet.store import compaction, fs
from evalfleet.store.fs import Root
from evalfleet.store.journal import Journal
from evalfleet.store.results import RESULTS_SCHEMA, eval_rel_dirs, versioned_schema

log = logging.getLogger("evalfleet.store.retention")

TIERS = ("hot", "warm", "cold")
PIN_KINDS = ("review", "decision", "manual")
"""Who references a pinned trajectory."""

REMOVED_URI = ""
"""``trajectory_uri`` of a row whose trajectory retention removed (NULL: it never had one)."""

DAY_S = 86_400.0

_STRATUM_COLS = ("run_id", "agent_name", "agent_version", "category", "passed",
                 "trajectory_uri")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The tiers' bounds and the warm tier's sample (Settings ``retention_*``)."""

    hot_days: float = 30.0
    """Evals younger than this keep everything."""
    warm_days: float = 183.0
    """Evals younger than this (and not hot) keep a stratified sample of trajectories."""
    warm_sample: float = 0.10
    """Fraction of each stratum's trajectories a warm eval keeps (at least one)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.hot_days) and self.hot_days >= 0):
            raise SpecError(f"retention hot days must be a number >= 0, not {self.hot_days}",
                            field="retention_hot_days")
        if not (math.isfinite(self.warm_days) and self.warm_days >= self.hot_days):
            raise SpecError(f"retention warm days ({self.warm_days}) must be at least the hot "
                            f"days ({self.hot_days})", field="retention_warm_days")
        if not (0.0 <= self.warm_sample <= 1.0):
            raise SpecError(f"retention warm sample must be a fraction in [0, 1], not "
                            f"{self.warm_sample}", field="retention_warm_sample")

    def tier(self, age_s: float) -> str:
        """The tier of an eval ``age_s`` seconds old."""
        if age_s < self.hot_days * DAY_S:
            return "hot"
        if age_s < self.warm_days * DAY_S:
            return "warm"
        return "cold"


def eval_age_s(ev: dict[str, Any], now: float) -> float:
    """Seconds since the eval finished (else since it was created), at ``now``."""
    since = ev.get("finished_at") or ev["created_at"]
    return max(0.0, now - float(since))


def sample_key(run_id: str) -> int:
    """The run's place in the warm sample's order: a 64-bit hash of its id."""
    return int.from_bytes(hashlib.blake2b(run_id.encode("utf-8"), digest_size=8).digest(),
                          "big")


def kept_runs(rows: pa.Table, tier: str, fraction: float, pinned: set[str]) -> set[str]:
    """Run ids (among ``rows`` that have or had a trajectory) whose trajectories ``tier``
    keeps: all (hot), the stratified sample and the pinned ones (warm), the pinned ones
    (cold)."""
    had = rows.filter(pc.is_valid(rows.column("trajectory_uri")))
    ids: list[str] = had.column("run_id").to_pylist()
    if tier == "hot":
        return set(ids)
    keep = {r for r in ids if r in pinned}
    if tier == "cold":
        return keep
    strata: dict[tuple[Any, ...], list[str]] = {}
    for rid, name, version, cat, passed in zip(
            ids, *(had.column(c).to_pylist() for c in _STRATUM_COLS[1:5]), strict=True):
        strata.setdefault((name, version, cat, passed), []).append(rid)
    for members in strata.values():
        k = max(1, math.ceil(fraction * len(members)))
        keep.update(sorted(members, key=sample_key)[:k])
    return keep


@dataclass(slots=True)
class GroupReport:
    """One new batch written (or, in a dry run, that would be)."""

    batch_id: str
    inputs: int
    rows: int
    trajectories_kept: int
    trajectories_removed: int
    bytes_before: int
    bytes_after: int


@dataclass(slots=True)
class EvalRetention:
    """What retention did (or would do) to one eval."""

    eval_id: str
    tier: str
    age_days: float
    status: str = "unchanged"
    """``unchanged`` (nothing to remove), ``thinned``, ``would_thin`` (dry run), ``skipped``
    (running, see ``reason``) or ``failed`` (see ``reason``)."""
    reason: str = ""
    rows: int = 0
    trajectories_kept: int = 0
    """Trajectories the eval keeps after this apply."""
    trajectories_removed: int = 0
    """Trajectories this apply removes."""
    already_removed: int = 0
    """Trajectories an earlier apply removed."""
    pinned_kept: int = 0
    files_before: int = 0
    files_after: int = 0
    bytes_before: int = 0
    """Results and trajectory files of the rewritten batches, before."""
    bytes_after: int = 0
    """... and of the new batches that replace them."""
    groups: list[GroupReport] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def bytes_freed(self) -> int:
        """Bytes the home holds fewer once the replaced files are deleted (after the grace
        period)."""
        return self.bytes_before - self.bytes_after

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out = asdict(self)
        out["bytes_freed"] = self.bytes_freed
        return out


def read_strata(root: Root, batches: Sequence[dict[str, Any]]) -> pa.Table:
    """The columns retention decides on, of every row of ``batches``, and each row's
    ``batch_id``."""
    tables = []
    for b in batches:
        t = _read_columns(root, b["results_path"], _STRATUM_COLS)
        tables.append(t.append_column("batch_id", pa.array([b["batch_id"]] * t.num_rows,
                                                           pa.string())))
    if not tables:
        return pa.table({**{c: pa.array([], RESULTS_SCHEMA.field(c).type)
                            for c in _STRATUM_COLS}, "batch_id": pa.array([], pa.string())})
    return pa.concat_tables(tables)


def apply_eval(home: Path | Root, journal: Journal, eval_id: str, policy: RetentionPolicy, *,
               now: float | None = None, dry_run: bool = False,
               compaction_policy: compaction.Policy = compaction.DEFAULT_POLICY,
               progress: Callable[[str], None] | None = None) -> EvalRetention:
    """Apply the eval's tier to its trajectories (see the module's description).

    Only the holder of the eval's claim may call this without ``dry_run`` (as for
    compaction); readers may run meanwhile. A dry run only reads.

    Raises:
        StoreError: a file is missing, damaged or disagrees with the journal, or a removed
            run was pinned meanwhile; that group is not recorded (earlier ones are).
    """
    now = time.time() if now is None else now
    root = fs.as_root(home)
    ev = journal.get_eval(eval_id)
    age = eval_age_s(ev, now)
    tier = policy.tier(age)
    rep = EvalRetention(eval_id, tier, round(age / DAY_S, 3), dry_run=dry_run)
    batches = list(journal.iter_batches(eval_id))
    rep.files_before = rep.files_after = len(batches)
    rows = read_strata(root, batches)
    rep.rows = rows.num_rows
    uris: list[str | None] = rows.column("trajectory_uri").to_pylist()
    ids: list[str] = rows.column("run_id").to_pylist()
    rep.already_removed = sum(u == REMOVED_URI for u in uris)
    pinned = {p["run_id"] for p in journal.pins(eval_id)}
    keep = kept_runs(rows, tier, policy.warm_sample, pinned)
    remove = {r for r, u in zip(ids, uris, strict=True) if u and r not in keep}
    rep.pinned_kept = sum(1 for r, u in zip(ids, uris, strict=True) if u and r in pinned)
    live = sum(1 for u in uris if u)
    rep.trajectories_kept = live - len(remove)
    if tier == "hot":
        return rep
    if not remove:
        if not dry_run:  # e.g. after a crash between the swap and this record
            rec = journal.retention_records().get(eval_id)
            if rec is None or (rec["tier"], rec["trajectories_kept"],
                               rec["trajectories_removed"]) != (
                                   tier, rep.trajectories_kept, rep.already_removed):
                journal.record_retention(eval_id, tier, kept=rep.trajectories_kept,
                                         removed=rep.already_removed, now=now)
        return rep
    # the groups final compaction would merge, and every other batch alone; only groups with
    # a trajectory to remove, or to merge, are rewritten
    on_disk = fs.sizes(root, [b["results_path"] for b in batches])
    sizes = {b["batch_id"]: on_disk.get(b["results_path"], 0) for b in batches}
    merges = compaction.plan_merges(batches, sizes, compaction_policy, final=True)
    grouped = {b["batch_id"] for g in merges for b in g}
    groups = merges + [[b] for b in batches if b["batch_id"] not in grouped]
    batch_of = dict(zip(ids, rows.column("batch_id").to_pylist(), strict=True))
    todo = [g for g in groups
            if len(g) > 1 or any(batch_of[r] == g[0]["batch_id"] for r in remove)]
    rep.status = "would_thin" if dry_run else "thinned"
    for i, group in enumerate(todo, 1):
        if progress is not None:
            progress(f"eval {eval_id} ({tier}): batch {i} of {len(todo)}, "
                     f"{sum(int(b['n_rows']) for b in group):,} rows")
        g = _rewrite(root, journal, eval_id, group, remove, compaction_policy,
                     now=now, dry_run=dry_run)
        rep.groups.append(g)
        rep.trajectories_removed += g.trajectories_removed
        rep.bytes_before += g.bytes_before
        rep.bytes_after += g.bytes_after
        rep.files_after -= len(group) - 1
    if not dry_run:
        journal.record_retention(eval_id, tier, kept=rep.trajectories_kept,
                                 removed=rep.already_removed + rep.trajectories_removed,
                                 now=now)
    return rep


class _Counter(io.RawIOBase):
    """A write-only sink that keeps only the number of bytes written (the dry run's file)."""

    def __init__(self) -> None:
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        n = len(memoryview(b).cast("B"))
        self.n += n
        return n

    def tell(self) -> int:
        return self.n


def _rewrite(root: Root, journal: Journal, eval_id: str, group: Sequence[dict[str, Any]],
             remove: set[str], policy: compaction.Policy, *, now: float,
             dry_run: bool) -> GroupReport:
    """Write one group's rows and kept trajectories as a new batch and swap it in."""
    replaced = [b["batch_id"] for b in group]
    # a name of its own inputs: a dry run weighs the same names, and a crashed apply's
    # leftover (never recorded) is simply written again
    h = hashlib.blake2b(f"retention\0{eval_id}\0".encode(), digest_size=10)
    for part in (*sorted(replaced), "\0", *sorted(remove)):
        h.update(part.encode("utf-8") + b"\0")
    batch_id = h.hexdigest()
    results_dir, traj_dir = eval_rel_dirs(eval_id)
    rel_results = f"{results_dir}/{batch_id}.parquet"
    rel_traj = f"{traj_dir}/{batch_id}.jsonl.zst"
    bytes_before = sum(_size(root, b["results_path"]) + _size(root, b["trajectories_path"])
                       for b in group)
    tables = [compaction._read_rows(root, b) for b in group]
    table = pa.concat_tables(tables)
    n_rows = table.num_rows
    if pc.count_distinct(table.column("run_id")).as_py() != n_rows:
        raise StoreError(f"eval {eval_id}: a run appears in two committed batches; "
                         "retention not applied")
    if not dry_run:
        fs.makedirs(root, traj_dir)
        fs.makedirs(root, results_dir)
    written: list[str] = []  # files written (their final names; .tmp until published)
    dropped: list[str] = []
    try:
        traj_sink = _create(root, rel_traj, dry_run)
        if not dry_run:
            written.append(rel_traj)
        writer = compaction._FrameWriter(traj_sink, policy)
        removed = 0
        try:
            for b in group:
                for line in _open_lines(root, b["trajectories_path"]):
                    rid = compaction._line_run_id(line)
                    if rid in remove:
                        removed += 1
                        dropped.append(rid)
                    else:
                        writer.add_line(rid, line)
            writer.flush()
            traj_bytes = writer.pos
        finally:
            writer.fh.close()
        has_traj = bool(writer.offset)
        old: list[str | None] = table.column("trajectory_uri").to_pylist()
        rids: list[str] = table.column("run_id").to_pylist()
        new = [None if u is None
               else REMOVED_URI if (r in remove or u == REMOVED_URI)
               else f"{rel_traj}#@{writer.offset[r]}" if r in writer.offset
               else u  # its line was already lost: the URI stays (show says it is missing)
               for r, u in zip(rids, old, strict=True)]
        idx = RESULTS_SCHEMA.get_field_index("trajectory_uri")
        table = table.set_column(idx, RESULTS_SCHEMA.field(idx), pa.array(new, pa.string()))
        table = table.sort_by([(k, "ascending") for k in compaction.SORT_KEYS])
        table = table.replace_schema_metadata(versioned_schema().metadata)
        res_sink = _create(root, rel_results, dry_run)
        try:
            compaction.write_rows(res_sink, table, policy)
            res_bytes = res_sink.tell()
        finally:
            res_sink.close()
        if not dry_run:
            written.append(rel_results)
        if dry_run:
            return GroupReport("", len(group), n_rows, len(writer.offset), removed,
                               bytes_before, res_bytes + (traj_bytes if has_traj else 0))
        if not has_traj:
            _delete(root, rel_traj + fs.TMP_SUFFIX)  # nothing kept: no trajectory file
            written = written[1:]
        for rel in written:
            _publish(root, rel)
        journal.commit_compaction(eval_id=eval_id, batch_id=batch_id, results_path=rel_results,
                                  trajectories_path=rel_traj if has_traj else None,
                                  n_rows=n_rows, replaced=replaced, now=now,
                                  drops_trajectories=dropped)
    except BaseException:
        # the old batches stay live unless the swap happened after all: then the new files
        # hold the rows and must stay
        committed = True
        with contextlib.suppress(Exception):
            committed = not dry_run and journal.has_batch(batch_id)
        if not committed:
            for rel in written:
                _delete(root, rel + fs.TMP_SUFFIX)
                _delete(root, rel)
        raise
    after = _size(root, rel_results) + (_size(root, rel_traj) if has_traj else 0)
    log.debug("eval %s: %d trajectories removed from %d rows in %d batches, now %s", eval_id,
              removed, n_rows, len(group), batch_id)
    return GroupReport(batch_id, len(group), n_rows, len(writer.offset), removed,
                       bytes_before, after)


# file operations: kept together, over evalfleet.store.fs ----------------------------------


def _size(root: Root, rel: str | None) -> int:
    return fs.size(root, rel)


def _read_columns(root: Root, rel: str, columns: Sequence[str]) -> pa.Table:
    try:
        with fs.parquet_file(root, rel) as pf:
            have = [c for c in columns if c in pf.schema_arrow.names]
            t = pf.read(columns=have)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot read {rel}: {exc}") from None
    cols = [t.column(c).cast(RESULTS_SCHEMA.field(c).type) if c in have
            else pa.nulls(t.num_rows, RESULTS_SCHEMA.field(c).type) for c in columns]
    return pa.Table.from_arrays(cols, names=list(columns))


def _open_lines(root: Root, rel: str | None) -> Iterator[bytes]:
    """The trajectory lines of a batch's file (either form), without their newline; none if
    the batch has no file or it is gone."""
    if not rel:
        return
    try:
        fh = fs.open_read(root, rel)
    except FileNotFoundError:
        return
    with fh, io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(
            fh, read_across_frames=True), 2**20) as lines:
        for line in lines:
            line = line.rstrip(b"\n")
            if line.strip():
                yield line


def _create(root: Root, rel: str, dry_run: bool) -> BinaryIO:
    """A new file's sink: ``rel`` + ``.tmp`` (mode 0600 locally), or a byte counter in a dry
    run."""
    if dry_run:
        return _Counter()  # type: ignore[return-value]
    return fs.open_tmp(root, rel)


def _publish(root: Root, rel: str) -> None:
    """fsync ``rel`` + ``.tmp`` and rename it to ``rel`` (durably, where local)."""
    fs.publish_tmp(root, rel)


def _delete(root: Root, rel: str) -> None:
    fs.remove(root, rel)
