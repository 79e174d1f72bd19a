"""Journal tables (SQLAlchemy Core): the same schema on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from evalfleet.store.snapshot import RUN_STATUSES as RUN_STATUSES

metadata = MetaData()

_HEX_ID = re.compile(r"[0-9a-f]{24}")


def encode_run_id(run_id: str) -> bytes:
    """A run id as stored in the compact runs table: the 12 bytes of a canonical id (24
    lowercase hex digits, what ``api.evals.run_id`` makes), else its UTF-8 after a zero byte
    (two when that would make 12 bytes), so any other id is kept as it is and never taken for
    a canonical one."""
    if len(run_id) == 24 and _HEX_ID.fullmatch(run_id):
        return bytes.fromhex(run_id)
    raw = run_id.encode()
    if raw.startswith(b"\x00"):
        raise ValueError(f"a run id cannot start with a NUL character: {run_id!r}")
    return (b"\x00\x00" if len(raw) == 11 else b"\x00") + raw


def decode_run_id(stored: bytes) -> str:
    """The run id :func:`encode_run_id` stored."""
    if len(stored) == 12:
        return stored.hex()
    return stored[2:].decode() if len(stored) == 13 and stored[1] == 0 else stored[1:].decode()


class RunId(TypeDecorator[str]):
    """A run id (str in Python) stored by :func:`encode_run_id`: 12 bytes instead of 24
    characters, in the row and in the run-id index."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else encode_run_id(str(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else decode_run_id(bytes(value))


class Code(TypeDecorator[str]):
    """One of a fixed list of names (str in Python) stored as its index in the list: a small
    integer (0 and 1 take no bytes at all in a SQLite record). A name not in the list is an
    error, never stored."""

    impl = SmallInteger
    cache_ok = True

    def __init__(self, *names: str) -> None:
        super().__init__()
        self.names = names
        self._codes = {n: i for i, n in enumerate(names)}

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        try:
            return self._codes[value]
        except KeyError:
            raise ValueError(f"{value!r} is not one of {', '.join(self.names)} "
                             "(add it to the end of the list in store/schema.py)") from None

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self.names[int(value)]


# A run's status as stored in the runs table: its index in RUN_STATUSES (append only),
# defined with the SQLAlchemy-free reader (store/snapshot.py) that decodes it too.
RUN_OUTCOMES = ("failed", "completed", "errored", "cancelled", "quarantined")
"""A run's outcome as stored in the runs table: its index in this list (append only)."""

evals = Table(
    "evals", metadata,
    Column("eval_id", String(64), primary_key=True, comment="Eval id."),
    Column("plan_name", String(200), nullable=False, comment="Name of the plan."),
    Column("plan_json", Text, nullable=False, comment="Snapshot of the validated plan."),
    Column("suite_name", String(200), nullable=False, comment="Suite name."),
    Column("suite_hash", String(64), nullable=False, comment="Hash of the suite's tasks."),
    Column("status", String(32), nullable=False,
           comment="created, running, completed, budget_stopped, interrupted, failed."),
    Column("planned", Integer, nullable=False, comment="Runs planned."),
    Column("created_at", Float, nullable=False, comment="Unix time created."),
    Column("started_at", Float, comment="Unix time the latest driver started."),
    Column("finished_at", Float, comment="Unix time it finished."),
    Column("driver", String(200), comment="host:pid of the driver that holds it."),
    Column("driver_heartbeat", Float, comment="Last heartbeat of that driver."),
    Column("duplicates_dropped", Integer, nullable=False, default=0,
           comment="Late duplicate results dropped by exactly-once commit."),
)

eval_keys = Table(
    "eval_keys", metadata,
    Column("eval_key", Integer, primary_key=True, autoincrement=True,
           comment="Small integer standing for the eval in each of its runs."),
    Column("eval_id", String(64), nullable=False, unique=True, comment="Eval id."),
)
"""Each eval's integer key: the runs table stores it instead of the eval id (a few bytes per
run instead of about 30, in the table and in every index)."""

OPEN_STATUSES_SQL = (f"status IN ({RUN_STATUSES.index('pending')}, "
                     f"{RUN_STATUSES.index('leased')})")
"""The runs the partial index ``ix_runs_open`` holds: those not done (nor cancelled or
quarantined). A query that should use it repeats this term literally (SQLite uses a partial
index only when the query's WHERE implies the index's, and a bound parameter implies nothing)."""

