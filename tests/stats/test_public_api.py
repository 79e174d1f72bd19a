"""The public surface of evalfleet.stats is exactly what we meant, and the package stays pure."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
import types
from pathlib import Path

import pytest

import evalfleet.stats as stats

FUNCTIONS = {
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
}
RECORDS = {
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
}
ALLOWED_IMPORTS = {"numpy", "scipy", "statsmodels", "evalfleet"}


def test_all_is_exactly_the_intended_surface() -> None:
    assert len(stats.__all__) == len(set(stats.__all__)), "duplicate names in __all__"
    assert set(stats.__all__) == FUNCTIONS | RECORDS


def test_no_public_attribute_is_left_out_of_all() -> None:
    public = {
        name
        for name, value in vars(stats).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(stats.__all__)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_public_functions_have_google_style_docstrings(name: str) -> None:
    doc = inspect.getdoc(getattr(stats, name)) or ""
    assert "Args:" in doc and "Returns:" in doc, f"{name} lacks Args/Returns sections"


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_records_are_frozen_and_every_field_is_documented(name: str) -> None:
    cls = getattr(stats, name)
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen
    source = inspect.getsource(cls)
    for f in dataclasses.fields(cls):
        # Each field is followed by a one-line docstring (it becomes the dashboard tooltip).
        assert f"{f.name}: " in source
        after = source.split(f"    {f.name}: ", 1)[1].split("\n", 2)[1].strip()
        assert after.startswith('"""'), f"{name}.{f.name} has no field docstring"


def test_records_reject_mutation() -> None:
    result = stats.mean_with_se([0.0, 1.0, 1.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.estimate = 2.0  # type: ignore[misc]


def test_stats_imports_only_numpy_scipy_statsmodels_and_the_standard_library() -> None:
    package_dir = Path(stats.__file__).parent
    for path in sorted(package_dir.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module]
            else:
                continue
            for module in roots:
                top = module.split(".")[0]
                if top == "evalfleet":
                    assert module.startswith("evalfleet.stats"), f"{path.name} imports {module}"
                elif top != "__future__":
                    assert top in ALLOWED_IMPORTS or top in sys.stdlib_module_names, (
                        f"{path.name} imports {module}"
                    )
