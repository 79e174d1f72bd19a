"""Plan power: tasks and runs per task needed to detect a difference, and the MDE of a plan.

The inputs are Miller's (2024, section 5) variance components: omega^2, the
between-task variance of the true per-task difference, and sigma_base^2, sigma_new^2, the mean
within-task run variances. They come from assumed values (`assumed_inputs`) or from an earlier
eval (`estimate_inputs`):

* two agents of the eval: `stats.paired_variance_components` on their shared tasks;
* one agent, planning a comparison with a future version of itself: omega^2 is NOT ~0 (that
  only holds for a same-version re-run), so omega^2 = 2 (1 - rho) Var(x) with an assumed
  correlation rho (default 0.5) between the two versions' true per-task success, and the new
  version's run noise equal to the old one's; ``rho = 1`` plans a same-version re-run;
* one run per task: sigma^2 cannot be separated from the between-task variance. The observed
  per-task variance (binary: p(1 - p), Var(d) = 2 p (1 - p) (1 - rho) for one agent) then
  gives the K = 1 row, and rows for K > 1 are upper bounds (more runs never hurt); or pass
  an assumed sigma^2 and omega^2 is derived from the observed variance.

`plan_power` turns the inputs into rows over K runs per task: tasks needed for ``delta``
(Eq. 9) and the minimum detectable effect of ``n_tasks`` tasks (Eq. 10), both from
`evalfleet.stats`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evalfleet import stats
from evalfleet.analysis.report import SCORED
from evalfleet.errors import SpecError
from evalfleet.store.warehouse import connect

__all__ = ["DEFAULT_KS", "DEFAULT_RHO", "PowerInputs", "assumed_inputs", "estimate_inputs",
           "plan_power"]

DEFAULT_KS = (1, 3, 5, 10)
"""Runs per task the plan table shows."""
DEFAULT_RHO = 0.5
"""Assumed correlation of the true per-task success of an agent and its next version."""


@dataclass(frozen=True, slots=True)
class PowerInputs:
    """The variance components a power plan rests on, and where they came from."""

    omega2: float
    """Between-task variance of the true per-task difference (the total observed per-task
    variance of the difference when ``separable`` is False)."""
    sigma2_base: float | None
    """Mean within-task run variance of the base version; None when not separable."""
    sigma2_new: float | None
    """Mean within-task run variance of the new version; None when not separable."""
    source: str
    """Where the numbers came from: ``assumed`` or ``estimated from EVAL (...)``."""
    method: str
    """How the numbers were computed."""
    separable: bool = True
    """False when one run per task kept sigma^2 apart from omega^2 unknown."""
    eval_id: str | None = None
    """Eval the estimate comes from."""
    base: str | None = None
    """Base agent as ``name@version``."""
    new: str | None = None
    """New agent as ``name@version``; None when one agent is compared with its next version."""
    rho: float | None = None
    """Assumed correlation between versions (one-agent estimates only)."""
    n_tasks: int | None = None
    """Tasks the estimate rests on."""
    runs_per_task: float | None = None
    """Mean runs per task behind the estimate."""
    notes: tuple[str, ...] = ()
    """Caveats the reader must see."""


def assumed_inputs(omega2: float, sigma2_base: float, sigma2_new: float | None = None
                   ) -> PowerInputs:
    """Power inputs from assumed values.

    Args:
        omega2: Between-task variance of the true per-task difference.
        sigma2_base: Mean within-task run variance of the base version.
        sigma2_new: Same for the new version (default: ``sigma2_base``).

    Raises:
        SpecError: on a negative or non-finite variance.
    """
    sigma2_new = sigma2_base if sigma2_new is None else sigma2_new
    for flag, value in (("--omega2", omega2), ("--sigma2", sigma2_base),
                        ("--sigma2-new", sigma2_new)):
        _check_variance(value, flag)
    return PowerInputs(omega2=float(omega2), sigma2_base=float(sigma2_base),
                       sigma2_new=float(sigma2_new), source="assumed",
                       method="assumed values (omega^2, sigma_base^2, sigma_new^2)")


def estimate_inputs(home: Path, paths: list[str], eval_id: str, *, base: str | None = None,
                    new: str | None = None, rho: float = DEFAULT_RHO,
                    sigma2_base: float | None = None, sigma2_new: float | None = None
                    ) -> PowerInputs:
    """Estimate omega^2, sigma_base^2 and sigma_new^2 from an eval's scored runs.

    Args:
        home: Evalfleet home the result paths are relative to.
        paths: The eval's committed Parquet files.
        eval_id: The eval.
        base: Base agent (``name@version``, or a name unique in the eval); optional when the
            eval has one agent.
        new: New agent to pair with ``base``; None plans base against a future version of
            itself (omega^2 = 2 (1 - rho) Var(x)).
        rho: Assumed correlation between versions, used only without ``new``.
        sigma2_base: Assumed within-task run variance of the base version, replacing the
            estimate (needed to project K > 1 from one run per task).
        sigma2_new: Same for the new version (default: ``sigma2_base`` when that is given).

    Raises:
        SpecError: when the eval has no scored runs, an agent is unknown or ambiguous, the two
            agents share no task, or an argument is out of range.
    """
    if not -1.0 <= rho <= 1.0:
        raise SpecError(f"rho must be between -1 and 1, got {rho}", field="--rho")
    if sigma2_new is not None and sigma2_base is None:
        raise SpecError("--sigma2-new needs --sigma2 (the base version's run variance)",
                        field="--sigma2-new")
    if sigma2_new is None:
        sigma2_new = sigma2_base
    for flag, value in (("--sigma2", sigma2_base), ("--sigma2-new", sigma2_new)):
        if value is not None:
            _check_variance(value, flag)
    runs, binary = _load_runs(home, paths, eval_id)
    if not runs:
        raise SpecError(f"eval {eval_id} has no scored runs to estimate variances from",
                        field="--from")
    base_key = _pick_agent(runs, base, eval_id, "--base")
    if new is None:
        return _single(eval_id, base_key, runs[base_key], binary[base_key], rho, sigma2_base,
                       sigma2_new)
    new_key = _pick_agent(runs, new, eval_id, "--new")
    if new_key == base_key:
        raise SpecError(f"--base and --new are both {_label(base_key)}; omit --new to plan a "
                        "comparison of one agent with its next version", field="--new")
    return _paired(eval_id, base_key, runs[base_key], new_key, runs[new_key], sigma2_base,
                   sigma2_new)


def plan_power(inputs: PowerInputs, *, delta: float = 0.02, alpha: float = 0.05,
               power: float = 0.8, two_sided: bool = True, n_tasks: int | None = None,
               n_tasks_source: str | None = None, ks: Sequence[int] = DEFAULT_KS
               ) -> dict[str, Any]:
    """Tasks needed to detect ``delta`` and the MDE of ``n_tasks`` tasks, for K runs per task.

    Args:
        inputs: Variance components (`assumed_inputs` or `estimate_inputs`).
        delta: Difference to detect, as a fraction (0.02 = 2 points).
        alpha: Type-I error rate.
        power: Target power.
        two_sided: Two-sided test (False: one-sided, "regression only").
        n_tasks: Tasks of the plan, for the MDE column (None: no MDE).
        n_tasks_source: Where ``n_tasks`` came from, for the reader.
        ks: Runs per task to tabulate.

    Returns:
        A JSON-ready dict: ``inputs``, the design (``delta``, ``alpha``, ``power``,
        ``two_sided``, ``n_tasks``), ``rows`` [{k, tasks_needed, tasks_exact, variance, mde,
        mde_se, upper_bound}], ``method`` and ``notes``.

    Raises:
        SpecError: on a design argument out of range.
    """
    if not (math.isfinite(delta) and 0.0 < delta < 1.0):
        raise SpecError(f"delta is a fraction of the score in (0, 1), e.g. 0.02 for 2 points; "
                        f"got {delta}", field="--delta")
    if not 0.0 < alpha < 1.0:
        raise SpecError(f"alpha must be in (0, 1), got {alpha}", field="--alpha")
    if not 0.0 < power < 1.0:
        raise SpecError(f"power must be in (0, 1), got {power}", field="--power")
    if n_tasks is not None and n_tasks < 1:
        raise SpecError(f"the number of tasks must be at least 1, got {n_tasks}",
                        field="--tasks")
    if not ks or any(k < 1 for k in ks):
        raise SpecError(f"runs per task must be positive, got {list(ks)}")
    s_base = inputs.sigma2_base if inputs.separable and inputs.sigma2_base is not None else 0.0
    s_new = inputs.sigma2_new if inputs.separable and inputs.sigma2_new is not None else 0.0
    rows: list[dict[str, Any]] = []
    methods: dict[str, str | None] = {"tasks_needed": None, "mde": None}
    for k in ks:
        try:
            need = stats.sample_size_for_difference(inputs.omega2, s_base, s_new, k, k, delta,
                                                    alpha, power, two_sided)
            mde = (stats.minimum_detectable_effect(inputs.omega2, s_base, s_new, k, k, n_tasks,
                                                   alpha, power, two_sided)
                   if n_tasks is not None else None)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        methods["tasks_needed"] = need.method
        methods["mde"] = mde.method if mde is not None else None
        # a variance of 0 gives "0 tasks needed" and an MDE of 0 points: certainty that no
        # design has, so those are left out (None) and a note says why
        known = need.variance > 0.0
        rows.append({"k": int(k), "tasks_needed": need.n_required if known else None,
                     "tasks_exact": need.n if known else None,
                     "variance": need.variance,
                     "mde": mde.delta if mde is not None and known else None,
                     "mde_se": mde.se if mde is not None and known else None,
                     "upper_bound": not inputs.separable and k > 1})
    notes = list(inputs.notes)
    if any(row["variance"] == 0.0 for row in rows):
        if inputs.source == "assumed":
            notes.append("an assumed variance of the difference of 0 says every comparison is "
                         "certain: no number of tasks follows from it; give positive --omega2 "
                         "or --sigma2")
        else:
            notes.append("the per-task variance of the difference is 0 (every task gives the "
                         "same result): no number of tasks follows from it; use assumed values")
    if n_tasks is None:
        notes.append("no number of tasks given (--tasks N): no minimum detectable effect")
    return {
        "inputs": _json_ready(asdict(inputs)),
        "delta": float(delta), "alpha": float(alpha), "power": float(power),
        "two_sided": bool(two_sided), "n_tasks": n_tasks, "n_tasks_source": n_tasks_source,
        "rows": rows, "method": methods, "notes": notes,
    }


AgentKey = tuple[str, str]
TaskRuns = dict[str, list[float]]


def _label(key: AgentKey) -> str:
    return f"{key[0]}@{key[1]}"


def _check_variance(value: float, flag: str) -> None:
    if not (math.isfinite(value) and value >= 0.0):
        raise SpecError(f"a variance must be a non-negative number, got {value}", field=flag)


def _json_ready(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, float) and math.isnan(v):
            out[k] = None
        elif isinstance(v, tuple):
            out[k] = list(v)
        else:
            out[k] = v
    return out


def _load_runs(home: Path, paths: list[str], eval_id: str
               ) -> tuple[dict[AgentKey, TaskRuns], dict[AgentKey, bool]]:
    """Scored run scores per agent and task, and whether each agent's scores are binary."""
    if not paths:
        return {}, {}
    con = connect(home, paths)
    try:
        rows = con.execute(f"""
            SELECT agent_name, agent_version, task_id, score, passed FROM runs
            WHERE eval_id = ? AND {SCORED} AND score IS NOT NULL
            ORDER BY agent_name, agent_version, task_id""", [eval_id]).fetchall()
    finally:
        con.close()
    runs: dict[AgentKey, TaskRuns] = defaultdict(lambda: defaultdict(list))
    binary: dict[AgentKey, bool] = defaultdict(lambda: True)
    for name, version, task_id, score, passed in rows:
        key = (str(name), str(version))
        runs[key][str(task_id)].append(float(score))
        binary[key] = binary[key] and passed is not None and float(score) in (0.0, 1.0)
    return {k: dict(v) for k, v in runs.items()}, dict(binary)


