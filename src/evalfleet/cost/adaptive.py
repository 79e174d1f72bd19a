"""Adaptive depth: which tasks get extra runs in the next round, and when to stop.

Pure arithmetic on per-task sums (no store, no journal): the driver reads each agent's
committed runs, calls :func:`next_round`, and adds the runs it asks for as pending.

The metric is the report's: the mean over tasks of per-task means, every task weighing the
same. With T tasks, task i having n_i scored runs of within-task variance sigma_i^2,

    Var(mean) ~ ( tau^2 + (1/T) sum_i sigma_i^2 / n_i ) / T

where tau^2 is the variance of the true task means (between tasks), which more runs cannot
reduce. The report's SE^2 = S_x^2 / T (S_x^2 the sample variance of the task means) estimates
exactly this, so tau^2 is estimated as S_x^2 - (1/T) sum_i sigma_i^2 / n_i (at least 0).

Each task's sigma_i^2 is shrunk toward the agent's other tasks, so a task that passed (or
failed) every run so far is not taken as certain: for binary scores it is the posterior mean of
p (1 - p) under a prior of pass rates fitted to all the agent's tasks (empirical Bayes on a
grid); for partial credit the sample variance is pooled with the agent-wide mean variance.
Extra runs then go, one at a time, to the task whose next run removes the most variance per dollar,
sigma_i^2 (1/n_i - 1/(n_i + 1)) / cost_i, until the predicted half-width reaches the target;
that is the allocation to aim for. A round moves each task toward it but at most doubles the
task's runs, so what the new runs show steers the next round.

Deterministic: the same sums give the same round (ties go to the earlier task in the input
order), so a resumed eval recomputes the round it had already added.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from evalfleet.spec.plan import AdaptiveRuns

StopReason = Literal["target", "max", "unreachable"]
"""Why no further round: the target half-width is reached; every task is at ``max``; or the
target is beyond what runs can reach (the spread between tasks, which runs cannot reduce, is
too large for this many tasks) and the runs already made are within :data:`SLACK` of the
narrowest interval more runs could give."""

ALPHA = 0.05
"""The target is the half-width of the 95% interval, as in the report."""
PRIOR_DF = 2.0
"""Partial credit: weight of the agent-wide variance in a task's shrunk variance, in runs."""
GRID_POINTS = 101
"""Pass rates the empirical-Bayes prior of binary tasks is spread over (0, 0.01, ... 1)."""
EM_STEPS = 200
"""EM iterations fitting that prior (a fixed number: the same data give the same prior)."""
SLACK = 0.02
"""Share of the reducible variance (from ``min`` runs everywhere to ``max`` runs everywhere)
left unspent when the target lies at or beyond what runs can reach. Without it a target near
the floor is chased without end: the spread between tasks is estimated with noise that no run
removes, and the last few per cent of the reducible variance cost most of the runs."""


@dataclass(frozen=True, slots=True)
class TaskRuns:
    """One agent's committed runs, one entry per task (all arrays the same length).

    ``runs`` counts every run created for the task (scored or not: the next repeat index);
    ``n``, ``total`` and ``total_sq`` are the count, sum and sum of squares of its scored runs;
    ``cost`` is the expected cost in dollars of one more run of the task (any positive unit
    works; 0 or less means unknown and takes the agent's median).
    """

    task_ids: Sequence[str]
    runs: npt.NDArray[np.int64]
    n: npt.NDArray[np.int64]
    total: npt.NDArray[np.float64]
    total_sq: npt.NDArray[np.float64]
    cost: npt.NDArray[np.float64]

    @classmethod
    def build(cls, task_ids: Sequence[str], runs: npt.ArrayLike, n: npt.ArrayLike,
              total: npt.ArrayLike, total_sq: npt.ArrayLike,
              cost: npt.ArrayLike | None = None) -> TaskRuns:
        """Arrays from any sequences; ``cost`` defaults to 1 per run for every task."""
        size = len(task_ids)
        runs_a, n_a = np.asarray(runs, dtype=np.int64), np.asarray(n, dtype=np.int64)
        floats = [np.asarray(total, dtype=np.float64), np.asarray(total_sq, dtype=np.float64),
                  np.ones(size) if cost is None else np.asarray(cost, dtype=np.float64)]
        if any(a.shape != (size,) for a in (runs_a, n_a, *floats)):
            raise ValueError("every per-task array must have one value per task")
        if np.any(n_a > runs_a) or np.any(n_a < 0):
            raise ValueError("scored runs must be between 0 and the runs created")
        return cls(tuple(task_ids), runs_a, n_a, floats[0], floats[1], floats[2])


