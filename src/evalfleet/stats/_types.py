"""Frozen result records returned by `evalfleet.stats`.

Every record carries the numbers a report needs (estimate, standard error, interval, counts) and a
`method` string that says how they were computed, e.g. ``"mean of 6 task means, SE_CLT, t(5)"``.
Undefined quantities are ``nan`` (never a made-up number) and the method string says why.
Sequences are stored as tuples so the records stay immutable and serialise with
`dataclasses.asdict`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "AdjustedPValues",
    "Allocation",
    "CusumResult",
    "DetectableEffect",
    "McNemarResult",
    "MeanEstimate",
    "MsprtResult",
    "PairedDifference",
    "PairedVarianceComponents",
    "ParetoFrontier",
    "PermutationTestResult",
    "ProportionInterval",
    "QuantileInterval",
    "RatioEstimate",
    "RegressionFlag",
    "SampleSize",
    "StratifiedEstimate",
    "TaskMeans",
    "VarianceComponents",
]


@dataclass(frozen=True, slots=True)
class ProportionInterval:
    """A binomial proportion with a confidence interval (successes out of n trials)."""

    estimate: float
    """Observed proportion successes / n (nan when n = 0)."""
    se: float
    """Bernoulli standard error sqrt(p(1-p)/n), for reference only; the interval does not use it."""
    ci_low: float
    """Lower confidence limit (0 for a one-sided upper bound)."""
    ci_high: float
    """Upper confidence limit (1 for a one-sided lower bound)."""
    successes: int
    """Number of successes."""
    n: int
    """Number of trials."""
    confidence: float
    """Confidence level of the interval, e.g. 0.95."""
    alternative: str
    """'two-sided', 'less' (upper bound only) or 'greater' (lower bound only)."""
    method: str
    """How the interval was computed."""


@dataclass(frozen=True, slots=True)
class MeanEstimate:
    """A mean over independent units (tasks, or clusters of tasks) with its standard error."""

    estimate: float
    """Mean of the per-unit values, each task weighted equally."""
    se: float
    """Standard error: SE_CLT without clusters, CR1 with clusters."""
    ci_low: float
    """Lower limit of the two-sided confidence interval."""
    ci_high: float
    """Upper limit of the two-sided confidence interval."""
    n: int
    """Number of tasks."""
    n_clusters: int | None
    """Number of clusters G when clustered, else None."""
    df: float
    """Degrees of freedom of the critical value (n-1, G-1, or inf for the normal)."""
    confidence: float
    """Confidence level of the interval."""
    method: str
    """How the numbers were computed."""


@dataclass(frozen=True, slots=True)
class PairedDifference:
    """Mean per-task difference a - b between two versions on the same tasks."""

    estimate: float
    """Mean of d_i = a_i - b_i."""
    se: float
    """Paired standard error (Miller Eq. 7), CR1 on d when clustered."""
    ci_low: float
    """Lower limit of the two-sided confidence interval."""
    ci_high: float
    """Upper limit of the two-sided confidence interval."""
    p_value: float
    """p-value of H0: mean difference = 0 against `alternative`."""
    statistic: float
    """Test statistic estimate / se."""
    df: float
    """Degrees of freedom (n-1, G-1, or inf for the normal)."""
    n: int
    """Number of paired tasks."""
    n_clusters: int | None
    """Number of clusters G when clustered, else None."""
    mean_a: float
    """Mean of a over the paired tasks."""
    mean_b: float
    """Mean of b over the paired tasks."""
    correlation: float
    """Pearson correlation of a and b across tasks (nan if either is constant)."""
    confidence: float
    """Confidence level of the interval."""
    alternative: str
    """'two-sided', 'less' (a < b) or 'greater' (a > b)."""
    method: str
    """How the numbers were computed."""


@dataclass(frozen=True, slots=True)
class McNemarResult:
    """McNemar test on the discordant pairs of one binary run per task per version."""

    estimate: float
    """Difference in pass rates (b - c) / n; nan when n is not given."""
    se: float
    """Paired standard error of the difference (Miller Eq. 7 on d in {-1, 0, 1})."""
    ci_low: float
    """Lower limit of the two-sided interval for the difference."""
    ci_high: float
    """Upper limit of the two-sided interval for the difference."""
    p_value: float
    """p-value of the selected method."""
    statistic: float
    """min(b, c) for exact / mid-p, the chi-square statistic for the asymptotic methods."""
    b: int
    """Pairs where A passed and B failed."""
    c: int
    """Pairs where A failed and B passed."""
    n: int | None
    """Total number of pairs, if given."""
    p_exact: float
    """Exact conditional p-value min(1, 2 F(min(b, c)))."""
    p_midp: float
    """Mid-p value min(1, 2 F(min(b, c)) - f(min(b, c)))."""
    p_chi2: float
    """Asymptotic p-value without continuity correction."""
    p_chi2_corrected: float
    """Asymptotic p-value with continuity correction."""
    confidence: float
    """Confidence level of the interval."""
    method: str
    """Which p-value is reported in `p_value`, and how the interval was computed."""


@dataclass(frozen=True, slots=True)
class PermutationTestResult:
    """Sign-flip permutation test of a mean paired difference."""

    estimate: float
    """Mean of the paired differences."""
    p_value: float
    """Permutation p-value against `alternative`."""
    n: int
    """Number of paired tasks."""
    n_units: int
    """Number of sign-flipped units: tasks, or clusters when clustered."""
    exact: bool
    """True if all 2^n_units sign vectors were enumerated."""
    n_resamples: int
    """Sign vectors evaluated (2^n_units when exact)."""
    seed: int | None
    """Seed of the Monte Carlo generator (None when exact or a Generator was passed)."""
    alternative: str
    """'two-sided', 'less' (a < b) or 'greater' (a > b)."""
    method: str
    """How the p-value was computed."""


@dataclass(frozen=True, slots=True)
class AdjustedPValues:
    """p-values adjusted for multiple comparisons."""

    p_values: tuple[float, ...]
    """The raw p-values, in input order."""
    adjusted: tuple[float, ...]
    """Adjusted p-values, in input order."""
    reject: tuple[bool, ...]
    """True where adjusted p-value <= alpha."""
    alpha: float
    """Family-wise error rate (Holm, Bonferroni) or false discovery rate (BH, BY)."""
    method: str
    """'holm', 'bh', 'by' or 'bonferroni'."""

    @property
    def n_rejected(self) -> int:
        """Number of rejected hypotheses."""
        return sum(self.reject)


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Number of tasks needed to detect a mean paired difference (Miller 2024, Eq. 9)."""

    n: float
    """Exact (fractional) number of tasks from Eq. 9."""
    n_required: int
    """Tasks to run: n rounded up."""
    delta: float
    """Difference to detect."""
    variance: float
    """Per-task variance of the difference, deff * (omega2 + sigma2_a/k_a + sigma2_b/k_b)."""
    alpha: float
    """Type-I error rate."""
    power: float
    """Target power 1 - beta."""
    two_sided: bool
    """Whether z_{alpha/2} (True) or z_alpha (False) was used."""
    method: str
    """How the number was computed."""


