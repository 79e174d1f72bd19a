"""Results rows (Parquet, zstd) and trajectory blobs (zstd JSON lines), one file pair per batch.

Files are written under a temporary name and renamed, then the journal commit records them.
A crash between the two leaves files no commit references; only the driver that holds an eval
removes them (:func:`remove_orphans`), and only once they are older than a grace period.
They live under the warehouse root (the home, or any fsspec URL): every file operation goes
through :mod:`evalfleet.store.fs`.
"""

from __future__ import annotations

import functools
import io
import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zstandard

from evalfleet._util.arrow import arrow_without_pandas
from evalfleet._util.hashing import short_hash
from evalfleet.errors import StoreError
from evalfleet.spec.agent import AgentSpec
from evalfleet.spec.result import RunResult
from evalfleet.spec.task import GRADING_VERSION, ScorerSpec, Suite
from evalfleet.store import fs
from evalfleet.store.fs import Root

if TYPE_CHECKING:
    import pyarrow as pa

RESULTS_SCHEMA: pa.Schema
"""The columns of every results row (built on first use: readers that never touch pyarrow,
such as `plan review` or `status`, do not pay its import)."""


@functools.cache
def _results_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        pa.field("run_id", pa.string(), metadata={"doc": "Deterministic run id."}),
        pa.field("eval_id", pa.string(), metadata={"doc": "Eval id."}),
        pa.field("plan_name", pa.string(), metadata={"doc": "Plan name."}),
        pa.field("suite", pa.string(), metadata={"doc": "Suite name."}),
        pa.field("suite_hash", pa.string(), metadata={"doc": "Hash of the suite's tasks."}),
        pa.field("task_id", pa.string(), metadata={"doc": "Task id."}),
        pa.field("task_hash", pa.string(), metadata={"doc": "Hash of everything about the task."}),
        pa.field("scorer_hash", pa.string(),
                 metadata={"doc": "Hash of the task's scorer spec (kind and args); part of the "
                                  "reuse key."}),
        pa.field("category", pa.string(), metadata={"doc": "Task category."}),
        pa.field("difficulty", pa.int8(), metadata={"doc": "Difficulty 1-5."}),
        pa.field("domain", pa.string(), metadata={"doc": "Task domain."}),
        pa.field("repository", pa.string(), metadata={"doc": "Task repository, if any."}),
        pa.field("agent_name", pa.string(), metadata={"doc": "Agent name."}),
        pa.field("agent_version", pa.string(), metadata={"doc": "Agent version."}),
        pa.field("agent_fingerprint", pa.string(), metadata={"doc": "Hash of the agent spec."}),
        pa.field("model", pa.string(), metadata={"doc": "Model name."}),
        pa.field("model_tier", pa.string(), metadata={"doc": "Price tier."}),
        pa.field("repeat", pa.int32(), metadata={"doc": "Repeat index k."}),
        pa.field("status", pa.string(), metadata={"doc": "completed, failed, errored, cancelled."}),
        pa.field("error_kind", pa.string(), metadata={"doc": "Error class, if any."}),
        pa.field("error", pa.string(), metadata={"doc": "Short error message."}),
        pa.field("score", pa.float64(), metadata={"doc": "Primary score in [0, 1]."}),
        pa.field("passed", pa.bool_(), metadata={"doc": "Whether the run passed."}),
        pa.field("metrics", pa.map_(pa.string(), pa.float64()), metadata={"doc": "Extra metrics."}),
        pa.field("tokens_in", pa.int64(), metadata={"doc": "Prompt tokens."}),
        pa.field("tokens_cached", pa.int64(),
                 metadata={"doc": "Prompt tokens served from the provider's cache (part of "
                                  "tokens_in)."}),
        pa.field("tokens_out", pa.int64(), metadata={"doc": "Completion tokens."}),
        pa.field("cost_usd", pa.float64(), metadata={"doc": "Model dollars, all attempts."}),
        pa.field("infra_cost_usd", pa.float64(),
                 metadata={"doc": "Sandbox dollars: seconds of all attempts x the plan's infra "
                                  "rate / 3600."}),
        pa.field("latency_s", pa.float64(), metadata={"doc": "Wall time of the final attempt."}),
        pa.field("attempts", pa.int32(), metadata={"doc": "Attempts made."}),
        pa.field("worker", pa.string(), metadata={"doc": "Worker of the final attempt."}),
        pa.field("sandbox", pa.string(), metadata={"doc": "Sandbox provider used."}),
        pa.field("started_at", pa.timestamp("ms", tz="UTC"), metadata={"doc": "Start time."}),
        pa.field("finished_at", pa.timestamp("ms", tz="UTC"), metadata={"doc": "Finish time."}),
        pa.field("trajectory_uri", pa.string(), metadata={"doc": "Where the trajectory is."}),
        pa.field("reused_from", pa.string(),
                 metadata={"doc": "Run whose result this row reuses (plan reuse), if any."}),
        pa.field("reused_cost_usd", pa.float64(),
                 metadata={"doc": "What the reused source run cost, model + infra"}),
        pa.field("services_hash", pa.string(),
                 metadata={"doc": "Hash of the services the plan started (the simulated model's "
                                  "spec); empty without any. Part of the reuse key."}),
    ])


