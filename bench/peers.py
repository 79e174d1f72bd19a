"""Benchmark: the same trivial workload through Inspect AI and through evalfleet, whole processes.

    python bench/peers.py                       # 10,000 samples, 3 rounds, the default agent
    python bench/peers.py --agent async         # evalfleet's async python agent
    python bench/peers.py --samples 2000 --repeats 1 --cache-dir DIR
    python bench/peers.py --baseline /tmp/base/src --repeats 8   # evalfleet against an older one

The workload: N samples, each answered at once with the fixed text ``ok`` and graded by
"the answer includes the target" (target ``ok``), no sandbox, concurrency high enough not to
be the limit.

- Inspect AI (``inspect-ai==INSPECT_VERSION``, installed once by this script into its own venv
  under ``--cache-dir``, default ``~/.cache/evalfleet-bench/inspect-venv``): a task file with N
  ``Sample``s, ``generate()`` against Inspect's mock model ``mockllm/model`` whose outputs are
  all ``ok`` (``custom_outputs``), the ``includes()`` scorer, no sandbox, ``max_connections``
  and ``max_samples`` at ``--concurrency``. It runs as ``python run_inspect.py`` in the venv:
  ``inspect_ai.eval(...)`` with no display, writing its usual ``.eval`` log.
- evalfleet: ``python -m evalfleet run PLAN --quiet`` on a fresh home: a JSONL suite of the
  same N tasks (``includes`` scorer, target ``ok``), one python agent that answers ``ok``
  (``evalfleet.testing.agents:noop``, or ``noop_async`` with ``--agent async``), no sandbox (a
  python agent graded by a text scorer needs none), ``max_in_flight`` at ``--workers`` (100:
  a no-op agent needs no more; a sync agent's pool may start that many threads).

With ``--baseline SRC`` (the ``src`` directory of another source tree, e.g. a ``git worktree``
of an earlier commit) Inspect is left out: the same evalfleet plan is run by the evalfleet in
SRC (on ``PYTHONPATH``) and by this one, alternating, baseline first, and the ratio of this
one's wall time to the baseline's is printed: how a change moved the whole process.

Both are whole processes (interpreter start, imports, the eval, writing their logs/results),
run alternately ``--repeats`` times, after one untimed run of each on 20 samples (which writes
Python's bytecode caches: the environment's PYTHONDONTWRITEBYTECODE is dropped for both).
Each run is checked afterwards (N samples, all correct) outside the timed process. Printed:
each wall time and samples per second, and the median of each with the ratio of evalfleet's
samples per second to Inspect's (of the medians, and the median of each round's ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

INSPECT_VERSION = "0.3.285"
DEFAULT_CACHE = Path.home() / ".cache" / "evalfleet-bench"

TASK_FILE = '''\
from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate


@task
def peers(samples: int = 10000) -> Task:
    dataset = MemoryDataset([Sample(id=f"t{i:07d}", input=f"task {i}", target="ok")
                             for i in range(samples)])
    return Task(dataset=dataset, solver=generate(), scorer=includes())
'''

RUNNER = '''\
"""One Inspect eval of the peers task against the mock model (all outputs "ok")."""
import json
import sys

from inspect_ai import eval as inspect_eval
from inspect_ai.model import ModelOutput, ModelUsage, get_model

from peers_task import peers


def outputs():
    # with usage given, the mock model does not count tokens with tiktoken (whose encoding it
    # would download)
    while True:
        out = ModelOutput.from_content(model="mockllm/model", content="ok")
        out.usage = ModelUsage(input_tokens=3, output_tokens=1, total_tokens=4)
        yield out


samples, concurrency, log_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
model = get_model("mockllm/model", custom_outputs=outputs())
logs = inspect_eval(peers(samples), model=model, max_connections=concurrency,
                    max_samples=concurrency, log_dir=log_dir, display="none",
                    sandbox=None, fail_on_error=False)
log = logs[0]
metrics = {m.name: m.value for s in (log.results.scores if log.results else [])
           for m in s.metrics.values()}
print(json.dumps({"status": log.status,
                  "completed": log.results.completed_samples if log.results else 0,
                  "accuracy": metrics.get("accuracy")}))
'''


def inspect_venv(cache_dir: Path) -> Path:
    """The venv's python, with inspect-ai==INSPECT_VERSION installed (once) from PyPI."""
    venv = cache_dir / "inspect-venv"
    python = venv / "bin" / "python"
    if python.exists() and _inspect_version(python) == INSPECT_VERSION:
        return python
    print(f"installing inspect-ai=={INSPECT_VERSION} into {venv} (once) ...", flush=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                    f"inspect-ai=={INSPECT_VERSION}"], check=True)
    found = _inspect_version(python)
    if found != INSPECT_VERSION:
        raise SystemExit(f"{venv}: inspect-ai {found!r} installed, not {INSPECT_VERSION}")
    return python