@dataclass(frozen=True, slots=True)
class DetectableEffect:
    """Minimum detectable effect of a paired comparison (Miller 2024, Eq. 10)."""

    delta: float
    """Smallest difference detected with the target power."""
    se: float
    """Standard error of the mean difference for this design, sqrt(variance / n)."""
    n: float
    """Number of tasks."""
    variance: float
    """Per-task variance of the difference, deff * (omega2 + sigma2_a/k_a + sigma2_b/k_b)."""
    alpha: float
    """Type-I error rate."""
    power: float
    """Target power 1 - beta."""
    two_sided: bool
    """Whether z_{alpha/2} (True) or z_alpha (False) was used."""
    method: str
    """How the number was computed."""


@dataclass(frozen=True, slots=True)
class VarianceComponents:
    """Between-task and within-task variance of per-task means (Miller 2024, section 3)."""

    between: float
    """Var(x): variance of the true per-task means, method of moments, clipped at 0."""
    within: float
    """sigma^2: mean within-task run variance (ddof 1), over tasks with >= 2 runs."""
    var_task_means: float
    """Sample variance (ddof 1) of the observed per-task means."""
    n_tasks: int
    """Number of tasks."""
    k_min: int
    """Fewest runs of any task."""
    k_mean: float
    """Mean runs per task."""
    se: float
    """Current standard error of the mean over tasks, sqrt(var_task_means / n_tasks)."""
    clipped: bool
    """True if the between-task estimate was negative and clipped to 0."""
    method: str
    """How the components were computed."""

    def projected_se(self, k: float) -> float:
        """Standard error of the mean over the same number of tasks with `k` runs per task.

        Formula: sqrt((between + within / k) / n_tasks) (Miller 2024, section 3.1).
        ``k = math.inf`` gives the floor set by the number of tasks.
        """
        if not k > 0:
            raise ValueError(f"k must be positive, got {k!r}")
        if self.n_tasks == 0:
            return math.nan
        return math.sqrt((self.between + self.within / k) / self.n_tasks)