def _pick_agent(runs: dict[AgentKey, TaskRuns], ref: str | None, eval_id: str,
                flag: str) -> AgentKey:
    keys = sorted(runs)
    labels = ", ".join(_label(k) for k in keys)
    if ref is None:
        if len(keys) == 1:
            return keys[0]
        raise SpecError(f"eval {eval_id} has {len(keys)} agents with results ({labels}); name "
                        "--base AGENT@VERSION, and --new AGENT@VERSION to plan a comparison of "
                        "two of them", field="--base")
    matches = [k for k in keys if _label(k) == ref] or [k for k in keys if k[0] == ref]
    if len(matches) == 1:
        return matches[0]
    what = "is ambiguous" if matches else "has no results"
    raise SpecError(f"agent {ref} {what} in eval {eval_id} (agents with results: {labels})",
                    field=flag)


def _matrix(task_runs: TaskRuns, task_ids: Sequence[str]) -> list[list[float]]:
    return [task_runs[t] for t in task_ids]


def _inverse_k(task_runs: TaskRuns, task_ids: Sequence[str]) -> float:
    """mean_i(1 / K_i): the run-noise weight of an assumed sigma^2."""
    return float(np.mean([1.0 / len(task_runs[t]) for t in task_ids]))


def _single(eval_id: str, key: AgentKey, task_runs: TaskRuns, binary: bool, rho: float,
            sigma2_base: float | None, sigma2_new: float | None) -> PowerInputs:
    """One agent against a future version of itself: omega^2 = 2 (1 - rho) Var(x)."""
    ids = sorted(task_runs)
    if len(ids) < 2:
        raise SpecError(f"eval {eval_id}: {_label(key)} has {len(ids)} scored task; at least 2 "
                        "are needed to estimate a between-task variance", field="--from")
    vc = stats.variance_components(_matrix(task_runs, ids))
    label = _label(key)
    common: dict[str, Any] = {"eval_id": eval_id, "base": label, "new": None, "rho": rho,
                              "n_tasks": vc.n_tasks, "runs_per_task": vc.k_mean}
    version_note = (
        f"one agent ({label}) planned against a future version of itself: omega^2 = "
        f"2 (1 - rho) Var(x) with ASSUMED rho = {rho:g} (correlation of the two versions' "
        "per-task success; omega^2 ~ 0 would only hold for a same-version re-run, rho = 1)")
    if sigma2_base is None and not math.isnan(vc.within):
        return PowerInputs(
            omega2=2.0 * (1.0 - rho) * vc.between, sigma2_base=vc.within, sigma2_new=vc.within,
            source=f"estimated from {eval_id} ({label}, {vc.n_tasks} tasks x "
                   f"{vc.k_mean:g} runs)",
            method=f"{vc.method}; sigma_new^2 = sigma_base^2 (assumed)",
            notes=(version_note, *_clipped_note(vc.clipped)), **common)
    if sigma2_base is not None and sigma2_new is not None:
        var_x = vc.var_task_means - sigma2_base * _inverse_k(task_runs, ids)
        return PowerInputs(
            omega2=2.0 * (1.0 - rho) * max(0.0, var_x), sigma2_base=sigma2_base,
            sigma2_new=sigma2_new,
            source=f"Var(x) estimated from {eval_id} ({label}), sigma^2 assumed",
            method="Var(x) = Var_i(x_i) - sigma^2 mean_i(1/K_i), clipped at 0, over "
                   f"{vc.n_tasks} tasks with the assumed sigma^2",
            notes=(version_note, *_clipped_note(var_x < 0)), **common)
    p = float(np.mean([np.mean(task_runs[t]) for t in ids]))
    if binary:
        total, how = p * (1.0 - p), f"binary runs: Var(s) = p (1 - p) with p = {p:.4f}"
    else:
        total, how = vc.var_task_means, "Var(s) = sample variance of the per-task scores"
    return PowerInputs(
        omega2=2.0 * (1.0 - rho) * total, sigma2_base=None, sigma2_new=None,
        source=f"estimated from {eval_id} ({label}, {vc.n_tasks} tasks x 1 run)",
        method=f"{how}; Var(d) = 2 Var(s) (1 - rho)", separable=False,
        notes=(_not_separable_note(), f"one agent ({label}) planned against a future version "
               f"of itself with ASSUMED rho = {rho:g} (correlation of single-run outcomes of "
               "the two versions)"), **common)


