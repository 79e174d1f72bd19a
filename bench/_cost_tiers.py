"""Sampling tiers on a simulated suite with known per-task truth: coverage and standard errors.

The suite: 2,000 tasks in 6 categories x 5 difficulties (30 strata). Task i's true pass
probability is p_i = expit(a_category - b (difficulty - 3) + u_i), u_i ~ N(0, 1.5^2): the strata
differ, and tasks within a stratum differ too. The truth is mu = mean_i p_i, the quantity the
report's full-suite interval claims to cover (the mean of per-task expected scores).

For the 20% (weekly) and 5% (smoke) tiers, each of ``draws`` draws:

- selects tasks with the product's `evalfleet.cost.sampling.select` (strata category x
  difficulty), with its own rotation (``seed``) and its own hash order (the suite name carries
  the draw number; the order within a stratum is a hash of suite name and task id), so that the
  draws are independent stratified samples;
- runs each selected task once (a fresh Bernoulli(p_i) draw);
- estimates mu with the product's `evalfleet.analysis.estimates.full_suite_estimate` (what the
  report calls), and checks whether its 95% interval holds mu;
- compares with a simple random sample of the same number of tasks (one stratum, same
  estimator) and with the difference estimator against a full baseline: an earlier version with
  p_base,i = expit(logit p_i - 0.4 + v_i), v_i ~ N(0, 0.5^2), run once on every task (fresh
  each draw).

    python bench/_cost_tiers.py [--draws 500] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from evalfleet.analysis.estimates import FullSuiteEstimate, full_suite_estimate
from evalfleet.cost.sampling import select
from evalfleet.spec.plan import SampleSpec
from evalfleet.spec.task import ScorerSpec, Suite, Task

N_TASKS = 2000
CATEGORIES = 6
DIFFICULTIES = 5
Tier = Literal["smoke", "weekly"]
TIERS: tuple[tuple[Tier, float], ...] = (("weekly", 0.20), ("smoke", 0.05))


def _expit(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class SimSuite:
    """The simulated suite and its truth."""

    tasks: tuple[Task, ...]
    p: npt.NDArray[np.float64]
    """True pass probability per task (suite order)."""
    p_base: npt.NDArray[np.float64]
    """The earlier version's true pass probability per task."""

    @property
    def truth(self) -> float:
        return float(self.p.mean())