@dataclass(frozen=True, slots=True)
class PairedVarianceComponents:
    """omega^2, sigma_A^2 and sigma_B^2 for planning a paired comparison (Miller 2024, s. 5)."""

    omega2: float
    """Between-task variance of the true per-task difference, clipped at 0."""
    sigma2_a: float
    """Mean within-task run variance of version A."""
    sigma2_b: float
    """Mean within-task run variance of version B."""
    var_differences: float
    """Sample variance (ddof 1) of the observed per-task differences."""
    n_tasks: int
    """Number of paired tasks."""
    k_a_mean: float
    """Mean runs per task of version A."""
    k_b_mean: float
    """Mean runs per task of version B."""
    clipped: bool
    """True if the omega^2 estimate was negative and clipped to 0."""
    method: str
    """How the components were computed."""


@dataclass(frozen=True, slots=True)
class StratifiedEstimate:
    """Stratified mean of a sample of tasks drawn without replacement (Cochran, ch. 5)."""

    estimate: float
    """Stratified mean sum_h W_h ybar_h (plus the baseline for the difference estimator)."""
    se: float
    """Standard error with finite-population correction."""
    ci_low: float
    """Lower limit of the two-sided confidence interval."""
    ci_high: float
    """Upper limit of the two-sided confidence interval."""
    n: int
    """Number of sampled tasks."""
    n_strata: int
    """Number of strata."""
    population_size: int
    """Number of tasks in the population (suite), N."""
    df: float
    """Satterthwaite effective degrees of freedom of the t critical value."""
    confidence: float
    """Confidence level of the interval."""
    method: str
    """How the numbers were computed."""


@dataclass(frozen=True, slots=True)
class Allocation:
    """An integer allocation of a budget (runs or sampled tasks) across units."""

    counts: tuple[int, ...]
    """Integer allocation per unit, summing to `total`."""
    exact: tuple[float, ...]
    """Continuous optimum (respecting the bounds) before rounding."""
    total: int
    """The budget allocated."""
    method: str
    """How the allocation was computed."""


@dataclass(frozen=True, slots=True)
class CusumResult:
    """Lower one-sided CUSUM chart over standardised daily comparisons (Page 1954)."""

    statistic: tuple[float, ...] = field(repr=False)
    """S_t after each observation."""
    alarms: tuple[bool, ...] = field(repr=False)
    """True where S_t > h."""
    first_alarm: int | None
    """0-based index of the first alarm, or None."""
    final: float
    """S after the last observation (after any reset): pass it as `initial` tomorrow."""
    k: float
    """Reference value (allowance), in SE units."""
    h: float
    """Decision interval, in SE units."""
    method: str
    """How the chart was computed."""


