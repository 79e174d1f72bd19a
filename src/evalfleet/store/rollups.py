"""Rollups: per (eval, agent version, task category, difficulty, UTC day) sums of committed runs.

The journal keeps them in the table ``rollups``, updated in the same transaction that commits a
results batch (:meth:`Journal.commit_batch`), so they hold exactly the committed rows: a failed
commit adds nothing, a duplicate dropped by the exactly-once commit adds nothing. Dashboards and
``evalfleet trends`` read them instead of scanning raw rows.

What a row counts (the report's rules, docs/analysis.md):

- ``runs``: every committed row; ``reused`` of them were reused from another eval (plan
  ``reuse``) and count with their source's outcome, score, tokens and latency; ``errored``:
  status errored.
- ``scored``, ``passed``, ``score_sum``, ``score_sumsq``: rows that count in the score
  (completed or failed with a valid score in [0, 1]); passed is ``passed``, or score >= 1
  where the scorer left it unset.
- ``model_cost_usd``, ``infra_cost_usd``, ``cost_sumsq`` (of model + infra per run): the rows'
  own cost, so reused rows add 0 (what they saved is in their ``reused_cost_usd``).
- tokens: every row's.
- ``latency_sum`` and the latency buckets ``lat_00`` ... ``lat_57``: scored rows' latency_s.
  Bucket 0 is under ``LATENCY_MIN_S`` (0.01 s); bucket b in 1..56 is
  [0.01 r^(b-1), 0.01 r^b) with r = 10^(1/8); bucket 57 is 10^5 s and over.

Rows are put on the UTC day of their ``finished_at`` (1970-01-01 when a row has none).

A journal from before rollups existed is backfilled from its Parquet rows: the migration that
introduced them lists the batches committed until then in ``rollup_backfill``, and the writer
(:func:`backfill`, called when a writable store opens) rolls each up and strikes it off in one
transaction, so a crash mid-backfill never counts a batch twice.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from evalfleet.spec.result import RunResult
from evalfleet.store.schema import (
    LATENCY_BUCKETS,
    LATENCY_COLUMNS,
    LATENCY_MIN_S,
    LATENCY_PER_DECADE,
    ROLLUP_KEY,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from evalfleet.store.journal import Journal
    from evalfleet.store.results import RowContext

NO_DAY = "1970-01-01"
"""The day of a row without a finish time."""

SUMS = ("runs", "reused", "errored", "scored", "passed", "score_sum", "score_sumsq",
        "model_cost_usd", "infra_cost_usd", "cost_sumsq", "tokens_in", "tokens_cached",
        "tokens_out", "latency_sum", *LATENCY_COLUMNS)
"""Every additive column of a rollup row, in table order."""

RATIO = 10.0 ** (1.0 / LATENCY_PER_DECADE)
"""Width of a latency bucket as a factor (about 1.334)."""

Key = tuple[str, str, str, str, int, str]
"""A rollup row's key: :data:`evalfleet.store.schema.ROLLUP_KEY`."""


class RunFact(NamedTuple):
    """What a rollup needs to know of one committed run (a named tuple: one is made per run
    committed, on the journal thread, at a tenth of a frozen dataclass's cost)."""

    agent_name: str
    agent_version: str
    category: str
    difficulty: int
    day: str
    status: str
    score: float | None
    passed: bool | None
    reused: bool
    model_cost_usd: float
    infra_cost_usd: float
    latency_s: float
    tokens_in: int
    tokens_cached: int
    tokens_out: int

    @property
    def scored(self) -> bool:
        """Whether the run counts in the score (the report's ``SCORED`` rule)."""
        s = self.score
        return (self.status in ("completed", "failed") and s is not None and math.isfinite(s)
                and 0.0 <= s <= 1.0)


def day_of(finished_at: float | datetime | None) -> str:
    """The UTC day (``YYYY-MM-DD``) of a finish time: a Unix time as the results writer
    converts it (0 or None: no time), or the Parquet row's timestamp."""
    if isinstance(finished_at, datetime):
        return finished_at.astimezone(UTC).date().isoformat()
    if not finished_at:
        return NO_DAY
    # the same conversion as the results writer (microseconds, rounded), so the day agrees
    # with the row's finished_at (milliseconds, truncated) even a microsecond before midnight;
    # a time that cannot round up into the next second has its second's day (remembered:
    # a batch's runs end within a few seconds)
    second = math.floor(finished_at)
    if finished_at - second < 0.999999:
        return _day_of_second(second)
    return datetime.fromtimestamp(finished_at, UTC).date().isoformat()


@functools.lru_cache(maxsize=64)
def _day_of_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).date().isoformat()