def make_suite(rng: np.random.Generator, spread: float = 1.5) -> SimSuite:
    """2,000 tasks, category- and difficulty-dependent truth, and a correlated earlier version.

    ``spread`` is the SD of the task effect on the logit scale: 1.5 gives many tasks in
    between, 4 a suite where most tasks nearly always pass or nearly always fail.
    """
    scorer = ScorerSpec(kind="exact")
    cat = np.arange(N_TASKS) % CATEGORIES
    diff = 1 + (np.arange(N_TASKS) // CATEGORIES) % DIFFICULTIES
    a = np.linspace(-1.0, 1.5, CATEGORIES)
    logit = a[cat] - 0.6 * (diff - 3) + rng.normal(0.0, spread, N_TASKS)
    p = _expit(logit)
    p_base = _expit(logit - 0.4 + rng.normal(0.0, 0.5, N_TASKS))
    tasks = tuple(Task(id=f"task-{i:05d}", input="-", category=f"cat{c}", difficulty=int(d),
                       target="ok", scorer=scorer)
                  for i, (c, d) in enumerate(zip(cat.tolist(), diff.tolist(), strict=True)))
    return SimSuite(tasks=tasks, p=p, p_base=p_base)


@dataclass
class _Tally:
    covered: int = 0
    ses: list[float] = field(default_factory=list)
    estimates: list[float] = field(default_factory=list)

    def add(self, est: FullSuiteEstimate, truth: float) -> None:
        self.covered += int(est.ci_low <= truth <= est.ci_high)
        self.ses.append(est.se)
        self.estimates.append(est.estimate)


def run_tier(sim: SimSuite, share: float, tier: Tier, draws: int,
             rng: np.random.Generator) -> dict[str, _Tally | int]:
    """``draws`` sampled evals of one tier: stratified, simple random and difference."""
    index = {t.id: i for i, t in enumerate(sim.tasks)}
    out: dict[str, _Tally | int] = {"strat": _Tally(), "srs": _Tally(), "diff": _Tally()}
    n_tasks = 0
    for d in range(draws):
        suite = Suite(name=f"bench-{d}", tasks=sim.tasks)
        sel = select(suite, SampleSpec(tier=tier, fraction=share,
                                       strata=("category", "difficulty"), seed=d))
        labels: list[str] = []
        rows: list[int] = []
        sizes: dict[object, int] = {}
        for s in sel.strata:
            lab = s.label(sel.fields)
            sizes[lab] = s.population
            labels += [lab] * s.size
            rows += [index[t] for t in s.sampled]
        idx = np.array(rows)
        n_tasks = idx.size
        y = (rng.random(idx.size) < sim.p[idx]).astype(float)
        strat = full_suite_estimate(y, labels, sizes)
        srs_idx = rng.choice(N_TASKS, size=idx.size, replace=False)
        y_srs = (rng.random(idx.size) < sim.p[srs_idx]).astype(float)
        srs = full_suite_estimate(y_srs, None, N_TASKS)
        base_all = (rng.random(N_TASKS) < sim.p_base).astype(float)
        diff = full_suite_estimate(y, labels, sizes, base=base_all[idx],
                                   base_population_mean=float(base_all.mean()))
        for key, est in (("strat", strat), ("srs", srs), ("diff", diff)):
            tally = out[key]
            assert isinstance(tally, _Tally)
            tally.add(est, sim.truth)
    out["n"] = n_tasks
    return out


def _summary(t: _Tally, draws: int) -> tuple[float, float, float]:
    ses = np.array(t.ses)
    ests = np.array(t.estimates)
    return t.covered / draws, float(np.nanmean(ses)), float(ests.std(ddof=1))


SPREADS = (("moderate", 1.5), ("polarised", 4.0))


def tiers_section(draws: int = 500, seed: int = 0) -> list[str]:
    """Lines to print: coverage of the 95% interval and SEs for the 20% and 5% tiers, on a
    suite with many in-between tasks and on a polarised one (most tasks nearly always pass or
    nearly always fail)."""
    rng = np.random.default_rng(seed)
    lines = [
        f"{N_TASKS} SIMULATED tasks, {CATEGORIES} categories x {DIFFICULTIES} difficulties = "
        f"30 strata; one binary run per selected task; {draws} draws per tier (own rotation "
        "and hash order, fresh run noise); baseline = an earlier version run once on every task",
        "target of every interval: mu, the suite mean of per-task pass probabilities "
        "(goal: 93-97% coverage); SE and sd(estimate) in percentage points",
    ]
    for label, spread in SPREADS:
        sim = make_suite(rng, spread)
        corr = float(np.corrcoef(sim.p, sim.p_base)[0, 1])
        lines += ["", f"{label} suite (task effect SD {spread:g} on the logit): "
                      f"mu = {sim.truth:.4f}, baseline mean {float(sim.p_base.mean()):.4f}, "
                      f"corr(p, p_base) = {corr:.2f}",
                  f"{'tier':<12}{'tasks':>6}  {'estimator':<24}{'coverage':>9}{'mean SE':>9}"
                  f"{'sd(est)':>9}"]
        for tier, share in TIERS:
            res = run_tier(sim, share, tier, draws, rng)
            n = res["n"]
            ses = {}
            for key, name in (("strat", "stratified"), ("srs", "simple random, same n"),
                              ("diff", "difference (baseline)")):
                tally = res[key]
                assert isinstance(tally, _Tally)
                cov, se, sd = _summary(tally, draws)
                ses[key] = se
                lines.append(f"{tier + f' {100 * share:g}%':<12}{n:>6}  {name:<24}"
                             f"{100 * cov:>8.1f}%{100 * se:>9.2f}{100 * sd:>9.2f}")
            ratio = ses["strat"] / ses["srs"] if ses["srs"] > 0 else math.nan
            lines.append(f"{'':<20}stratified SE / simple random SE = {ratio:.3f} "
                         f"({'smaller' if ratio < 1 else 'NOT smaller'}); difference / "
                         f"stratified = {ses['diff'] / ses['strat']:.3f}")
    lines.append("the SE is the report's: between-task part with the finite-population "
                 "correction + run noise of the sampled tasks (docs/analysis.md)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--draws", type=int, default=500, help="Draws per tier.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed.")
    args = parser.parse_args()
    for line in tiers_section(draws=args.draws, seed=args.seed):
        print(line)


if __name__ == "__main__":
    main()