@dataclass(frozen=True, slots=True)
class MsprtResult:
    """Always-valid p-value of a normal-mixture mSPRT over streamed differences."""

    p_value: float
    """Always-valid p-value after the last observation."""
    p_values: tuple[float, ...] = field(repr=False)
    """Always-valid p-value after each observation (non-increasing)."""
    likelihood_ratio: float
    """Mixture likelihood ratio Lambda_n after the last observation."""
    estimate: float
    """Running mean of the differences after the last observation."""
    n: int
    """Number of observations."""
    rejected_at: int | None
    """1-based n of the first observation with Lambda_n >= 1/alpha, or None."""
    alpha: float
    """Level used for `rejected_at`."""
    method: str
    """How the p-value was computed."""


@dataclass(frozen=True, slots=True)
class ParetoFrontier:
    """Cost-accuracy frontiers (minimise cost, maximise accuracy)."""

    non_dominated: tuple[int, ...]
    """Indices of the non-dominated points, by increasing cost."""
    convex: tuple[int, ...]
    """Indices of the non-dominated vertices of the upper convex hull, by increasing cost."""
    method: str
    """How the frontiers were computed."""


@dataclass(frozen=True, slots=True)
class RatioEstimate:
    """Ratio of two means over tasks with a delta-method standard error."""

    estimate: float
    """Ratio mean(cost) / mean(success); nan when there are no successes."""
    se: float
    """Delta-method standard error."""
    ci_low: float
    """Lower limit of the two-sided confidence interval."""
    ci_high: float
    """Upper limit of the two-sided confidence interval."""
    n: int
    """Number of tasks."""
    n_clusters: int | None
    """Number of clusters G when clustered, else None."""
    df: float
    """Degrees of freedom of the critical value."""
    mean_cost: float
    """Mean per-task cost (numerator)."""
    mean_success: float
    """Mean per-task success rate (denominator)."""
    confidence: float
    """Confidence level of the interval."""
    method: str
    """How the numbers were computed."""


@dataclass(frozen=True, slots=True)
class QuantileInterval:
    """Distribution-free confidence interval for a quantile from order statistics."""

    estimate: float
    """Sample quantile (numpy 'linear' definition)."""
    ci_low: float
    """Lower limit x_(lower_rank), nan if the sample is too small."""
    ci_high: float
    """Upper limit x_(upper_rank), nan if the sample is too small."""
    quantile: float
    """The quantile level p, e.g. 0.5 for the median."""
    lower_rank: int
    """1-based rank of the lower order statistic."""
    upper_rank: int
    """1-based rank of the upper order statistic."""
    coverage: float
    """Exact coverage of [x_(lower_rank), x_(upper_rank)] for continuous data."""
    n: int
    """Sample size."""
    confidence: float
    """Requested (minimum) confidence level."""
    method: str
    """How the interval was computed."""


@dataclass(frozen=True, slots=True)
class RegressionFlag:
    """Two-gate regression rule: significantly below the reference and by more than a margin."""

    flagged: bool
    """True when both gates fire."""
    significant: bool
    """Statistical gate: the one-sided upper (1 - alpha) bound of the difference is below 0."""
    practical: bool
    """Practical gate: the estimated difference is below -margin."""
    estimate: float
    """Mean per-task difference new - reference."""
    upper_bound: float
    """One-sided upper (1 - alpha) confidence bound of the difference."""
    p_value: float
    """One-sided p-value of H0: difference >= 0."""
    margin: float
    """Practical margin (a positive number: a drop larger than this matters)."""
    alpha: float
    """One-sided level of the statistical gate."""
    difference: PairedDifference
    """The underlying paired comparison (alternative 'less')."""
    method: str
    """How the flag was decided."""


@dataclass(frozen=True, slots=True, eq=False)
class TaskMeans:
    """Run-level scores reduced to one mean per task (each task weighted equally downstream)."""

    task_ids: npt.NDArray[np.generic]
    """Sorted unique task ids."""
    means: npt.NDArray[np.float64]
    """Mean score of each task over its runs."""
    counts: npt.NDArray[np.int64]
    """Number of runs of each task."""
    variances: npt.NDArray[np.float64]
    """Within-task variance of the runs (ddof 1); nan for tasks with one run."""
    clusters: npt.NDArray[np.generic] | None
    """Cluster label of each task, when clusters were given."""

    @property
    def n_tasks(self) -> int:
        """Number of tasks."""
        return int(self.means.shape[0])
