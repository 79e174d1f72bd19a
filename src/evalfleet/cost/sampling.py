"""Tiered execution: which tasks a sampled eval runs (deterministic stratified selection).

A plan's ``sample: {tier, fraction, strata, seed}`` runs a share of every stratum (a combination
of the listed task fields) instead of the whole suite:

* Within a stratum of N_h tasks, the tasks are put in the order of a stable hash of
  (suite name, task id): a pseudo-random permutation that depends on neither Python's hash seed
  nor the suite's file order.
* The eval takes the window of n_h = max(1, ceil(share x N_h)) consecutive tasks of that order
  starting at offset (rotation x n_h) mod N_h, wrapping around. Any window of a random
  permutation is a simple random sample of the stratum (without replacement).
* ``rotation`` is the sample's ``seed`` when given, else it comes from the UTC date: the day
  number (days since 1970-01-01) for smoke, the ISO week count (Monday-based weeks since
  1970-01-05) for weekly. Consecutive rotations take adjacent windows, so ceil(1 / share)
  consecutive runs (20 daily smoke runs at 5%, 5 weekly runs at 20%) cover every task before any
  task is run twice. ceil rather than round keeps that promise for every stratum size.

The selection is a pure function of (suite, sample, rotation); the eval pins its rotation in
the stored plan (``seed``), so every later reader (resume, more repeats, the report) sees the
same tasks.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any

from evalfleet.spec.plan import Plan, SampleSpec
from evalfleet.spec.task import Suite, Task

SAMPLE_RECORD_VERSION = 1
_EPOCH = date(1970, 1, 1)
_FIRST_MONDAY = date(1970, 1, 5)
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Stratum:
    """One stratum of a sampled suite."""

    key: tuple[str, ...]
    """The stratum's values of the sample's ``strata`` fields, as text."""
    task_ids: tuple[str, ...]
    """Every task of the stratum, in the stratum's hash order."""
    offset: int
    """Where the window starts in ``task_ids``."""
    sampled: tuple[str, ...]
    """The tasks run: ``task_ids[offset:offset + n_h]``, wrapping around."""

    @property
    def population(self) -> int:
        """N_h, the stratum's tasks in the suite."""
        return len(self.task_ids)

    @property
    def size(self) -> int:
        """n_h, the stratum's tasks run."""
        return len(self.sampled)

    def label(self, fields: Sequence[str]) -> str:
        """``category=x, difficulty=3``."""
        return ", ".join(f"{f}={v}" for f, v in zip(fields, self.key, strict=True))


@dataclass(frozen=True, slots=True)
class Selection:
    """The tasks a plan runs, and how they were chosen."""

    tier: str
    share: float
    fields: tuple[str, ...]
    rotation: int
    rotation_source: str
    strata: tuple[Stratum, ...]
    tasks: tuple[Task, ...]
    """The selected tasks, in suite order."""
    population: int

    @property
    def sampled(self) -> bool:
        """Whether only part of the suite runs."""
        return len(self.tasks) < self.population


def order_keys(suite_name: str, task_ids: Sequence[str]) -> list[bytes]:
    """The stable hashes that order a stratum's tasks: SHA-256 of the length-prefixed suite
    name followed by the task id, the same in every process and on every machine."""
    name = suite_name.encode("utf-8")
    head = hashlib.sha256(len(name).to_bytes(4, "big") + name)
    keys = []
    for tid in task_ids:
        h = head.copy()
        h.update(tid.encode("utf-8"))
        keys.append(h.digest())
    return keys


def sample_size(share: float, population: int) -> int:
    """n_h = max(1, ceil(share x N_h)), at most N_h."""
    return min(population, max(1, math.ceil(share * population - _EPS)))


def utc_today() -> date:
    """Today's date in UTC."""
    return datetime.now(UTC).date()


def date_rotation(tier: str, on: date) -> tuple[int, str]:
    """The rotation a sample without a seed takes on date ``on``, and where it came from."""
    if tier == "weekly":
        monday = date.fromordinal(on.toordinal() - on.weekday())
        weeks = (monday - _FIRST_MONDAY).days // 7
        year, week, _ = on.isocalendar()
        return weeks, f"ISO week {year}-W{week:02d}, week {weeks} since 1970-01-05"
    days = (on - _EPOCH).days
    return days, f"UTC day {on.isoformat()}, day {days} since 1970-01-01"


def rotation_for(sample: SampleSpec, on: date | None = None) -> tuple[int, str]:
    """The sample's rotation: its seed, else from the date (``on``, default today in UTC)."""
    if sample.seed is not None:
        return sample.seed, f"seed {sample.seed}"
    return date_rotation(sample.tier, on if on is not None else utc_today())


_LAST: list[tuple[Suite, SampleSpec, int, Selection]] = []
"""The last selection made: creating an eval asks for the same one several times (runs, count,
record), and a 50,000-task suite takes a noticeable fraction of a second to stratify."""