def _schema() -> pa.Schema:
    """:data:`RESULTS_SCHEMA`, built once and then kept as the module's attribute (which a
    test may replace)."""
    schema: pa.Schema | None = globals().get("RESULTS_SCHEMA")
    if schema is None:
        schema = globals()["RESULTS_SCHEMA"] = _results_schema()
    return schema


def __getattr__(name: str) -> Any:
    if name == "RESULTS_SCHEMA":
        return _schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


RESULTS_SCHEMA_VERSION = 2
"""Version of :data:`RESULTS_SCHEMA`, written into every Parquet file's key-value metadata
under :data:`SCHEMA_VERSION_KEY`. Files without it are version 0 (written before files were
versioned; they differ from later ones only by columns added since, which read as NULL).
1: files carry the version; 2: ``services_hash`` added.

The rule: a column is only ever added (readers use ``union_by_name``, so an older file reads
with NULL there), never retyped or reused under another meaning; a rename goes through a
named :class:`ResultsMigration`, applied on read. Bump the version with each added column or
migration."""

SCHEMA_VERSION_KEY = b"evalfleet.schema_version"


@dataclass(frozen=True, slots=True)
class ResultsMigration:
    """A column renamed in :data:`RESULTS_SCHEMA`, applied whenever files are read.

    Files older than ``version`` have the column as ``old``; readers see it as ``new``
    (DuckDB's ``runs`` view takes ``coalesce(new, old)``, compaction renames it in the rows
    it rewrites, which are then written at the current version).
    """

    name: str
    version: int
    old: str
    new: str


RESULTS_MIGRATIONS: tuple[ResultsMigration, ...] = ()
"""Named results-schema migrations, oldest first. Only ever append."""


def schema_version(metadata: dict[bytes, bytes] | None) -> int:
    """The results-schema version of a Parquet file from its key-value metadata (0: none)."""
    raw = (metadata or {}).get(SCHEMA_VERSION_KEY)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def conform(table: pa.Table) -> pa.Table:
    """Rows of any earlier schema version as the current :data:`RESULTS_SCHEMA`: migrations
    applied, columns added since filled with NULL, types cast.

    Raises:
        StoreError: the table has a column this version does not know (a newer writer's):
            rewriting it would lose that column.
    """
    import pyarrow as pa

    for m in RESULTS_MIGRATIONS:
        if m.old in table.column_names and m.new not in table.column_names:
            table = table.rename_columns([m.new if c == m.old else c for c in table.column_names])
    unknown = [c for c in table.column_names if _schema().get_field_index(c) < 0]
    if unknown:
        raise StoreError(f"results columns {', '.join(unknown)} are unknown to this version "
                         "of evalfleet (written by a newer one); upgrade before compacting")
    names = set(table.column_names)
    cols: list[pa.ChunkedArray | pa.Array] = []
    for f in _schema():
        if f.name not in names:
            cols.append(pa.nulls(table.num_rows, f.type))
            continue
        col = table.column(f.name)
        # a cast costs even to the same type (a merge conforms a batch at a time)
        cols.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(cols, schema=_schema())


def versioned_schema() -> pa.Schema:
    """:data:`RESULTS_SCHEMA` with the version in its key-value metadata."""
    return _schema().with_metadata({SCHEMA_VERSION_KEY: str(RESULTS_SCHEMA_VERSION)})


@dataclass(frozen=True, slots=True)
class RowContext:
    """Plan-level facts added to every row of an eval."""

    eval_id: str
    plan_name: str
    suite: Suite
    agents: Sequence[AgentSpec]
    services_hash: str = ""
    """:attr:`~evalfleet.spec.plan.Plan.services_hash` of the eval's plan."""


@dataclass(frozen=True, slots=True)
class WrittenBatch:
    """Paths (relative to the warehouse root) of a written but not yet committed batch."""

    batch_id: str
    results_path: str
    trajectories_path: str | None


