"""Journal tables (SQLAlchemy Core): the same schema on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
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
