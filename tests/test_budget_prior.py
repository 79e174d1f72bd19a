"""Before any run has finished, the budget check uses the plan review's estimate of a run's
cost: a wave of max_in_flight expensive runs cannot all start on an unknown cost."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from evalfleet import api
from evalfleet.cost.budget import Budgets
from evalfleet.settings import Settings

SLEEP_S = 0.2
RATE = 10_000.0  # $/sandbox hour: a 0.2 s run costs about $0.56
BUDGET = 1.5     # room for two runs, not three


def _plan(tmp_path: Path, *, estimate: bool) -> Path:
    suite = tmp_path / "suite.jsonl"
    with suite.open("w") as fh:
        for i in range(16):
            fh.write(json.dumps({"id": f"t{i}", "input": "x", "target": "ok",
                                 "scorer": {"kind": "exact"}}) + "\n")
    plan = {
        "name": "prior", "suite": {"path": str(suite)}, "budget_usd": BUDGET,
        "agents": [{"name": "slow", "kind": "python",
                    "args": {"callable": "evalfleet.testing.agents:counting",
                             "kwargs": {"log": str(tmp_path / "runs.log"), "sleep_s": SLEEP_S},
                             "threaded": True}}],
        "costs": {"infra_usd_per_hour": RATE},
        "execution": {"max_in_flight": 8},
    }
    if estimate:
        plan["estimate"] = {"seconds": SLEEP_S}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_first_wave_is_held_to_the_estimate(tmp_path: Path, settings: Settings) -> None:
    summary = api.run(_plan(tmp_path, estimate=True), settings=settings)
    assert summary.status == "budget_stopped"
    executed = len((tmp_path / "runs.log").read_text().splitlines())
    # two runs fit the estimate; without it all 8 of the first wave started (~$4.50)
    assert executed <= 3
    one_run = RATE * SLEEP_S / 3600
    assert summary.cost_usd <= BUDGET + one_run


def test_an_estimate_never_stops_an_eval_by_itself(tmp_path: Path, settings: Settings) -> None:
    # the heuristic for a python agent (5 calls x 10 s) prices a run far above the budget: the
    # estimate must hold launches back, not cancel the eval before one run has measured a cost
    summary = api.run(_plan(tmp_path, estimate=False), settings=settings)
    executed = len((tmp_path / "runs.log").read_text().splitlines())
    assert executed >= 1
    assert summary.done >= 1


def test_expected_cost_falls_back_to_the_prior_only_before_runs_finish() -> None:
    b = Budgets.start(10.0, [None, None], prior=[2.0, 0.5])
    assert not b.measured()
    assert b.expected(0) == 2.0 and b.expected(1) == 0.5 and b.expected(None) == 2.0
    assert b.eval_blocks({0: 5}, 0)  # 6 x $2 > $10, nothing spent yet
    assert not b.eval_blocks({0: 4}, 0)  # 5 x $2 = $10 fits
    b.add(1, 0.25)
    assert b.measured()
    assert b.expected(1) == 0.25 and b.expected(0) == 0.25  # measured: the eval's mean
