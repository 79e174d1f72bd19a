"""Journal tables (SQLAlchemy Core): the same schema on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

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

runs = Table(
    "runs", metadata,
    Column("run_id", String(40), primary_key=True, comment="Deterministic run id."),
    Column("eval_id", String(64), nullable=False, comment="Eval id."),
    Column("seq", Integer, nullable=False, comment="Dispatch order within the eval."),
    Column("task_id", String(200), nullable=False, comment="Task id."),
    Column("agent_index", Integer, nullable=False, comment="Agent's index in the plan."),
    Column("repeat", Integer, nullable=False, comment="Repeat index k."),
    Column("status", String(16), nullable=False,
           comment="pending, leased, done or cancelled."),
    Column("lease_owner", String(100), comment="Worker holding the lease."),
    Column("lease_expires", Float, comment="Unix time the lease ends unless renewed."),
    Column("attempts", Integer, nullable=False, default=0, comment="Attempts started."),
    Column("outcome", String(16), comment="completed, failed, errored or cancelled."),
    Column("passed", Integer, comment="1 passed, 0 not, NULL unknown."),
    Column("cost_usd", Float, comment="Dollars spent by the run."),
    Column("batch_id", String(64), comment="Results batch holding the committed row."),
    Column("stratum", String(100),
           comment="The task's category, for projections by stratum; NULL in runs created "
                   "before the column existed."),
    Index("ix_runs_eval_status_seq", "eval_id", "status", "seq"),
)

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