ORPHAN_GRACE_S = 300.0
"""An unreferenced file younger than this is never removed: it may be a batch being committed."""

TMP_GRACE_S = 3600.0
"""A ``.tmp`` file is a write in progress; only one this old is taken as a crashed writer's."""

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]{0,199}$")


def scorer_hash(scorer: ScorerSpec) -> str:
    """Hash of a scorer spec (kind and args) and of evalfleet's grading version: the
    ``scorer_hash`` column, part of the key under which a plan with ``reuse: true`` takes an
    earlier run's result (a release that grades differently invalidates reuse).

    Every task of a JSON Lines suite has its own spec object, mostly with the same content:
    the hash is remembered by the grading version and the spec's JSON (a suite has a few
    distinct scorers).
    """
    key = (GRADING_VERSION, scorer.model_dump_json())
    cached = _SCORER_HASHES.get(key)
    if cached is None:
        if len(_SCORER_HASHES) >= 4096:  # a suite of distinct scorers: keep memory bounded
            _SCORER_HASHES.clear()
        cached = _SCORER_HASHES[key] = short_hash(GRADING_VERSION, scorer.model_dump(mode="json"))
    return cached


_SCORER_HASHES: dict[tuple[str, str], str] = {}
"""scorer_hash by the grading version and the spec's JSON."""

_TRAJ_JSON = json.JSONEncoder(default=str)
"""``json.dumps(..., default=str)`` without building an encoder per trajectory."""

def _ts(t: float) -> datetime | None:
    return datetime.fromtimestamp(t, UTC) if t else None


def eval_dirs(home: Path, eval_id: str) -> tuple[Path, Path]:
    """The eval's own results and trajectories directories (nothing else's)."""
    results, trajectories = eval_rel_dirs(eval_id)
    return home / results, home / trajectories


def eval_rel_dirs(eval_id: str) -> tuple[str, str]:
    """The eval's own results and trajectories directories, relative to the warehouse root.

    Raises:
        StoreError: the eval id cannot name a directory.
    """
    if not _SAFE_ID.match(eval_id) or ".." in eval_id:
        raise StoreError(f"eval id {eval_id!r} cannot name a directory")
    return f"results/eval_id={eval_id}", f"trajectories/{eval_id}"


def private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700; existing ones keep their mode.

    Sandboxed code may run under another uid on the same machine: it must not list or read
    other evals' results and trajectories.
    """
    fs.makedirs(fs.as_root(path), "")


class ResultsWriter:
    """Writes one Parquet file and one trajectory blob per batch, under the warehouse root
    (a home ``Path``, or a :class:`~evalfleet.store.fs.Root`)."""

    def __init__(self, root: Path | Root) -> None:
        self.root = fs.as_root(root)
        self._zstd = zstandard.ZstdCompressor(level=3)

    def write(self, ctx: RowContext, results: Sequence[RunResult]) -> WrittenBatch:
        """Write a batch's files (not yet committed)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        batch_id = uuid.uuid4().hex[:20]
        results_dir, traj_dir = eval_rel_dirs(ctx.eval_id)
        rel_results = f"{results_dir}/{batch_id}.parquet"
        rel_traj = f"{traj_dir}/{batch_id}.jsonl.zst"
        by_id = ctx.suite.by_id
        agents = ctx.agents
        traj = io.BytesIO()
        has_traj = False
        # one tuple per row, transposed into columns at the end (one zip, not an append per
        # cell); the columns every row of the batch shares are repeated, not rebuilt per row
        per_row: list[tuple[Any, ...]] = []
        scorer_hashes: dict[int, str] = {}  # by the spec object: tasks often share one
        for r in results:
            task = by_id[r.task_id]
            agent = agents[r.agent_index]
            s_hash = scorer_hashes.get(id(task.scorer))
            if s_hash is None:
                s_hash = scorer_hashes[id(task.scorer)] = scorer_hash(task.scorer)
            uri = None
            if r.trajectory is not None:
                has_traj = True
                uri = f"{rel_traj}#{r.run_id}"
                traj.write(_TRAJ_JSON.encode({"run_id": r.run_id, **r.trajectory})
                           .encode("utf-8") + b"\n")
            per_row.append((
                r.run_id, r.task_id, task.task_hash, s_hash, task.category,
                task.difficulty, task.domain, task.repository, agent.name, agent.version,
                agent.fingerprint, agent.model, agent.tier, r.repeat, r.status, r.error_kind,
                r.error, r.score, r.passed, list(r.metrics.items()), r.tokens_in,
                r.tokens_cached, r.tokens_out, r.cost_usd, r.infra_cost_usd, r.latency_s,
                r.attempts, r.worker, r.sandbox, _ts(r.started_at), _ts(r.finished_at), uri,
                r.reused_from, r.reused_cost_usd,
            ))
        # the eval's facts, by their place in the schema (columns go by place, not by name:
        # a release may rename a column)
        fields = _schema()
        shared = {1: ctx.eval_id, 2: ctx.plan_name, 3: ctx.suite.name, 4: ctx.suite.suite_hash,
                  len(fields) - 1: ctx.services_hash}
        n = len(per_row)
        varying = list(zip(*per_row, strict=True)) if n else [()] * (len(fields) - len(shared))
        if len(varying) + len(shared) != len(fields):
            raise StoreError(f"the results schema has {len(fields)} columns; the writer "
                             f"fills {len(varying) + len(shared)}")
        run_cols = iter(varying)
        cols = {f.name: [shared[i]] * n if i in shared else next(run_cols)
                for i, f in enumerate(fields)}
        with arrow_without_pandas():  # plain lists: no pandas import in the driver
            table = pa.table(cols, schema=versioned_schema())
        fs.makedirs(self.root, results_dir)
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf, compression="zstd")
        fs.write_atomic(self.root, rel_results, buf.getvalue().to_pybytes())
        traj_path: str | None = None
        if has_traj:
            fs.makedirs(self.root, traj_dir)
            fs.write_atomic(self.root, rel_traj, self._zstd.compress(traj.getvalue()))
            traj_path = rel_traj
        return WrittenBatch(batch_id, rel_results, traj_path)

    def remove(self, batch: WrittenBatch) -> None:
        """Delete a batch's files (its commit failed)."""
        for rel in (batch.results_path, batch.trajectories_path):
            if rel:
                fs.remove(self.root, rel)