runs = Table(
    "runs", metadata,
    Column("eval_key", Integer, primary_key=True, autoincrement=False,
           comment="The eval (eval_keys.eval_key)."),
    Column("seq", Integer, primary_key=True, autoincrement=False,
           comment="Dispatch order within the eval."),
    Column("run_id", RunId, nullable=False,
           comment="Deterministic run id (12 bytes: encode_run_id)."),
    Column("task_id", String(200), nullable=False, comment="Task id."),
    Column("agent_index", Integer, nullable=False, comment="Agent's index in the plan."),
    Column("repeat", Integer, nullable=False, comment="Repeat index k."),
    Column("status", Code(*RUN_STATUSES), nullable=False,
           comment="pending, done, leased, cancelled or quarantined (RUN_STATUSES index)."),
    Column("lease_owner", String(100), comment="Worker holding the lease (NULL unless leased)."),
    Column("lease_expires", Float,
           comment="Unix time the lease ends unless renewed (NULL unless leased)."),
    Column("attempts", Integer, nullable=False, default=0,
           comment="Attempts that ran and ended (a lease alone is not an attempt)."),
    Column("outcome", Code(*RUN_OUTCOMES),
           comment="failed, completed, errored, cancelled or quarantined (RUN_OUTCOMES index)."),
    Column("passed", Integer, comment="1 passed, 0 not, NULL unknown."),
    Column("cost_usd", Float, comment="Dollars spent by the run."),
    Column("stratum", String(100),
           comment="The task's category, for projections by stratum; NULL in runs created "
                   "before the column existed."),
    Index("ux_runs_run_id", "run_id", unique=True),
    # PostgreSQL's WHERE is added by for_postgresql() (naming it here imports that dialect,
    # about 60 ms of every command on the default SQLite journal)
    Index("ix_runs_open", "eval_key", "status", "seq", sqlite_where=text(OPEN_STATUSES_SQL)),
    sqlite_with_rowid=False,
)
"""One row per run, clustered by (eval, dispatch order): on SQLite a ``WITHOUT ROWID`` table
whose primary key is the row, so an eval's runs are read in order without a separate index and
a finished eval costs the row plus its run-id index entry. Runs that are not done are also in
the small partial index ``ix_runs_open`` (what leasing and resume read); a committed run leaves
it. Which results batch holds a committed row is the batches table's business, not the run's.
The run id is stored in 12 bytes (:class:`RunId`), status and outcome as small integers
(:class:`Code`); through SQLAlchemy Core they read and compare as the strings they stand for."""


def for_postgresql() -> None:
    """Give the partial index ``ix_runs_open`` its WHERE term on PostgreSQL too (the same
    as on SQLite); called before a PostgreSQL journal creates or migrates tables."""
    index = next(ix for ix in runs.indexes if ix.name == "ix_runs_open")
    index.dialect_options["postgresql"]["where"] = text(OPEN_STATUSES_SQL)