def latency_bucket(latency_s: float) -> int:
    """The bucket of a latency: 0 under 0.01 s (and non-finite), then log-spaced."""
    if not (math.isfinite(latency_s) and latency_s >= LATENCY_MIN_S):
        return 0
    b = math.floor(math.log10(latency_s / LATENCY_MIN_S) * LATENCY_PER_DECADE) + 1
    return min(max(b, 1), LATENCY_BUCKETS - 1)


def bucket_bounds(b: int) -> tuple[float, float]:
    """[lower, upper) seconds of latency bucket ``b`` (bucket 0: [0, 0.01); the last is
    [10^5, inf))."""
    if b <= 0:
        return 0.0, LATENCY_MIN_S
    lower = LATENCY_MIN_S * RATIO ** (b - 1)
    return lower, (math.inf if b >= LATENCY_BUCKETS - 1 else LATENCY_MIN_S * RATIO ** b)


def bucket_at_rank(counts: Iterable[int], rank: int) -> int | None:
    """The bucket holding the ``rank``-th smallest latency (1-based), or None if out of range."""
    if rank < 1:
        return None
    seen = 0
    for b, n in enumerate(counts):
        seen += int(n)
        if seen >= rank:
            return b
    return None


def latency_quantile(counts: Iterable[int], q: float) -> float:
    """The q-quantile read from bucket counts: the bucket holding rank ceil(q n), reported at
    its geometric midpoint (so within a factor sqrt(r) ~ 1.155 of the true order statistic,
    i.e. at most 15.5% off) - its upper edge 0.01 s for bucket 0, its lower edge 10^5 s for
    the last; nan without data."""
    c = [int(n) for n in counts]
    n = sum(c)
    if n == 0:
        return math.nan
    b = bucket_at_rank(c, max(1, math.ceil(q * n)))
    assert b is not None
    lower, upper = bucket_bounds(b)
    if b == 0:
        return upper
    if math.isinf(upper):
        return lower
    return math.sqrt(lower * upper)


def fact_of(ctx: RowContext, r: RunResult) -> RunFact:
    """The rollup facts of a result about to be committed, from the plan's context."""
    task = ctx.suite.by_id[r.task_id]
    agent = ctx.agents[r.agent_index]
    return RunFact(
        agent_name=agent.name, agent_version=agent.version, category=task.category or "",
        difficulty=int(task.difficulty or 0), day=day_of(r.finished_at), status=r.status,
        score=r.score, passed=r.passed, reused=r.reused_from is not None,
        model_cost_usd=float(r.cost_usd or 0.0), infra_cost_usd=float(r.infra_cost_usd or 0.0),
        latency_s=float(r.latency_s or 0.0), tokens_in=int(r.tokens_in or 0),
        tokens_cached=int(r.tokens_cached or 0), tokens_out=int(r.tokens_out or 0))


def fact_of_row(row: Mapping[str, Any]) -> RunFact:
    """The rollup facts of a committed Parquet row (for the backfill)."""
    score = row.get("score")
    return RunFact(
        agent_name=str(row.get("agent_name") or ""),
        agent_version=str(row.get("agent_version") or ""),
        category=str(row.get("category") or ""), difficulty=int(row.get("difficulty") or 0),
        day=day_of(row.get("finished_at")), status=str(row.get("status") or ""),
        score=None if score is None else float(score), passed=row.get("passed"),
        reused=row.get("reused_from") is not None,
        model_cost_usd=float(row.get("cost_usd") or 0.0),
        infra_cost_usd=float(row.get("infra_cost_usd") or 0.0),
        latency_s=float(row.get("latency_s") or 0.0), tokens_in=int(row.get("tokens_in") or 0),
        tokens_cached=int(row.get("tokens_cached") or 0),
        tokens_out=int(row.get("tokens_out") or 0))


def aggregate(eval_id: str, facts: Iterable[RunFact]) -> list[dict[str, Any]]:
    """One rollup row (key and sums) per key among ``facts``: what a batch adds."""
    acc: dict[Key, dict[str, Any]] = {}
    for f in facts:
        key: Key = (eval_id, f.agent_name, f.agent_version, f.category, f.difficulty, f.day)
        row = acc.get(key)
        if row is None:
            row = acc[key] = {**dict(zip(ROLLUP_KEY, key, strict=True)),
                              **{c: 0 for c in SUMS}}
            for c in ("score_sum", "score_sumsq", "model_cost_usd", "infra_cost_usd",
                      "cost_sumsq", "latency_sum"):
                row[c] = 0.0
        total = f.model_cost_usd + f.infra_cost_usd
        row["runs"] += 1
        row["reused"] += int(f.reused)
        row["errored"] += int(f.status == "errored")
        row["model_cost_usd"] += f.model_cost_usd
        row["infra_cost_usd"] += f.infra_cost_usd
        row["cost_sumsq"] += total * total
        row["tokens_in"] += f.tokens_in
        row["tokens_cached"] += f.tokens_cached
        row["tokens_out"] += f.tokens_out
        if f.scored:
            s = float(f.score)  # type: ignore[arg-type]  # scored: not None
            row["scored"] += 1
            row["passed"] += int(f.passed if f.passed is not None else s >= 1.0)
            row["score_sum"] += s
            row["score_sumsq"] += s * s
            row["latency_sum"] += f.latency_s
            row[LATENCY_COLUMNS[latency_bucket(f.latency_s)]] += 1
    return list(acc.values())