def _paired(eval_id: str, base_key: AgentKey, base_runs: TaskRuns, new_key: AgentKey,
            new_runs: TaskRuns, sigma2_base: float | None, sigma2_new: float | None
            ) -> PowerInputs:
    """Two agents of the eval, paired on their shared tasks."""
    ids = sorted(set(base_runs) & set(new_runs))
    base, new = _label(base_key), _label(new_key)
    if len(ids) < 2:
        raise SpecError(f"eval {eval_id}: {base} and {new} share {len(ids)} scored task(s); at "
                        "least 2 are needed", field="--new")
    pvc = stats.paired_variance_components(_matrix(base_runs, ids), _matrix(new_runs, ids))
    common: dict[str, Any] = {"eval_id": eval_id, "base": base, "new": new,
                              "n_tasks": pvc.n_tasks,
                              "runs_per_task": (pvc.k_a_mean + pvc.k_b_mean) / 2.0}
    where = (f"{eval_id} ({base} vs {new}, {pvc.n_tasks} shared tasks x "
             f"{pvc.k_a_mean:g}/{pvc.k_b_mean:g} runs)")
    if sigma2_base is None and not math.isnan(pvc.omega2):
        return PowerInputs(omega2=pvc.omega2, sigma2_base=pvc.sigma2_a, sigma2_new=pvc.sigma2_b,
                           source=f"estimated from {where}", method=pvc.method,
                           notes=_clipped_note(pvc.clipped), **common)
    if sigma2_base is not None and sigma2_new is not None:
        omega2 = (pvc.var_differences - sigma2_base * _inverse_k(base_runs, ids)
                  - sigma2_new * _inverse_k(new_runs, ids))
        return PowerInputs(
            omega2=max(0.0, omega2), sigma2_base=sigma2_base, sigma2_new=sigma2_new,
            source=f"omega^2 estimated from {where}, sigma^2 assumed",
            method="omega^2 = Var_i(d_i) - sigma_base^2 mean_i(1/K_base,i) - sigma_new^2 "
                   f"mean_i(1/K_new,i), clipped at 0, over {pvc.n_tasks} paired tasks",
            notes=_clipped_note(omega2 < 0), **common)
    return PowerInputs(
        omega2=pvc.var_differences, sigma2_base=None, sigma2_new=None,
        source=f"estimated from {where}",
        method=f"observed Var_i(d_i) of per-task differences over {pvc.n_tasks} paired tasks",
        separable=False, notes=(_not_separable_note(),), **common)


def _not_separable_note() -> str:
    return ("one run per task: the within-task run variance sigma^2 cannot be separated from "
            "the between-task variance; the K = 1 row uses the observed per-task variance and "
            "rows for K > 1 are upper bounds (more runs can only help). To project K > 1, pass "
            "an assumed --sigma2 or estimate from an eval with 2+ runs per task")


def _clipped_note(clipped: bool) -> tuple[str, ...]:
    if not clipped:
        return ()
    return ("the between-task variance estimate was negative and clipped to 0 (run noise "
            "dominates over this many tasks), so rows for K > 1 may be optimistic; consider "
            "assumed values from a larger eval",)