runs_v1 = Table(
    "runs", MetaData(),
    Column("run_id", String(40), primary_key=True),
    Column("eval_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("task_id", String(200), nullable=False),
    Column("agent_index", Integer, nullable=False),
    Column("repeat", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_expires", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("outcome", String(16)),
    Column("passed", Integer),
    Column("cost_usd", Float),
    Column("batch_id", String(64)),
    Column("stratum", String(100)),
    Index("ix_runs_eval_status_seq", "eval_id", "status", "seq"),
)
"""The runs table before migration ``runs_compact`` (eval id and batch id in every row, a rowid
table with an index on the run id): what readers of a journal no writer has migrated yet read,
and what the migration copies from."""

batches = Table(
    "batches", metadata,
    Column("batch_id", String(64), primary_key=True, comment="Batch id."),
    Column("eval_id", String(64), nullable=False, index=True, comment="Eval id."),
    Column("results_path", Text, nullable=False, comment="Parquet file, relative to home."),
    Column("trajectories_path", Text, comment="zstd JSONL of trajectories, relative to home."),
    Column("n_rows", Integer, nullable=False, comment="Rows in the batch."),
    Column("committed_at", Float, nullable=False, comment="Unix time committed."),
    Column("superseded_by", String(64),
           comment="Compacted batch that now holds this batch's rows; NULL while the batch is "
                   "live. Readers list live batches only."),
    Column("superseded_at", Float,
           comment="Unix time it was superseded; its files are deleted a grace period later."),
)

migrations = Table(
    "migrations", metadata,
    Column("name", String(100), primary_key=True, comment="Migration applied to this journal."),
    Column("applied_at", Float, nullable=False, comment="Unix time applied."),
)

LATENCY_MIN_S = 0.01
"""Lower edge of the first log-spaced latency bucket of a rollup (faster runs: bucket 0)."""
LATENCY_PER_DECADE = 8
"""Log-spaced latency buckets per factor of 10: each spans a factor r = 10^(1/8) ~ 1.334."""
LATENCY_DECADES = 7
"""Decades the log-spaced buckets cover: 0.01 s to 10^5 s (27.8 h); slower runs: last bucket."""
LATENCY_BUCKETS = LATENCY_PER_DECADE * LATENCY_DECADES + 2
"""Bucket 0 (under 0.01 s), 56 log-spaced buckets, and the last (10^5 s and over)."""
LATENCY_COLUMNS = tuple(f"lat_{i:02d}" for i in range(LATENCY_BUCKETS))
"""The rollup columns holding the latency bucket counts, in bucket order."""

ROLLUP_KEY = ("eval_id", "agent_name", "agent_version", "category", "difficulty", "day")
"""What one rollup row aggregates: an eval's runs of one agent version, task category and
difficulty that finished on one UTC day."""

rollups = Table(
    "rollups", metadata,
    Column("eval_id", String(64), primary_key=True, comment="Eval id."),
    Column("agent_name", String(200), primary_key=True, comment="Agent name."),
    Column("agent_version", String(200), primary_key=True, comment="Agent version."),
    Column("category", String(200), primary_key=True, comment="Task category ('' if none)."),
    Column("difficulty", Integer, primary_key=True, comment="Task difficulty (0 if none)."),
    Column("day", String(10), primary_key=True,
           comment="UTC day the runs finished, YYYY-MM-DD (1970-01-01: no finish time)."),
    Column("runs", Integer, nullable=False, comment="Committed rows, reused ones included."),
    Column("reused", Integer, nullable=False, comment="Of them, reused from another eval."),
    Column("errored", Integer, nullable=False, comment="Of them, status errored."),
    Column("scored", Integer, nullable=False,
           comment="Of them, counted in the score (completed or failed, valid score)."),
    Column("passed", Integer, nullable=False, comment="Scored rows that passed."),
    Column("score_sum", Float, nullable=False, comment="Sum of the scored rows' scores."),
    Column("score_sumsq", Float, nullable=False, comment="Sum of their squares."),
    Column("model_cost_usd", Float, nullable=False, comment="Model dollars (reused rows: 0)."),
    Column("infra_cost_usd", Float, nullable=False, comment="Sandbox dollars (reused: 0)."),
    Column("cost_sumsq", Float, nullable=False,
           comment="Sum of squared per-run total dollars (model + infra)."),
    Column("tokens_in", BigInteger, nullable=False, comment="Prompt tokens."),
    Column("tokens_cached", BigInteger, nullable=False, comment="Cached prompt tokens."),
    Column("tokens_out", BigInteger, nullable=False, comment="Completion tokens."),
    Column("latency_sum", Float, nullable=False, comment="Sum of the scored rows' latency_s."),
    *[Column(name, Integer, nullable=False,
             comment=f"Scored rows in latency bucket {i} (see LATENCY_MIN_S).")
      for i, name in enumerate(LATENCY_COLUMNS)],
    Index("ix_rollups_day", "day"),
)

rollup_backfill = Table(
    "rollup_backfill", metadata,
    Column("batch_id", String(64), primary_key=True,
           comment="A batch committed before the journal had rollups, not yet rolled up."),
    Column("eval_id", String(64), nullable=False, comment="Its eval."),
)

alerts = Table(
    "alerts", metadata,
    Column("alert_id", Integer, primary_key=True, autoincrement=True, comment="Alert id."),
    Column("kind", String(16), nullable=False, comment="cusum or paired."),
    Column("metric", String(32), nullable=False, comment="pass_rate, score, cost_per_run ..."),
    Column("agent", String(401), nullable=False, comment="AGENT@VERSION."),
    Column("category", String(200), nullable=False, comment="Task category; '' for all."),
    Column("day", String(10), nullable=False, comment="UTC day the alert is about."),
    Column("statistic", Float, comment="CUSUM S_t, or the Holm-adjusted one-sided p-value."),
    Column("threshold", Float, comment="CUSUM h, or alpha."),
    Column("evidence", Text, nullable=False, comment="JSON: what the decision was made on."),
    Column("created_at", Float, nullable=False, comment="Unix time recorded."),
    UniqueConstraint("kind", "metric", "agent", "category", "day", name="uq_alerts_key"),
)

trend_references = Table(
    "trend_references", metadata,
    Column("agent_name", String(200), primary_key=True, comment="Agent name."),
    Column("eval_id", String(64), nullable=False,
           comment="The frozen eval its daily runs are checked against."),
    Column("set_at", Float, nullable=False, comment="Unix time set."),
)

task_failures = Table(
    "task_failures", metadata,
    Column("failure_id", Integer, primary_key=True, autoincrement=True, comment="Row id."),
    Column("eval_id", String(64), nullable=False, comment="Eval id."),
    Column("task_id", String(200), nullable=False, comment="Task id."),
    Column("run_id", String(40), nullable=False, comment="The run whose attempt failed."),
    Column("attempt", Integer, nullable=False, comment="That attempt's number."),
    Column("error", Text, nullable=False, comment="The infrastructure error (first 500 chars)."),
    Column("at", Float, nullable=False, comment="Unix time recorded."),
    Index("ix_task_failures_eval_task", "eval_id", "task_id"),
)
"""Every attempt that ended in an infrastructure error, as it ended (retried or not): what
poison-task quarantine counts per task (execution/quarantine.py), kept across resume."""

quarantined_tasks = Table(
    "quarantined_tasks", metadata,
    Column("eval_id", String(64), primary_key=True, comment="Eval id."),
    Column("task_id", String(200), primary_key=True, comment="Task id."),
    Column("failures", Integer, nullable=False,
           comment="Infrastructure failures of the task's runs when it was quarantined."),
    Column("quarantined_at", Float, nullable=False, comment="Unix time quarantined."),
)
"""Tasks of an eval whose runs are no longer leased: their attempts ended in
``execution.quarantine_after`` infrastructure failures."""

trajectory_pins = Table(
    "trajectory_pins", metadata,
    Column("run_id", String(40), primary_key=True, comment="The run whose trajectory is kept."),
    Column("kind", String(16), primary_key=True,
           comment="Who references it: review, decision or manual."),
    Column("eval_id", String(64), nullable=False, comment="The run's eval."),
    Column("note", Text, nullable=False, default="", comment="Why (free text)."),
    Column("created_at", Float, nullable=False, comment="Unix time pinned."),
    Index("ix_trajectory_pins_eval", "eval_id"),
)
"""Runs whose trajectories retention never removes: a review or a decision references them
(or someone pinned them by hand); store/retention.py."""

retention_applied = Table(
    "retention_applied", metadata,
    Column("eval_id", String(64), primary_key=True, comment="Eval id."),
    Column("tier", String(8), nullable=False,
           comment="The tier retention last applied: warm or cold."),
    Column("applied_at", Float, nullable=False, comment="Unix time applied."),
    Column("trajectories_kept", Integer, nullable=False,
           comment="Trajectories of the eval kept after it."),
    Column("trajectories_removed", Integer, nullable=False,
           comment="Trajectories of the eval removed by retention so far."),
)
"""What retention last did to an eval, so `show` can say why a trajectory is gone."""

pool_demands = Table(
    "pool_demands", metadata,
    Column("pool", String(100), primary_key=True, comment="Pool name (plan execution.pool)."),
    Column("eval_id", String(64), primary_key=True, comment="Eval id."),
    Column("priority", Integer, nullable=False, comment="Higher is served first."),
    Column("share", Float, nullable=False, comment="Weight within its priority."),
    Column("want", Integer, nullable=False, comment="Attempts it could run now."),
    Column("heartbeat", Float, nullable=False, comment="Unix time last renewed."),
)
"""Live demands on shared pools of slots (execution/shares.py): one row per driver's eval,
renewed by its heartbeat; rows older than the reader's lease_seconds are ignored."""