def backfill(home: Path, journal: Journal) -> int:
    """Roll up the batches committed before the journal had rollups; returns how many.

    Each batch's Parquet rows are aggregated and added in one transaction that also strikes
    the batch off ``rollup_backfill``, so a crash midway leaves the rest for the next writer
    and never counts a batch twice. A batch whose file is missing or unreadable stays listed
    (``evalfleet trends`` says rollups are incomplete). Only a writer calls this.
    """
    import pyarrow.parquet as pq

    done = 0
    for batch_id, eval_id, rel in journal.rollup_backfill_pending():
        try:
            rows = pq.read_table(home / rel).to_pylist()
        except (OSError, ValueError):  # gone or unreadable: it stays listed, trends says so
            continue
        if journal.add_backfill(batch_id, aggregate(eval_id, (fact_of_row(r) for r in rows))):
            done += 1
    return done


def day_range(days: int, today: date) -> tuple[str, str]:
    """First and last day (inclusive) of a window of ``days`` days ending ``today``."""
    first = date.fromordinal(today.toordinal() - days + 1)
    return first.isoformat(), today.isoformat()


def rollups_table(journal: Journal) -> pa.Table:
    """The journal's rollups as an Arrow table (the ``rollups`` view of ``evalfleet query``):
    the key (``day`` a DATE), the sums, ``excluded`` = runs - scored, ``total_cost_usd`` and
    the latency bucket counts as one list ``latency_buckets`` (bucket b as in this module)."""
    import pyarrow as pa

    rows = journal.rollup_rows()
    schema = _view_schema()
    cols: dict[str, list[Any]] = {name: [] for name in schema.names}
    for r in rows:
        for name in schema.names:
            if name == "day":
                cols[name].append(date.fromisoformat(r["day"]))
            elif name == "excluded":
                cols[name].append(r["runs"] - r["scored"])
            elif name == "total_cost_usd":
                cols[name].append(r["model_cost_usd"] + r["infra_cost_usd"])
            elif name == "latency_buckets":
                cols[name].append([r[c] for c in LATENCY_COLUMNS])
            else:
                cols[name].append(r[name])
    return pa.table(cols, schema=schema)


def evals_table(journal: Journal) -> pa.Table:
    """The journal's evals (without the plan) as an Arrow table: the ``evals`` view. Status
    is the journal's (an eval whose driver died still says ``running``; ``status`` says
    ``interrupted``)."""
    import pyarrow as pa

    ts = pa.timestamp("ms", tz="UTC")
    schema = pa.schema([("eval_id", pa.string()), ("plan_name", pa.string()),
                        ("suite_name", pa.string()), ("suite_hash", pa.string()),
                        ("status", pa.string()), ("planned", pa.int64()),
                        ("created_at", ts), ("started_at", ts), ("finished_at", ts),
                        ("driver", pa.string()), ("duplicates_dropped", pa.int64())])
    rows = journal.list_evals()
    cols: dict[str, list[Any]] = {name: [] for name in schema.names}
    for e in rows:
        for name in schema.names:
            v = e.get(name)
            if name.endswith("_at"):
                v = datetime.fromtimestamp(v, UTC) if v else None
            cols[name].append(v)
    return pa.table(cols, schema=schema)


@functools.cache
def _view_schema() -> pa.Schema:
    import pyarrow as pa

    fields: list[tuple[str, pa.DataType]] = [
        ("eval_id", pa.string()), ("agent_name", pa.string()), ("agent_version", pa.string()),
        ("category", pa.string()), ("difficulty", pa.int32()), ("day", pa.date32()),
        ("runs", pa.int64()), ("reused", pa.int64()), ("errored", pa.int64()),
        ("scored", pa.int64()), ("excluded", pa.int64()), ("passed", pa.int64()),
        ("score_sum", pa.float64()), ("score_sumsq", pa.float64()),
        ("model_cost_usd", pa.float64()), ("infra_cost_usd", pa.float64()),
        ("total_cost_usd", pa.float64()), ("cost_sumsq", pa.float64()),
        ("tokens_in", pa.int64()), ("tokens_cached", pa.int64()), ("tokens_out", pa.int64()),
        ("latency_sum", pa.float64()), ("latency_buckets", pa.list_(pa.int64()))]
    return pa.schema(fields)