def select(suite: Suite, sample: SampleSpec | None, *, on: date | None = None) -> Selection:
    """The stratified selection ``sample`` makes from ``suite`` (the whole suite without one).

    ``on`` is the date a sample without a seed rotates by (default: today in UTC).
    """
    n_total = len(suite.tasks)
    if sample is None or sample.share >= 1.0:
        tier = "full" if sample is None else sample.tier
        fields = () if sample is None else tuple(sample.strata)
        return Selection(tier=tier, share=1.0, fields=fields, rotation=0,
                         rotation_source="whole suite", strata=(), tasks=suite.tasks,
                         population=n_total)
    rotation, source = rotation_for(sample, on)
    for cached_suite, cached_sample, cached_rotation, cached in _LAST:
        # suites are immutable: the same object with the same sample and rotation is the same
        if cached_suite is suite and cached_sample == sample and cached_rotation == rotation:
            return replace(cached, rotation_source=source)
    selection = _stratify(suite, sample, rotation, source)
    _LAST[:] = [(suite, sample, rotation, selection)]
    return selection


def planned_tasks(plan: Plan, suite: Suite, *, on: date | None = None) -> tuple[Task, ...]:
    """The tasks the eval runs: the whole suite, or the plan's stratified sample of it.

    A sample without a seed rotates with the UTC date (``on``, default today); `create_eval`
    pins that rotation into the stored plan's ``sample.seed``, so the stored plan always
    selects the same tasks.
    """
    return select(suite, plan.sample, on=on).tasks


def _stratify(suite: Suite, sample: SampleSpec, rotation: int, source: str) -> Selection:
    fields = tuple(sample.strata)
    groups: dict[tuple[Any, ...], list[str]] = {}
    get = attrgetter(*fields) if fields else None
    for task in suite.tasks:
        raw = () if get is None else get(task)
        groups.setdefault(raw if isinstance(raw, tuple) else (raw,), []).append(task.id)
    strata: list[Stratum] = []
    chosen: set[str] = set()
    for key in sorted(groups, key=_sort_key):
        members = groups[key]
        ids = tuple(tid for _, tid in sorted(zip(order_keys(suite.name, members), members,
                                                  strict=True)))
        big_n = len(ids)
        n = sample_size(sample.share, big_n)
        offset = (rotation * n) % big_n
        window = tuple(ids[(offset + j) % big_n] for j in range(n))
        strata.append(Stratum(key=tuple(str(v) for v in key), task_ids=ids, offset=offset,
                              sampled=window))
        chosen.update(window)
    tasks = tuple(t for t in suite.tasks if t.id in chosen)
    return Selection(tier=sample.tier, share=sample.share, fields=fields, rotation=rotation,
                     rotation_source=source, strata=tuple(strata), tasks=tasks,
                     population=len(suite.tasks))


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[int, int, str], ...]:
    # numbers (difficulty) in numeric order, text (category, domain, repository) by text
    return tuple((0, v, "") if isinstance(v, int) else (1, 0, str(v)) for v in key)


def pin_rotation(plan: Plan, on: date | None = None) -> Plan:
    """``plan`` with the rotation of a date-driven sample written into ``sample.seed``, so that
    every later selection from the stored plan takes the same tasks, whatever day it is then."""
    sample = plan.sample
    if sample is None or sample.seed is not None or sample.share >= 1.0:
        return plan
    rotation, _ = rotation_for(sample, on)
    return plan.model_copy(update={"sample": sample.model_copy(update={"seed": rotation})})


def sample_record(selection: Selection, *, eval_id: str, suite: Suite,
                  rotation_source: str | None = None) -> dict[str, Any]:
    """What the report needs to estimate the full-suite metric from the sample, as JSON data.

    ``strata`` lists, per stratum, its key, N_h (``population``), n_h (``sample``), the window's
    ``offset``, every task id (``tasks``) and the sampled ones (``sampled``).
    """
    return {
        "version": SAMPLE_RECORD_VERSION, "eval_id": eval_id,
        "suite": suite.name, "suite_hash": suite.suite_hash,
        "tier": selection.tier, "fraction": selection.share, "fields": list(selection.fields),
        "rotation": selection.rotation,
        "rotation_source": rotation_source or selection.rotation_source,
        "population": selection.population, "sampled": len(selection.tasks),
        "strata": [{"key": list(s.key), "label": s.label(selection.fields),
                    "population": s.population, "sample": s.size, "offset": s.offset,
                    "tasks": list(s.task_ids), "sampled": list(s.sampled)}
                   for s in selection.strata],
    }


def describe(selection: Selection) -> dict[str, Any]:
    """A short JSON summary for ``plan check``: tier, fraction, rotation, tasks run of the
    suite's, strata."""
    return {"tier": selection.tier, "fraction": selection.share, "strata": list(selection.fields),
            "rotation": selection.rotation if selection.sampled else None,
            "rotation_source": selection.rotation_source, "tasks": len(selection.tasks),
            "population": selection.population, "n_strata": len(selection.strata)}
