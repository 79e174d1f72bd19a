"""`evalfleet plan power`: Miller 2024 planning numbers, estimation from runs, the CLI."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from evalfleet.analysis.power import assumed_inputs, estimate_inputs, plan_power
from evalfleet.cli.plan_cmds import plan_app
from evalfleet.errors import SpecError

from .conftest import TASK_IDS, SmallEval

Z_SUM_SQ = 7.848879734
"""(z_.025 + z_.20)^2: an oracle independent of scipy."""
DELTA = 0.02


def tasks_needed(variance: float, delta: float = DELTA) -> int:
    return math.ceil(Z_SUM_SQ * variance / delta**2)


def var_d(pa_: float, pb: float, rho: float) -> float:
    """Variance of a binary paired difference at K = 1."""
    va, vb = pa_ * (1 - pa_), pb * (1 - pb)
    return va + vb - 2 * rho * math.sqrt(va * vb)



def test_section_1_7_tasks_over_k() -> None:
    plan = plan_power(assumed_inputs(0.10, 0.06), delta=0.02)
    assert [r["k"] for r in plan["rows"]] == [1, 3, 5, 10]
    assert [r["tasks_needed"] for r in plan["rows"]] == [4317, 2748, 2434, 2198]
    assert not any(r["upper_bound"] for r in plan["rows"])
    assert plan["inputs"]["source"] == "assumed"
    assert "Eq. 9" in plan["method"]["tasks_needed"]
    assert plan["rows"][0]["mde"] is None and plan["n_tasks"] is None
    assert any("--tasks" in note for note in plan["notes"])


@pytest.mark.parametrize(("n", "binary_pts", "components_pts"),
                         [(200, 9.2, 7.0), (500, 5.8, 4.4), (1000, 4.1, 3.1), (2000, 2.9, 2.2)])
def test_section_1_7_what_a_fixed_suite_detects(n: int, binary_pts: float,
                                                 components_pts: float) -> None:
    binary = plan_power(assumed_inputs(var_d(0.70, 0.68, 0.5), 0.0), n_tasks=n, ks=(1,))
    assert round(100 * binary["rows"][0]["mde"], 1) == binary_pts
    k5 = plan_power(assumed_inputs(0.10, 0.06), n_tasks=n, ks=(5,))
    assert round(100 * k5["rows"][0]["mde"], 1) == components_pts


def test_binary_k1_two_and_one_sided() -> None:
    inputs = assumed_inputs(var_d(0.70, 0.68, 0.5), 0.0)
    assert plan_power(inputs, ks=(1,))["rows"][0]["tasks_needed"] == 4196
    one = plan_power(inputs, ks=(1,), two_sided=False)
    assert one["rows"][0]["tasks_needed"] == 3306
    assert "one-sided" in one["method"]["tasks_needed"]


def test_millers_mde_example() -> None:
    plan = plan_power(assumed_inputs(1 / 9, 1 / 6), n_tasks=198, ks=(1, 10))
    assert plan["rows"][0]["mde"] == pytest.approx(0.132733, abs=1e-6)
    assert plan["rows"][1]["mde"] == pytest.approx(0.075670, abs=1e-6)


def test_bad_design_arguments_are_spec_errors() -> None:
    inputs = assumed_inputs(0.1, 0.06)
    with pytest.raises(SpecError, match="fraction"):
        plan_power(inputs, delta=2.0)
    with pytest.raises(SpecError, match="alpha"):
        plan_power(inputs, alpha=1.5)
    with pytest.raises(SpecError, match="non-negative"):
        assumed_inputs(-0.1, 0.06)



def write_runs(home: Path, runs: dict[tuple[str, str], np.ndarray], eval_id: str = "E1",
               extra: list[dict[str, object]] | None = None) -> list[str]:
    """Binary runs (tasks x K per agent) as a results file; returns its path under home."""
    rows: list[dict[str, object]] = []
    for (name, version), matrix in runs.items():
        for i, task_runs in enumerate(matrix):
            for k, score in enumerate(task_runs):
                rows.append({"run_id": f"{name}-{i}-{k}", "eval_id": eval_id,
                             "task_id": f"task{i:03d}", "agent_name": name,
                             "agent_version": version, "score": float(score),
                             "passed": bool(score), "status": "completed"})
    rows.extend(extra or [])
    rel = f"results/eval_id={eval_id}/batch.parquet"
    (home / rel).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), home / rel)
    return [rel]


def binary_runs(rng: np.random.Generator, p: np.ndarray, k: int) -> np.ndarray:
    return (rng.random((p.size, k)) < p[:, None]).astype(float)


@pytest.fixture
def two_agents(tmp_path: Path) -> tuple[Path, list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    p = rng.beta(2, 1, size=60)
    base = binary_runs(rng, p, 4)
    new = binary_runs(rng, np.clip(p + rng.normal(0, 0.35, 60), 0, 1), 4)
    # infra errors are missing data: this row must not enter the estimate
    errored = {"run_id": "err", "eval_id": "E1", "task_id": "task000", "agent_name": "a",
               "agent_version": "1", "score": 0.0, "passed": False, "status": "errored"}
    paths = write_runs(tmp_path, {("a", "1"): base, ("a", "2"): new}, extra=[errored])
    return tmp_path, paths, base, new


def test_paired_estimate_matches_numpy(two_agents: tuple[Path, list[str], np.ndarray,
                                                         np.ndarray]) -> None:
    home, paths, base, new = two_agents
    k = base.shape[1]
    sigma_base = float(np.var(base, axis=1, ddof=1).mean())
    sigma_new = float(np.var(new, axis=1, ddof=1).mean())
    d = base.mean(axis=1) - new.mean(axis=1)
    omega2 = float(np.var(d, ddof=1)) - sigma_base / k - sigma_new / k
    assert omega2 > 0.05  # not clipped

    inputs = estimate_inputs(home, paths, "E1", base="a@1", new="a@2")
    assert inputs.separable and inputs.n_tasks == 60 and inputs.runs_per_task == 4
    assert inputs.sigma2_base == pytest.approx(sigma_base, rel=1e-12)
    assert inputs.sigma2_new == pytest.approx(sigma_new, rel=1e-12)
    assert inputs.omega2 == pytest.approx(omega2, rel=1e-12)
    assert inputs.source.startswith("estimated from E1") and "a@1 vs a@2" in inputs.source

    plan = plan_power(inputs, n_tasks=60)
    for row in plan["rows"]:
        variance = omega2 + (sigma_base + sigma_new) / row["k"]
        assert row["tasks_needed"] == tasks_needed(variance)
        assert row["mde"] == pytest.approx(math.sqrt(Z_SUM_SQ * variance / 60), rel=1e-8)


def test_one_agent_against_its_next_version(two_agents: tuple[Path, list[str], np.ndarray,
                                                              np.ndarray]) -> None:
    home, paths, base, _ = two_agents
    k = base.shape[1]
    sigma2 = float(np.var(base, axis=1, ddof=1).mean())
    var_x = float(np.var(base.mean(axis=1), ddof=1)) - sigma2 / k
    assert var_x > 0.02  # not clipped
    for rho in (0.5, 0.2):
        inputs = estimate_inputs(home, paths, "E1", base="a@1", rho=rho)
        assert inputs.omega2 == pytest.approx(2 * (1 - rho) * var_x, rel=1e-12)
        assert inputs.sigma2_base == inputs.sigma2_new == pytest.approx(sigma2, rel=1e-12)
        assert inputs.rho == rho and inputs.new is None
        assert any(f"ASSUMED rho = {rho:g}" in note for note in inputs.notes)
    rerun = estimate_inputs(home, paths, "E1", base="a@1", rho=1.0)
    assert rerun.omega2 == 0.0


def test_agent_choice_errors(two_agents: tuple[Path, list[str], np.ndarray,
                                            np.ndarray]) -> None:
    home, paths, _, _ = two_agents
    with pytest.raises(SpecError, match=r"2 agents with results \(a@1, a@2\)"):
        estimate_inputs(home, paths, "E1")
    with pytest.raises(SpecError, match="agent a@9 has no results"):
        estimate_inputs(home, paths, "E1", base="a@9")
    with pytest.raises(SpecError, match="ambiguous"):
        estimate_inputs(home, paths, "E1", base="a")
    with pytest.raises(SpecError, match="both a@1"):
        estimate_inputs(home, paths, "E1", base="a@1", new="a@1")
    with pytest.raises(SpecError, match="no scored runs"):
        estimate_inputs(home, paths, "OTHER", base="a@1")


def test_one_run_per_task_cannot_separate_sigma(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    p = rng.beta(2, 1, size=80)
    base, new = binary_runs(rng, p, 1), binary_runs(rng, p, 1)
    paths = write_runs(tmp_path, {("a", "1"): base, ("a", "2"): new})

    paired = estimate_inputs(tmp_path, paths, "E1", base="a@1", new="a@2")
    assert not paired.separable
    assert paired.sigma2_base is None and paired.sigma2_new is None
    var_obs = float(np.var(base[:, 0] - new[:, 0], ddof=1))
    assert paired.omega2 == pytest.approx(var_obs, rel=1e-12)
    plan = plan_power(paired, n_tasks=80)
    assert "cannot be separated" in " ".join(plan["notes"])
    assert [r["upper_bound"] for r in plan["rows"]] == [False, True, True, True]
    assert {r["tasks_needed"] for r in plan["rows"]} == {tasks_needed(var_obs)}
    assert plan["inputs"]["sigma2_base"] is None and plan["inputs"]["separable"] is False

    single = estimate_inputs(tmp_path, paths, "E1", base="a@1", rho=0.5)
    rate = float(base.mean())
    assert not single.separable
    assert single.omega2 == pytest.approx(2 * rate * (1 - rate) * 0.5, rel=1e-12)
    assert "p (1 - p)" in single.method

    # an assumed sigma^2 makes K > 1 projectable: omega^2 from the observed variance
    assumed = estimate_inputs(tmp_path, paths, "E1", base="a@1", new="a@2", sigma2_base=0.05)
    assert assumed.separable and "sigma^2 assumed" in assumed.source
    assert assumed.omega2 == pytest.approx(max(0.0, var_obs - 0.10), rel=1e-12)
    assert not any(r["upper_bound"] for r in plan_power(assumed)["rows"])



def invoke(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(plan_app, ["power", *args])
    return res.exit_code, res.stdout, res.stderr


def test_cli_assumed_values_table() -> None:
    code, out, _ = invoke("--omega2", "0.10", "--sigma2", "0.06", "--tasks", "500")
    assert code == 0, out
    for text in ("4,317", "2,748", "2,434", "2,198", "MDE pts (500 tasks)", "assumed",
                 "omega^2 0.1000", "sigma^2 base 0.0600, new 0.0600"):
        assert text in out, text
    assert " 4.4 " in out  # K = 5 at 500 tasks


def test_cli_json() -> None:
    code, out, _ = invoke("--omega2", "0.1", "--sigma2", "0.06", "--sigma2-new", "0.02",
                          "--one-sided", "--delta", "0.05", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["two_sided"] is False and doc["delta"] == 0.05
    assert doc["inputs"]["sigma2_new"] == 0.02
    assert [r["k"] for r in doc["rows"]] == [1, 3, 5, 10]


@pytest.mark.parametrize(("args", "words"), [
    ((), "--from EVAL_ID"),
    (("--omega2", "0.1"), "--sigma2 Y"),
    (("--omega2", "0.1", "--sigma2", "0.06", "--delta", "2"), "fraction"),
    (("--omega2", "0.1", "--sigma2", "0.06", "--base", "a@1"), "use them with --from"),
    (("--omega2", "0.1", "--sigma2-new", "0.06"), "--sigma2-new needs --sigma2"),
])
def test_cli_bad_input_exits_2_with_one_message(args: tuple[str, ...], words: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2
    assert words in err and "Traceback" not in err and out == ""


def test_cli_from_a_real_eval(small_eval: SmallEval) -> None:
    home = str(small_eval.settings.home)
    code, out, _ = invoke("--from", small_eval.eval_id, "--home", home, "--base", "good@1",
                          "--new", "mixed@2", "--json")
    assert code == 0, out
    doc = json.loads(out)
    assert doc["n_tasks"] == len(TASK_IDS)
    assert doc["n_tasks_source"] == f"tasks planned in {small_eval.eval_id}"
    # deterministic agents: no run noise; the difference is 1 on 5 of 8 tasks, 0 on the others
    d = np.array([0.0 if t in {"t0", "t2", "t5"} else 1.0 for t in TASK_IDS])
    assert doc["inputs"]["sigma2_base"] == 0.0 and doc["inputs"]["sigma2_new"] == 0.0
    assert doc["inputs"]["omega2"] == pytest.approx(float(np.var(d, ddof=1)))

    code, _, err = invoke("--from", small_eval.eval_id, "--home", home)
    assert code == 2 and "3 agents with results" in err
    code, out, _ = invoke("--from", small_eval.eval_id[:8], "--home", home, "--base", "mixed@2")
    assert code == 0 and "ASSUMED rho = 0.5" in " ".join(out.split())


def test_help_stays_light() -> None:
    code = ("import sys\nfrom typer.testing import CliRunner\n"
            "from evalfleet.cli.plan_cmds import plan_app\n"
            "r = CliRunner().invoke(plan_app, ['power', '--help'])\n"
            "assert r.exit_code == 0, r.output\n"
            "print([m for m in ('duckdb', 'pyarrow', 'numpy', 'scipy', 'evalfleet.api') "
            "if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_documented_options_exist() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "analysis.md").read_text()
    section = doc.split("## `evalfleet plan power`")[1].split("\n## ")[0]  # to the next section
    res = CliRunner().invoke(plan_app, ["power", "--help"], terminal_width=200)
    documented = set(re.findall(r"(--[a-z][a-z0-9-]+)", section))
    assert {"--from", "--base", "--new", "--rho", "--omega2", "--sigma2", "--sigma2-new",
            "--tasks", "--one-sided"} <= documented
    for option in documented:
        assert option in res.stdout, option