@dataclass(frozen=True, slots=True)
class Round:
    """The next round for one agent: extra runs per task, or why there is none."""

    extra: dict[str, int]
    """Task id -> runs to add (only tasks that get some)."""
    stop: StopReason | None
    """None while rounds go on."""
    halfwidth: float
    """Half-width of the 95% interval of the mean now (as the report computes it)."""
    predicted: float
    """Predicted half-width once this round's runs are scored."""
    floor: float
    """Predicted half-width with every task at ``max``: the best more runs can do."""
    n_tasks: int

    @property
    def runs(self) -> int:
        """Runs this round adds."""
        return sum(self.extra.values())


def _t(n_tasks: int) -> float:
    from scipy import stats as sps  # here: scipy costs every importer of the api a second

    return float(sps.t.ppf(1 - ALPHA / 2, n_tasks - 1))


def _wilson_half(x: float, n: int) -> float:
    from scipy import stats as sps

    z = float(sps.norm.ppf(1 - ALPHA / 2))
    p = x / n
    return z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))


def task_variances(n: npt.NDArray[np.int64], total: npt.NDArray[np.float64],
                   total_sq: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each task's within-task variance of one run, shrunk toward the agent's other tasks.

    Only tasks with at least one scored run; binary scores (every score 0 or 1) take the beta
    posterior mean of p (1 - p), partial credit the pooled sample variance (see the module).
    """
    n_f = n.astype(np.float64)
    means = total / n_f
    binary = bool(np.allclose(total_sq, total))  # s^2 = s for every score only when 0 or 1
    if binary:
        if int(n.max()) == 1:
            return _one_run_variances(n_f, total)
        return _grid_posterior_variances(n, total)
    within = np.where(n > 1, (total_sq - total * means) / np.maximum(n_f - 1, 1), np.nan)
    within = np.maximum(within, 0.0)
    several = n > 1
    # no task ran twice yet: the variance of a score in [0, 1] with mean mu is at most mu(1-mu)
    pooled = float(within[several].mean()) if several.any() else float(
        np.mean(means * (1 - means)))
    own = np.where(several, within, 0.0)
    return np.asarray(((n_f - 1) * own + PRIOR_DF * pooled) / (n_f - 1 + PRIOR_DF),
                      dtype=np.float64)


def _one_run_variances(n_f: npt.NDArray[np.float64],
                       total: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """One binary run per task: how rates spread between tasks cannot be told from how runs of
    one task vary, so a weak beta prior (a + b = 1) at the agent's mean rate stands in."""
    m = float(np.clip(total.sum() / n_f.sum(), 0.01, 0.99))
    a, b = m, 1 - m
    return np.asarray((a + total) * (b + n_f - total) / ((1 + n_f) * (2 + n_f)),
                      dtype=np.float64)


def _grid_posterior_variances(n: npt.NDArray[np.int64], total: npt.NDArray[np.float64]
                              ) -> npt.NDArray[np.float64]:
    """Posterior mean of p (1 - p) per task under an empirical-Bayes prior on a grid of p.

    The prior is the distribution of pass rates over the agent's tasks, fitted by EM on every
    task's passes out of runs, with the weight of one task spread evenly over the grid (so no
    rate is ever ruled out). A suite where most tasks always pass or always fail gets a prior
    with most mass near 0 and 1, and a task that passed its first few runs is then believed to
    be one of those, with a variance that shrinks as its passes accumulate, never to exactly 0.
    """
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    c = np.rint(total).astype(np.int64)
    # the likelihood depends on (passes, runs) only: compute it once per distinct pair
    pairs, inverse, weight = np.unique(np.stack([c, n]), axis=1, return_inverse=True,
                                       return_counts=True)
    inverse = inverse.reshape(-1)
    pc, pn = pairs[0][:, None].astype(np.float64), pairs[1][:, None].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        loglik = (pc * np.log(grid) + (pn - pc) * np.log1p(-grid))
    loglik = np.where(np.isnan(loglik), 0.0, loglik)  # 0 * log(0)
    lik = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    prior = np.full(GRID_POINTS, 1.0 / GRID_POINTS)
    smooth = 1.0 / GRID_POINTS
    for _ in range(EM_STEPS):
        post = lik * prior
        post /= post.sum(axis=1, keepdims=True)
        prior = (weight @ post + smooth) / (weight.sum() + 1.0)
    post = lik * prior
    post /= post.sum(axis=1, keepdims=True)
    return np.asarray((post @ (grid * (1 - grid)))[inverse], dtype=np.float64)


def next_round(data: TaskRuns, spec: AdaptiveRuns) -> Round:
    """The next round for one agent (see the module docstring for the rule)."""
    scored = data.n > 0  # a task without a scored run is not in the mean: it gets no more runs
    idx = np.flatnonzero(scored)
    size = int(idx.size)
    n, runs = data.n[idx], data.runs[idx]
    total, total_sq = data.total[idx], data.total_sq[idx]
    if size < 2:
        # one task: the report has no SE, and no number of runs gives it one
        return Round({}, "unreachable", math.inf, math.inf, math.inf, size)
    means = total / n
    s2 = float(means.var(ddof=1))
    t = _t(size)
    binary = bool(np.allclose(total_sq, total))
    if s2 == 0.0:
        # every task has the same mean: the report shows Wilson on the task count, which no
        # number of runs narrows unless a task's mean moves
        half = _wilson_half(float(means[0]) * size, size)
        reason: StopReason = "target" if half <= spec.target_halfwidth else "unreachable"
        return Round({}, reason, half, half, half, size)
    half = (_wilson_half(float(total.sum()), size) if binary and int(n.max()) == 1
            else t * math.sqrt(s2 / size))
    sigma2 = task_variances(n, total, total_sq)
    tau2 = max(s2 - float(np.mean(sigma2 / n)), 0.0)

    def predicted(counts: npt.NDArray[np.float64]) -> float:
        return t * math.sqrt((tau2 + float(np.mean(sigma2 / counts))) / size)

    room = np.maximum(spec.max - runs, 0)
    floor = predicted((n + room).astype(np.float64))
    if half <= spec.target_halfwidth:
        return Round({}, "target", half, half, floor, size)
    if not room.any():
        return Round({}, "max", half, half, floor, size)

    # aim at the target, but never closer to the floor than SLACK of the variance runs can
    # remove (measured from min runs everywhere, so the aim does not move down round by round)
    floor_var = (floor / t) ** 2
    start_var = (tau2 + float(np.mean(sigma2 / np.full(size, float(spec.min))))) / size
    aim_var = max((spec.target_halfwidth / t) ** 2,
                  floor_var + SLACK * max(start_var - floor_var, 0.0))
    # the allocation that reaches the aim at least cost (greedy on variance removed per
    # dollar, as a threshold), then at most doubling each task's runs toward it this round
    goal = _allocate(n, room, sigma2, _costs(data.cost)[idx], tau2, size, aim_var)
    extra = np.minimum(goal - n, runs)
    if not extra.any():
        # nothing left worth buying: the target is beyond reach (the spread between tasks is
        # too large for this many tasks), and the runs are within SLACK of the best reachable
        return Round({}, "unreachable", half, half, floor, size)
    after = (n + extra).astype(np.float64)
    ids = [data.task_ids[int(i)] for i in idx]
    return Round({ids[j]: int(extra[j]) for j in np.flatnonzero(extra)}, None, half,
                 predicted(after), floor, size)


def _allocate(n: npt.NDArray[np.int64], room: npt.NDArray[np.int64],
              sigma2: npt.NDArray[np.float64], cost: npt.NDArray[np.float64], tau2: float,
              size: int, var_target: float) -> npt.NDArray[np.int64]:
    """Scored runs per task that bring the predicted variance to ``var_target`` cheapest.

    Adding runs one at a time to the task whose next run removes the most variance per dollar,
    sigma^2 (1/k - 1/(k+1)) / cost, is the same as giving every task all the runs whose value
    is above a threshold lam: k (k + 1) <= sigma^2 / (cost lam). The threshold is found by
    bisection (in log space), the largest one whose allocation reaches the target.
    """
    top = n + room

    def counts(lam: float) -> npt.NDArray[np.int64]:
        a = sigma2 / (cost * lam)
        k = np.floor((-1.0 + np.sqrt(1.0 + 4.0 * a)) / 2.0)  # largest k with k(k+1) <= a
        return np.asarray(np.clip(k, n, top), dtype=np.int64)

    def variance(c: npt.NDArray[np.int64]) -> float:
        return (tau2 + float(np.mean(sigma2 / c))) / size

    lo, hi = -60.0, 60.0  # log lam: at e^-60 every task is at max, at e^60 none moves
    if variance(counts(math.exp(lo))) > var_target:
        return top
    for _ in range(100):
        mid = (lo + hi) / 2
        if variance(counts(math.exp(mid))) <= var_target:
            lo = mid
        else:
            hi = mid
    return counts(math.exp(lo))


def _costs(cost: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per-run costs with unknown (0 or less, or not finite) ones set to the median known."""
    known = np.isfinite(cost) & (cost > 0)
    fill = float(np.median(cost[known])) if known.any() else 1.0
    return np.where(known, cost, fill)


def stop_summary(rounds: Sequence[Round]) -> StopReason | None:
    """The eval's stop reason over its agents: None while any agent has a round to run;
    otherwise the reason shared by all, or the least satisfying one (unreachable, max,
    target)."""
    if any(r.stop is None for r in rounds):
        return None
    for reason in ("unreachable", "max", "target"):
        if any(r.stop == reason for r in rounds):
            return reason
    return None
