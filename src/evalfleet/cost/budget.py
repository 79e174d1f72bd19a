"""Budget arithmetic: how much is spent, expected in flight, and left; the projected total.

Every amount is a run's total cost (model plus infrastructure, every attempt).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class Budget:
    """A dollar budget; ``None`` limit means unlimited."""

    limit_usd: float | None
    spent_usd: float = 0.0

    def add(self, usd: float) -> None:
        """Record money spent."""
        self.spent_usd += usd

    @property
    def exhausted(self) -> bool:
        """True once spending reached the limit."""
        return self.limit_usd is not None and self.spent_usd >= self.limit_usd

    def passes_with(self, expected_usd: float) -> bool:
        """Whether spending ``expected_usd`` more would pass the limit (or it is reached)."""
        if self.limit_usd is None:
            return False
        return self.exhausted or self.spent_usd + expected_usd > self.limit_usd


@dataclass(slots=True)
class Tally:
    """Runs finished and what they cost."""

    runs: int = 0
    usd: float = 0.0

    @property
    def mean(self) -> float | None:
        """Mean cost of a finished run; None before any finished."""
        return self.usd / self.runs if self.runs else None


@dataclass(slots=True)
class Budgets:
    """The eval's budget and its agents', and the expected cost of a run of each agent.

    A run's expected cost is the mean cost of the runs of its agent finished so far in this
    eval (by any driver), else the mean over the eval's finished runs, else the agent's
    ``prior`` (the plan review's estimate from prices), else 0. An expectation from finished
    runs is *measured*; one from the prior only holds launches back (:meth:`measured`): the
    dispatcher waits for a run to finish rather than stopping the eval on an estimate.
    """

    eval: Budget
    agents: list[Budget]
    finished: dict[int, Tally] = field(default_factory=dict)
    """Finished runs per agent index (for the means)."""
    prior: dict[int, float] = field(default_factory=dict)
    """Estimated cost of a run per agent index, used until a run has finished."""

    @classmethod
    def start(cls, limit_usd: float | None, agent_limits: Sequence[float | None],
              finished: Mapping[int, Tally] | None = None,
              prior: Sequence[float] | None = None) -> Budgets:
        """Budgets for an eval whose agents already finished ``finished`` (on resume)."""
        done = {i: Tally(t.runs, t.usd) for i, t in (finished or {}).items()}
        return cls(eval=Budget(limit_usd, sum(t.usd for t in done.values())),
                   agents=[Budget(lim, done[i].usd if i in done else 0.0)
                           for i, lim in enumerate(agent_limits)],
                   finished=done, prior=dict(enumerate(prior or ())))

    @property
    def limited(self) -> bool:
        """Whether any budget is set."""
        return self.eval.limit_usd is not None or any(a.limit_usd is not None
                                                      for a in self.agents)

    def add(self, agent: int, usd: float) -> None:
        """A run of ``agent`` finished, costing ``usd`` (all attempts, model + infrastructure)."""
        self.eval.add(usd)
        self.agents[agent].add(usd)
        t = self.finished.setdefault(agent, Tally())
        t.runs += 1
        t.usd += usd

    def charge(self, agent: int, usd: float) -> None:
        """Money a run of ``agent`` spent without finishing (it will run again): counted
        against the budgets, not in the mean cost of a run."""
        self.eval.add(usd)
        self.agents[agent].add(usd)

    def expected(self, agent: int | None) -> float:
        """Expected cost of a run of ``agent`` (None: of any agent)."""
        own = self.finished.get(agent) if agent is not None else None
        if own is not None and own.mean is not None:
            return own.mean
        runs = sum(t.runs for t in self.finished.values())
        if runs:
            return sum(t.usd for t in self.finished.values()) / runs
        if agent is None:
            return max(self.prior.values(), default=0.0)
        return self.prior.get(agent, 0.0)

    def measured(self) -> bool:
        """Whether expectations come from finished runs (else from the prior or nothing)."""
        return any(t.runs for t in self.finished.values())

    def in_flight_usd(self, in_flight: Mapping[int, int]) -> float:
        """Expected cost of the runs in flight (``agent index -> runs``)."""
        return sum(n * self.expected(i) for i, n in in_flight.items())

    def eval_blocks(self, in_flight: Mapping[int, int], next_agent: int | None = None) -> bool:
        """Whether the eval budget forbids starting the next run (of ``next_agent``; None:
        of an agent not known yet)."""
        if self.eval.limit_usd is None:  # unlimited: nothing to add up before every launch
            return False
        return self.eval.passes_with(self.in_flight_usd(in_flight) + self.expected(next_agent))

    def agent_blocks(self, agent: int, in_flight: int) -> bool:
        """Whether ``agent``'s budget forbids starting another of its runs, with ``in_flight``
        of its runs in flight."""
        return self.agents[agent].passes_with((in_flight + 1) * self.expected(agent))


@dataclass(slots=True)
class Stratum:
    """One stratum of a projection (an agent's runs of one task category)."""

    planned: int = 0
    """Runs planned, whatever their status (cancelled ones too)."""
    done: int = 0
    """Runs committed, executed or reused."""
    ran: int = 0
    """Committed runs that were executed (not reused): those whose cost is a measurement."""
    spent_usd: float = 0.0
    """What the committed runs cost (a reused run costs 0)."""


def _means(strata: Mapping[tuple[int, str | None], Stratum]
           ) -> tuple[dict[int, float], float | None]:
    """Mean cost of an executed run, per agent and over the eval (None: nothing ran)."""
    ran: dict[int, int] = {}
    usd: dict[int, float] = {}
    for (agent, _), s in strata.items():
        ran[agent] = ran.get(agent, 0) + s.ran
        usd[agent] = usd.get(agent, 0.0) + s.spent_usd
    total = sum(ran.values())
    return ({a: usd[a] / n for a, n in ran.items() if n},
            sum(usd.values()) / total if total else None)


def project_total(strata: Mapping[tuple[int, str | None], Stratum]) -> float | None:
    """The eval's projected total cost, by stratum (agent index, task category).

    Each stratum projects to ``spent + mean x (planned - done)``, its mean being the cost of
    its executed runs per run; that is ``spent / done x planned`` when nothing was reused (a
    reused run is done at $0 and says nothing about what a run costs). A stratum none of whose
    runs ran yet takes its agent's mean, or if the agent has none, the eval's. None while no
    run has run and some are left (nothing to project from).
    """
    per_agent, eval_mean = _means(strata)
    out = 0.0
    for (agent, _), s in strata.items():
        left = max(s.planned - s.done, 0)
        if not left:
            out += s.spent_usd
            continue
        mean = s.spent_usd / s.ran if s.ran else per_agent.get(agent, eval_mean)
        if mean is None:
            return None
        out += s.spent_usd + mean * left
    return out


def project_by_agent(strata: Mapping[tuple[int, str | None], Stratum]
                     ) -> dict[int, float | None]:
    """The projected total of each agent's strata, with the same fallbacks (an agent none of
    whose runs ran yet is projected at the eval's mean)."""
    per_agent, eval_mean = _means(strata)
    out: dict[int, float | None] = {}
    for agent in sorted({a for a, _ in strata}):
        own = {k: s for k, s in strata.items() if k[0] == agent}
        if agent in per_agent or eval_mean is None:
            out[agent] = project_total(own)
        else:
            out[agent] = sum(s.spent_usd + eval_mean * max(s.planned - s.done, 0)
                             for s in own.values())
    return out
