"""Pure statistics for agent evaluation: numpy, scipy and statsmodels only.

Every function takes arrays (one value per task unless stated) and returns a small frozen record
with the estimate, its uncertainty, the counts behind it and a `method` string. The formulas
behind the reported numbers are in docs/analysis.md; the main rules:

* the task is the unit of independence: reduce runs to per-task means first (`task_means`);
* standard errors are SE_CLT across tasks, or CR1 across clusters, with t(n-1) / t(G-1)
  critical values at every n (pass ``distribution="normal"`` for z);
* comparisons are paired on shared tasks (`paired_difference`, `mcnemar_test`,
  `paired_permutation_test`, `regression_flag`);
* undefined quantities are nan, never a made-up number.

Modules: `proportions` (Wilson, Clopper-Pearson), `passk`, `means`, `variance`, `paired`,
`multiple`, `power`, `sequential`, `sampling`, `frontier`, `cost`, `quantiles`.
"""

from evalfleet.stats._types import (
    AdjustedPValues,
    Allocation,
    CusumResult,
    DetectableEffect,
    McNemarResult,
    MeanEstimate,
    MsprtResult,
    PairedDifference,
    PairedVarianceComponents,
    ParetoFrontier,
    PermutationTestResult,
    ProportionInterval,
    QuantileInterval,
    RatioEstimate,
    RegressionFlag,
    SampleSize,
    StratifiedEstimate,
    TaskMeans,
    VarianceComponents,
)
from evalfleet.stats.cost import cost_per_success
from evalfleet.stats.frontier import pareto_frontier
from evalfleet.stats.means import clustered_se, mean_with_se, task_means
from evalfleet.stats.multiple import adjust_pvalues
from evalfleet.stats.paired import (
    mcnemar_test,
    paired_difference,
    paired_permutation_test,
    regression_flag,
)
from evalfleet.stats.passk import aggregate_pass_k, pass_at_k, pass_hat_k
from evalfleet.stats.power import minimum_detectable_effect, sample_size_for_difference
from evalfleet.stats.proportions import clopper_pearson_interval, wilson_interval
from evalfleet.stats.quantiles import quantile_interval
from evalfleet.stats.sampling import difference_estimator, neyman_allocation, stratified_mean
from evalfleet.stats.sequential import cusum_lower, msprt_p_value
from evalfleet.stats.variance import paired_variance_components, variance_components

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
    "adjust_pvalues",
    "aggregate_pass_k",
    "clopper_pearson_interval",
    "clustered_se",
    "cost_per_success",
    "cusum_lower",
    "difference_estimator",
    "mcnemar_test",
    "mean_with_se",
    "minimum_detectable_effect",
    "msprt_p_value",
    "neyman_allocation",
    "paired_difference",
    "paired_permutation_test",
    "paired_variance_components",
    "pareto_frontier",
    "pass_at_k",
    "pass_hat_k",
    "quantile_interval",
    "regression_flag",
    "sample_size_for_difference",
    "stratified_mean",
    "task_means",
    "variance_components",
    "wilson_interval",
]