def _inspect_version(python: Path) -> str | None:
    proc = subprocess.run([str(python), "-c", "import inspect_ai; print(inspect_ai.__version__)"],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def write_inspect(work: Path) -> Path:
    """The Inspect task file and its runner; the runner's path."""
    (work / "peers_task.py").write_text(TASK_FILE)
    runner = work / "run_inspect.py"
    runner.write_text(RUNNER)
    return runner


def write_evalfleet(work: Path, samples: int, concurrency: int, agent: str) -> Path:
    """The evalfleet suite (JSONL) and plan; the plan's path."""
    suite = work / "peers-suite.jsonl"
    with suite.open("w") as fh:
        for i in range(samples):
            fh.write(json.dumps({"id": f"t{i:07d}", "input": f"task {i}", "target": "ok",
                                 "scorer": {"kind": "includes"}}) + "\n")
    callable_ = "noop_async" if agent == "async" else "noop"
    plan = {"name": "peers", "suite": {"path": str(suite)}, "runs_per_task": 1,
            "agents": [{"name": "fixed", "version": "1", "kind": "python", "price": 0,
                        "args": {"callable": f"evalfleet.testing.agents:{callable_}"}}],
            "execution": {"max_in_flight": concurrency}}
    path = work / "peers.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a timed process: this one's, with the bytecode cache on."""
    env = {**os.environ, **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def run_inspect(python: Path, runner: Path, work: Path, samples: int, concurrency: int,
                round_: int | str) -> float:
    log_dir = work / f"inspect-logs-{round_}"
    env = child_env(PYTHONPATH=str(runner.parent))
    env.pop("VIRTUAL_ENV", None)
    wall, out = _timed([str(python), str(runner), str(samples), str(concurrency), str(log_dir)],
                       env, work)
    res = json.loads(out.strip().splitlines()[-1])
    if res != {"status": "success", "completed": samples, "accuracy": 1.0}:
        raise SystemExit(f"Inspect did not grade every sample correct: {res}")
    return wall


def run_evalfleet(plan: Path, work: Path, samples: int, round_: int | str,
                  src: Path | None = None) -> float:
    """One timed ``evalfleet run`` (of the evalfleet in ``src``, a source tree's ``src``
    directory, when given), checked afterwards."""
    home = work / f"evalfleet-home-{round_}{'-baseline' if src else ''}"
    env = child_env(EVALFLEET_HOME=str(home), **({"PYTHONPATH": str(src)} if src else {}))
    wall, _ = _timed([sys.executable, "-m", "evalfleet", "run", str(plan), "--quiet"], env, work)
    check = subprocess.run([sys.executable, "-m", "evalfleet", "status", "--json"], env=env,
                           capture_output=True, text=True, check=True)
    eval_id = json.loads(check.stdout)["evals"][0]["eval_id"]
    rep = json.loads(subprocess.run(
        [sys.executable, "-m", "evalfleet", "report", eval_id, "--json"], env=env,
        capture_output=True, text=True, check=True).stdout)
    overall = rep["agents"][0]["overall"]
    if rep["coverage"]["scored"] != samples or overall["mean"] != 1.0:
        raise SystemExit(f"evalfleet did not grade every sample correct: {rep['coverage']}, "
                         f"mean {overall['mean']}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1000,
                        help="Inspect's max_connections and max_samples")
    parser.add_argument("--workers", type=int, default=100,
                        help="evalfleet's max_in_flight (runs in flight)")
    parser.add_argument("--agent", choices=("sync", "async"), default="sync",
                        help="evalfleet's python agent: the default (sync) or async")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="where the Inspect venv is kept (default %(default)s)")
    parser.add_argument("--baseline", type=Path, metavar="SRC",
                        help="instead of Inspect, time the evalfleet of another source tree "
                             "(its src directory, e.g. of a `git worktree` of an earlier "
                             "commit) on the same plan, alternating with this one")
    args = parser.parse_args()
    if args.baseline is not None:
        baseline(args)
        return
    python = inspect_venv(args.cache_dir)
    print(f"Inspect AI {INSPECT_VERSION} venv: {python.parent.parent}; {args.samples:,} "
          f"samples; Inspect concurrency {args.concurrency}, evalfleet {args.workers} in "
          f"flight, {args.agent} agent", flush=True)
    with tempfile.TemporaryDirectory(prefix="evalfleet-peers-") as tmp:
        work = Path(tmp)
        runner = write_inspect(work)
        plan = write_evalfleet(work, args.samples, args.workers, args.agent)
        warm = work / "warm-up"
        warm.mkdir()
        run_inspect(python, runner, work, 20, args.concurrency, "warm-up")
        run_evalfleet(write_evalfleet(warm, 20, args.workers, args.agent), work, 20, "warm-up")
        walls: dict[str, list[float]] = {"inspect": [], "evalfleet": []}
        for r in range(args.repeats):
            walls["inspect"].append(run_inspect(python, runner, work, args.samples,
                                                args.concurrency, r))
            walls["evalfleet"].append(run_evalfleet(plan, work, args.samples, r))
            i, e = walls["inspect"][-1], walls["evalfleet"][-1]
            print(f"round {r + 1}: Inspect {i:.2f}s ({args.samples / i:,.0f} samples/s), "
                  f"evalfleet {e:.2f}s ({args.samples / e:,.0f} samples/s), "
                  f"ratio {i / e:.1f}x", flush=True)
        med_i, med_e = statistics.median(walls["inspect"]), statistics.median(walls["evalfleet"])
        pairs = statistics.median(i / e for i, e in zip(walls["inspect"], walls["evalfleet"],
                                                         strict=True))
        print(f"median of {args.repeats}: Inspect {med_i:.2f}s = {args.samples / med_i:,.0f} "
              f"samples/s; evalfleet ({args.agent} agent) {med_e:.2f}s = "
              f"{args.samples / med_e:,.0f} samples/s; evalfleet/Inspect samples per second "
              f"{med_i / med_e:.1f}x (ratio of the medians), {pairs:.1f}x (median of the "
              "rounds' ratios: on a shared machine the two can differ a lot)")


def baseline(args: argparse.Namespace) -> None:
    """``--baseline SRC``: this evalfleet against the one in SRC, whole processes alternating
    (the baseline first in each round), after an untimed run of each."""
    src = args.baseline.resolve()
    if not (src / "evalfleet" / "__init__.py").is_file():
        raise SystemExit(f"--baseline {src}: no evalfleet package there (give a tree's src)")
    print(f"evalfleet from {src} (baseline) against this one; {args.samples:,} samples, "
          f"{args.workers} in flight, {args.agent} agent", flush=True)
    with tempfile.TemporaryDirectory(prefix="evalfleet-peers-") as tmp:
        work = Path(tmp)
        plan = write_evalfleet(work, args.samples, args.workers, args.agent)
        for tree in (src, None):
            run_evalfleet(plan, work, args.samples, f"warm-up-{tree is None}", tree)
        base: list[float] = []
        this: list[float] = []
        for r in range(args.repeats):
            base.append(run_evalfleet(plan, work, args.samples, r, src))
            this.append(run_evalfleet(plan, work, args.samples, r))
            print(f"round {r + 1}: baseline {base[-1]:.2f}s, this {this[-1]:.2f}s, "
                  f"ratio this/baseline {this[-1] / base[-1]:.3f}", flush=True)
        pairs = statistics.median(t / b for t, b in zip(this, base, strict=True))
        print(f"median of {args.repeats}: baseline {statistics.median(base):.2f}s (min "
              f"{min(base):.2f}s), this {statistics.median(this):.2f}s (min {min(this):.2f}s); "
              f"this/baseline {statistics.median(this) / statistics.median(base):.3f} (of the "
              f"medians), {pairs:.3f} (median of the rounds' ratios)")


if __name__ == "__main__":
    main()
