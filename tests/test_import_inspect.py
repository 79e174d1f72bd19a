"""`evalfleet import inspect`: an Inspect AI log, produced here by inspect-ai itself with its mock
model (offline), imports as one eval whose mean and standard error are Inspect's own.

Which stderr Inspect computes (inspect_ai/scorer/_metrics/std.py, ``stderr()``): with epochs,
each sample's epoch scores are first reduced by the task's reducer (default ``mean``,
inspect_ai/_eval/task/results.py ``_reduced_views``), then ``accuracy`` is the mean of those
per-sample values and ``stderr`` is ``np.std(values, ddof=1) / sqrt(n)`` over the n samples.
evalfleet's report takes the mean over tasks of per-task means (each task weighing the same) with
SE_CLT = sd(task means, ddof=1) / sqrt(n tasks): the same quantities when tasks are samples and
repeats are epochs, so they must agree to rounding (1e-9), not merely be close.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalfleet import api
from evalfleet.api.imports import inspect_score
from evalfleet.errors import SpecError
from evalfleet.settings import Settings

N_SAMPLES = 20
EPOCHS = 2


@pytest.mark.parametrize(("value", "expected"), [
    ("C", (1.0, True)), ("I", (0.0, False)), ("P", (0.5, False)), ("N", (0.0, False)),
    (True, (1.0, True)), (False, (0.0, False)), (1, (1.0, True)), (0, (0.0, False)),
    (0.25, (0.25, None)),
])
def test_score_values_are_valued_as_inspect_does(value: Any,
                                                 expected: tuple[float, bool | None]) -> None:
    assert inspect_score(value, "log.eval: sample 'q1' epoch 1") == expected


@pytest.mark.parametrize("value", [1.5, -0.1, float("nan"), "X", "yes", [1, 0], {"a": 1}, None])
def test_a_score_outside_0_1_is_an_error_naming_the_sample(value: Any) -> None:
    with pytest.raises(SpecError, match=r"log.eval: sample 'q1' epoch 2: score .* neither"):
        inspect_score(value, "log.eval: sample 'q1' epoch 2")


def test_without_inspect_ai_the_error_names_the_extra(tmp_path: Path) -> None:
    """Plain evalfleet (no inspect extra): one line naming the extra, exit 2, no home made."""
    home = tmp_path / "home"
    code = ("import sys; sys.modules['inspect_ai'] = None; sys.modules['inspect_ai.log'] = None; "
            "from evalfleet.cli import main; main()")
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-c", code, "import", "inspect", str(tmp_path / "x.eval"),
         "--home", str(home)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "needs inspect-ai" in proc.stderr and "evalfleet[inspect]" in proc.stderr
    assert not home.exists()


# -- with inspect-ai ---------------------------------------------------------------------------

def _make_log(log_dir: Path) -> Path:
    """A real Inspect eval: 20 samples x 2 epochs of the mock model, graded by ``includes()``.

    The mock model answers sample i correctly in its first epoch unless 3 divides i and in its
    second unless 4 divides i, so per-sample means are 0, 0.5 and 1 (a non-trivial stderr).
    Usage is set on each output so that the mock model does not count tokens with tiktoken
    (which would download an encoding).
    """
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput, ModelUsage, get_model
    from inspect_ai.scorer import includes
    from inspect_ai.solver import generate

    samples = [Sample(id=f"q{i}", input=f"What is {i} + 1?", target=str(i + 1),
                      metadata={"category": "odd"} if i % 2 else {}) for i in range(N_SAMPLES)]
    calls: collections.Counter[int] = collections.Counter()

    def outputs(messages: Any, tools: Any, tool_choice: Any, config: Any) -> ModelOutput:
        i = int(messages[-1].text.split()[2])
        k = calls[i]
        calls[i] += 1
        right = i % 3 != 0 if k == 0 else i % 4 != 0
        out = ModelOutput.from_content(model="mockllm/model",
                                       content=str(i + 1) if right else "I do not know")
        out.usage = ModelUsage(input_tokens=10 + i, output_tokens=3 + k,
                               total_tokens=13 + i + k)
        return out

    task = Task(dataset=samples, solver=generate(), scorer=includes(), name="arith")
    (log,) = inspect_eval(task, model=get_model("mockllm/model", custom_outputs=outputs),
                          epochs=EPOCHS, log_dir=str(log_dir), display="none",
                          log_format="eval")
    assert log.status == "success", log.error
    return Path(log.location)


@pytest.fixture(scope="module")
def inspect_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The log, made in a child process: Inspect's event loop leaves anyio streams for the
    garbage collector, whose ResourceWarnings this suite turns into errors."""
    pytest.importorskip("inspect_ai", reason="the inspect extra is not installed")
    log_dir = tmp_path_factory.mktemp("inspect-logs")
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "import test_import_inspect as t; print(t._make_log(__import__('pathlib').Path("
            f"{str(log_dir)!r})))")
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                          text=True, timeout=600, cwd=log_dir,
                          env={**os.environ, "INSPECT_LOG_DIR": str(log_dir)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(proc.stdout.strip().splitlines()[-1])


def _variant(log_path: Path, out: Path, change: Any) -> Path:
    """A copy of the log with ``change`` applied and a new Inspect eval id."""
    from inspect_ai.log import read_eval_log, write_eval_log

    log = read_eval_log(str(log_path))
    log.eval.eval_id = f"{log.eval.eval_id}-{out.stem}"
    change(log)
    write_eval_log(log, str(out))
    return out


@pytest.mark.slow
def test_inspect_log_imports_with_inspects_own_accuracy_and_stderr(
        inspect_log: Path, tmp_path: Path) -> None:
    from inspect_ai.log import read_eval_log

    settings = Settings(home=tmp_path / "home")
    log = read_eval_log(str(inspect_log))
    (headline,) = log.results.scores
    accuracy = headline.metrics["accuracy"].value
    stderr = headline.metrics["stderr"].value
    # Inspect's stderr, recomputed from its own per-sample reductions: the definition above
    reduced = np.array([s.value for s in log.reductions[0].samples], dtype=float)
    assert log.reductions[0].reducer in (None, "mean") and reduced.size == N_SAMPLES
    assert stderr == pytest.approx(np.std(reduced, ddof=1) / np.sqrt(N_SAMPLES), abs=1e-12)
    assert 0 < accuracy < 1 and stderr > 0

    (done,) = api.import_inspect([inspect_log], settings=settings)
    assert (done.outcome, done.runs, done.committed, done.tasks, done.status) \
        == ("imported", N_SAMPLES * EPOCHS, N_SAMPLES * EPOCHS, N_SAMPLES, "completed")
    rep = api.report(done.eval_id, settings=settings)
    overall = rep["agents"][0]["overall"]
    assert overall["n_tasks"] == N_SAMPLES and overall["n_runs"] == N_SAMPLES * EPOCHS
    assert abs(overall["mean"] - accuracy) < 1e-9
    assert abs(overall["se"] - stderr) < 1e-9
    assert "SE_CLT" in overall["method"]

    # tasks, epochs, tokens, model and times as the log has them
    _, rows = api.query(
        'SELECT task_id, "repeat", category, tokens_in, tokens_out, model, score, passed, '
        "epoch(started_at), latency_s FROM runs ORDER BY task_id, \"repeat\"",
        settings=settings)
    by_sample = {(s.id, s.epoch): s for s in log.samples}
    assert len(rows) == len(by_sample)
    for task_id, repeat, category, t_in, t_out, model, score, passed, started, latency in rows:
        s = by_sample[(task_id, repeat + 1)]
        usage = s.model_usage["mockllm/model"]
        assert (t_in, t_out) == (usage.input_tokens, usage.output_tokens)
        assert category == ("odd" if int(task_id[1:]) % 2 else "arith")
        assert model == "mockllm/model"
        assert score == {"C": 1.0, "I": 0.0}[s.scores["includes"].value]
        assert passed == (s.scores["includes"].value == "C")
        assert started == pytest.approx(
            __import__("datetime").datetime.fromisoformat(s.started_at).timestamp(), abs=1e-3)
        assert latency == pytest.approx(s.total_time)
    total_in = sum(r[3] for r in rows)
    assert total_in == log.stats.model_usage["mockllm/model"].input_tokens

    # importing the same log again adds nothing
    (again,) = api.import_inspect([inspect_log], settings=settings)
    assert (again.eval_id, again.outcome, again.committed) \
        == (done.eval_id, "already_imported", 0)
    assert api.query("SELECT count(*) FROM runs", settings=settings)[1] == [(40,)]


@pytest.mark.slow
def test_errored_samples_are_missing_data_and_bad_scores_name_the_sample(
        inspect_log: Path, tmp_path: Path) -> None:
    from inspect_ai.log import EvalError

    settings = Settings(home=tmp_path / "home")

    def error_first(log: Any) -> None:
        log.samples[0].error = EvalError(message="RuntimeError: sandbox died\nmore",
                                         traceback="", traceback_ansi="")
        log.samples[0].scores = None

    errored = _variant(inspect_log, tmp_path / "errored.eval", error_first)
    (done,) = api.import_inspect([errored], settings=settings)
    assert (done.errored, done.runs) == (1, N_SAMPLES * EPOCHS)
    rep = api.report(done.eval_id, settings=settings)
    assert rep["agents"][0]["excluded"]["infra_error"] == 1
    assert rep["agents"][0]["overall"]["n_runs"] == N_SAMPLES * EPOCHS - 1
    assert rep["coverage"]["partial"] is True
    _, rows = api.query("SELECT status, error FROM runs WHERE status = 'errored'",
                        settings=settings)
    assert rows == [("errored", "RuntimeError: sandbox died")]

    def bad_value(log: Any) -> None:
        log.samples[3].scores["includes"].value = 2.5

    bad = _variant(inspect_log, tmp_path / "bad.eval", bad_value)
    sample = bad_sample = None
    from inspect_ai.log import read_eval_log

    sample = read_eval_log(str(bad)).samples[3]
    bad_sample = f"sample '{sample.id}' epoch {sample.epoch}"
    with pytest.raises(SpecError, match=f"bad.eval: {bad_sample}, scorer 'includes': score 2.5"):
        api.import_inspect([bad], settings=settings)
    evals = {e["eval_id"] for e in api.status(settings=settings)["evals"]}
    assert evals == {done.eval_id}  # the bad log wrote nothing
