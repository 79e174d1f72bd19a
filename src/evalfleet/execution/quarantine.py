"""Poison-task quarantine: a task whose attempts keep ending in infrastructure failures.

A task that crashes its sandbox, kills its process group or takes down every worker it lands
on fails as ``infra_error`` on each attempt, and infrastructure errors are retried: left alone,
it would burn ``max_attempts`` of every one of its runs (and, on a cluster, a worker each
time). A task is quarantined once

- its attempts, counted over every run of that task in the eval (every agent, every repeat,
  earlier drivers included), ended in ``quarantine_after`` infrastructure failures,
- none of its attempts ever ended any other way (a pass, a wrong answer, an agent error ...:
  the task does not take down everything it touches), and
- the infrastructure works for the other tasks: if attempts of other tasks fail at rate ``q``
  (429s from the provider are not counted: they are the provider's, not the task's), a streak
  of ``k`` failures is a poison only when ``q ** k <= STREAK_ODDS`` (1 in 10,000). With
  infrastructure that is otherwise healthy (``q`` near 0) that is ``quarantine_after``
  failures; with a flaky model server failing 20% of attempts it takes 6.

Then none of its runs is leased again, those not yet run end with status ``quarantined``
(missing data, like the other infra-ended runs, and listed with the errors in ``status`` and
the report), a run of it waiting out a retry's backoff is committed with its last error, and
the eval goes on.

The failures and the decision live in the journal (through :class:`QuarantineSink`), so a
``resume`` starts from them (the other tasks' rate and which tasks ever ended otherwise are
this driver's observations); :class:`Quarantine` is the dispatcher's view of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

STREAK_ODDS = 1e-4
"""A streak of infrastructure failures is a poison task's only when infrastructure failing at
the other tasks' rate would fail that many attempts in a row less often than this."""

Failure = tuple[str, str, int, str]
"""``(run_id, task_id, attempt, error)`` of an attempt that ended in an infrastructure error."""


class QuarantineSink(Protocol):
    """Where the quarantine keeps its counts and decisions (the journal, for one eval)."""

    def infra_failures(self) -> Mapping[str, int]:
        """Infrastructure failures recorded so far, per task id."""
        ...

    def quarantined_tasks(self) -> Mapping[str, int]:
        """Tasks quarantined so far, with their failure count then."""
        ...

    def record_failures(self, failures: Sequence[Failure]) -> None:
        """Record attempts that ended in an infrastructure error."""
        ...

    def quarantine(self, task_id: str, failures: int, run_ids: Sequence[str] = ()) -> int:
        """Quarantine ``task_id``: end its pending runs and the leased ``run_ids`` (never
        started) as ``quarantined``; returns how many ended so. Called again, it ends the runs
        added since."""
        ...


@dataclass(slots=True)
class Quarantine:
    """Counts infrastructure failures per task and decides when a task is quarantined.

    ``threshold`` 0 turns quarantine off (failures are still counted and recorded).
    """

    threshold: int
    failures: dict[str, int] = field(default_factory=dict)
    """Infrastructure failures per task id, earlier drivers' included."""
    ended_otherwise: set[str] = field(default_factory=set)
    """Tasks an attempt of which ended other than in an infrastructure failure."""
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    """This driver's (attempts ended, infrastructure failures) per task."""
    attempts: int = 0
    """Attempts ended in this driver (rate-limited ones left out)."""
    infra: int = 0
    """Of them, infrastructure failures."""
    quarantined: dict[str, int] = field(default_factory=dict)
    """Quarantined task ids, with their failure count when quarantined."""
    fresh: list[str] = field(default_factory=list)
    """Tasks quarantined since the dispatcher last looked (it drops their queued runs)."""

    @classmethod
    def load(cls, threshold: int, sink: QuarantineSink | None) -> Quarantine:
        """The quarantine as the journal left it (empty without a sink)."""
        if sink is None:
            return cls(threshold)
        return cls(threshold, failures=dict(sink.infra_failures()),
                   quarantined=dict(sink.quarantined_tasks()))

    def is_quarantined(self, task_id: str) -> bool:
        return task_id in self.quarantined

    def attempt_ended(self, task_id: str, infra: bool) -> bool:
        """Count an attempt of ``task_id`` that ended, in an infrastructure failure or not;
        True if that quarantines the task."""
        a, f = self.seen.get(task_id, (0, 0))
        self.seen[task_id] = (a + 1, f + infra)
        self.attempts += 1
        self.infra += infra
        if not infra:
            self.ended_otherwise.add(task_id)
            return False
        n = self.failures[task_id] = self.failures.get(task_id, 0) + 1
        if self.threshold <= 0 or task_id in self.quarantined or n < self.threshold \
                or task_id in self.ended_otherwise:
            return False
        others = self.attempts - (a + 1)
        if others <= 0:
            return False  # nothing says the infrastructure works for other tasks yet
        q = (self.infra - (f + 1)) / others
        if q > 0 and n * math.log(q) > math.log(STREAK_ODDS):
            return False  # as likely a flaky infrastructure as a poison task
        self.quarantined[task_id] = n
        self.fresh.append(task_id)
        return True
