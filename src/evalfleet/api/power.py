"""Planning from power: tasks and runs needed to detect a difference, and what a plan can
detect, from an earlier eval's variances or assumed ones."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalfleet.api.reads import open_reader, resolve_eval_id
from evalfleet.errors import SpecError
from evalfleet.settings import load_settings

if TYPE_CHECKING:
    from evalfleet.analysis.power import PowerInputs


def plan_power(*, from_eval: str | None, base: str | None, new: str | None, rho: float,
                omega2: float | None, sigma2: float | None, sigma2_new: float | None,
                delta: float, tasks: int | None, alpha: float, two_sided: bool, power: float,
                home: Path | None) -> dict[str, Any]:
    """Tasks needed to detect ``delta`` and the MDE for K = 1, 3, 5, 10 runs per task.

    The variances come from an eval (``from_eval``, read-only; ``base``/``new`` name its
    agents) or are assumed (``omega2`` and ``sigma2``, optionally ``sigma2_new``).

    Raises:
        SpecError: a contradictory or missing combination of inputs.
        UnknownEvalError: no such eval.
    """
    from evalfleet.analysis.power import assumed_inputs
    from evalfleet.analysis.power import plan_power as compute

    if sigma2_new is not None and sigma2 is None:
        raise SpecError("--sigma2-new needs --sigma2 (the base version's run variance)",
                        field="--sigma2-new")
    source = "--tasks" if tasks is not None else None
    if from_eval is None:
        if omega2 is None or sigma2 is None:
            raise SpecError("give --from EVAL_ID to estimate the variances from an eval, or "
                            "assumed values --omega2 X --sigma2 Y", field="--from")
        if base or new:
            raise SpecError("--base and --new name agents of an eval: use them with --from",
                            field="--base")
        inputs = assumed_inputs(omega2, sigma2, sigma2_new)
    else:
        if omega2 is not None:
            raise SpecError("--omega2 is estimated from the eval with --from; drop one of them "
                            "(assumed sigma^2 values may be combined with --from)",
                            field="--omega2")
        inputs, planned = _estimate(from_eval, base=base, new=new, rho=rho, sigma2=sigma2,
                                    sigma2_new=sigma2_new, home=home)
        if tasks is None and planned:
            tasks, source = planned, f"tasks planned in {inputs.eval_id}"
    return compute(inputs, delta=delta, alpha=alpha, power=power, two_sided=two_sided,
                      n_tasks=tasks, n_tasks_source=source)


def _estimate(eval_ref: str, *, base: str | None, new: str | None, rho: float,
              sigma2: float | None, sigma2_new: float | None, home: Path | None
              ) -> tuple[PowerInputs, int]:
    """The estimated inputs and the eval's planned task count."""
    from evalfleet.analysis.power import estimate_inputs

    settings = load_settings(home)
    store = open_reader(settings)  # read-only: never creates or sweeps
    try:
        eval_id = resolve_eval_id(store, eval_ref)
        paths = store.results_paths(eval_id)
        planned = len(store.journal.planned_tasks(eval_id, 0))
    finally:
        store.close()
    inputs = estimate_inputs(settings.home, paths, eval_id, base=base, new=new, rho=rho,
                             sigma2_base=sigma2, sigma2_new=sigma2_new)
    return inputs, planned