def remove_orphans(root: Path | Root, eval_id: str, referenced: set[str], *,
                   grace_s: float = ORPHAN_GRACE_S, tmp_grace_s: float = TMP_GRACE_S,
                   now: float | None = None) -> list[str]:
    """Delete one eval's batch files that no committed batch references; return their paths.

    Only the caller that holds the eval's driver claim may call this. It looks only in that
    eval's own directories, and never removes a file modified less than ``grace_s`` ago (a
    batch between its write and its commit) nor a ``.tmp`` file younger than ``tmp_grace_s``
    (a write in progress).
    """
    now = time.time() if now is None else now
    root = fs.as_root(root)
    removed: list[str] = []
    for base in eval_rel_dirs(eval_id):
        for f in fs.list_files(root, base):
            if f.rel in referenced or f.symlink or f.mtime is None:
                continue  # an unknown age (a file system that does not say) is never old
            if not (f.name.endswith((".parquet", ".jsonl.zst", ".tmp"))):
                continue  # not a file this writer makes: not ours to judge
            if now - f.mtime < (tmp_grace_s if f.name.endswith(".tmp") else grace_s):
                continue
            fs.remove(root, f.rel)
            removed.append(f.rel)
    return sorted(removed)


def read_trajectory(root: Path | Root, uri: str,
                    run_id: str | None = None) -> dict[str, Any] | None:
    """Load one run's trajectory from its ``trajectory_uri`` under the warehouse root (the
    home ``Path``, or a :class:`~evalfleet.store.fs.Root`).

    Two forms: ``path#RUN_ID`` (a batch's file, one zstd frame: the line of RUN_ID) and
    ``path#@OFFSET`` (a compacted file of many zstd frames: the frame starting at byte OFFSET
    holds the line of the row's run, ``run_id``). None when the file or line is gone.
    """
    rel, _, frag = uri.partition("#")
    root = fs.as_root(root)
    if frag.startswith("@"):
        if run_id is None or not frag[1:].isdigit():
            return None
        want = run_id
        try:
            with fs.open_read(root, rel) as fh:
                fh.seek(int(frag[1:]))
                data = zstandard.ZstdDecompressor().stream_reader(
                    fh, read_across_frames=False).read()
        except (FileNotFoundError, zstandard.ZstdError):
            return None
    else:
        want = frag
        try:
            raw = fs.read_bytes(root, rel)
        except FileNotFoundError:
            return None
        data = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(raw), read_across_frames=True).read()
    for line in data.splitlines():
        obj: dict[str, Any] = json.loads(line)
        if obj.get("run_id") == want:
            return obj
    return None
