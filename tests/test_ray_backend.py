"""The Ray backend on a real (local) Ray cluster: a head and two worker nodes, one declaring a
GPU, one a custom ``docker`` resource (ray.cluster_utils.Cluster).

What is checked: every run committed exactly once; a task that needs a GPU (or ``docker``) runs
only on the node that declares it; the plan's rate limit holds across the three nodes at the
simulated model server's request log; a driver killed with SIGKILL is resumed exactly once;
a worker node removed mid-eval loses only attempts, which are retried as infrastructure
attempts (never agent failures) and the eval completes. The node removal runs last: it leaves
the cluster with a head and one worker.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import committed_rows
from evalfleet import api
from evalfleet.settings import Settings

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ray = pytest.importorskip("ray")
TESTS = str(Path(__file__).parent)


async def logged(task: dict[str, Any], log: str, sleep_s: float = 0.05) -> str:
    """The test agent (runs on the Ray workers): appends ``start TASK NODE`` before and
    ``end TASK NODE`` after sleeping, then answers ``ok``."""
    import ray as ray_

    node = ray_.get_runtime_context().get_node_id()
    _append(log, f"start {task['id']} {node}")
    await asyncio.sleep(sleep_s)
    _append(log, f"end {task['id']} {node}")
    return "ok"


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


class _Cluster:
    def __init__(self) -> None:
        from ray.cluster_utils import Cluster

        self.c = Cluster(initialize_head=True,
                         head_node_args={"num_cpus": 1, "include_dashboard": False})
        self.docker = self.c.add_node(num_cpus=1, resources={"docker": 2})
        self.gpu = self.c.add_node(num_cpus=1, num_gpus=4)
        self.c.wait_for_nodes()

    @property
    def address(self) -> str:
        return str(self.c.address)


@pytest.fixture(scope="module")
def cluster() -> Iterator[_Cluster]:
    c = _Cluster()
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.c.shutdown()


def _suite(path: Path, n: int, resources: dict[int, dict[str, int]] | None = None,
           timeout_s: float = 60) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            task: dict[str, Any] = {"id": f"t{i:05d}", "input": "say ok", "target": "ok",
                                    "category": f"c{i % 3}", "scorer": {"kind": "exact"},
                                    "limits": {"timeout_s": timeout_s}}
            if resources and i in resources:
                task["resources"] = resources[i]
            fh.write(json.dumps(task) + "\n")
    return path


def _plan(tmp_path: Path, suite: Path, log: Path, *, sleep_s: float = 0.05,
          **execution: Any) -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "ray", "suite": {"path": str(suite)},
        "agents": [{"name": "logged", "version": "1", "kind": "python",
                    "args": {"callable": "test_ray_backend:logged",
                             "kwargs": {"log": str(log), "sleep_s": sleep_s}}}],
        "execution": {"backend": "ray", "max_in_flight": 16, "write_batch": 32,
                      "backoff_base_s": 0.05, "backoff_max_s": 0.2, **execution},
    }))
    return plan


def _events(log: Path) -> list[tuple[str, str, str]]:
    return [tuple(line.split()) for line in log.read_text().splitlines()]  # type: ignore[misc]


def _exactly_once(home: Path, n: int) -> list[dict[str, Any]]:
    rows = committed_rows(home)
    ids = [r["run_id"] for r in rows]
    assert len(ids) == n and len(set(ids)) == n, (len(ids), len(set(ids)))
    return rows


def test_eval_on_three_nodes_exactly_once_and_resources_placed(
        cluster: _Cluster, tmp_path: Path) -> None:
    n = 90
    # leased first and together: four GPU workers and two docker ones, each placed by Ray
    gpu = {i: {"gpu": 1} for i in range(12)}
    docker = {i: {"docker": 1} for i in range(12, 20)}
    suite = _suite(tmp_path / "suite.jsonl", n, {**gpu, **docker})
    log = tmp_path / "runs.log"
    settings = Settings(home=tmp_path / "home")
    summary = api.run(_plan(tmp_path, suite, log, sleep_s=0.2), settings=settings,
                      ray_address=cluster.address)
    assert summary.status == "completed" and summary.done == n
    rows = _exactly_once(settings.home, n)
    assert all(r["passed"] and r["attempts"] == 1 for r in rows)
    starts = [(task, node) for kind, task, node in _events(log) if kind == "start"]
    assert len(starts) == n  # every attempt ran once: no worker was lost
    gpu_node, docker_node = cluster.gpu.node_id, cluster.docker.node_id
    by_task = dict(starts)
    for i in gpu:
        assert by_task[f"t{i:05d}"] == gpu_node  # only the GPU node declares a GPU
    for i in docker:
        assert by_task[f"t{i:05d}"] == docker_node
    plain = {node for task, node in starts if int(task[1:]) not in gpu | docker}
    assert len(plain) == 3  # tasks asking for nothing use every node
    workers = {r["task_id"]: r["worker"] for r in rows}
    assert all(workers[f"t{i:05d}"] == f"ray:{gpu_node[:16]}" for i in gpu)


def test_queued_attempts_never_run_beyond_the_plans_cap(cluster: _Cluster,
                                                       tmp_path: Path) -> None:
    """The dispatcher hands the Ray executor more attempts than ``max_in_flight`` (they wait
    on the workers for a slot, to hide the round trip): at the agents' own start/end log, no
    more than ``max_in_flight`` ever run at once across the three nodes."""
    n, cap = 240, 8
    suite = _suite(tmp_path / "suite.jsonl", n)
    log = tmp_path / "runs.log"
    settings = Settings(home=tmp_path / "home")
    summary = api.run(_plan(tmp_path, suite, log, sleep_s=0.05, max_in_flight=cap),
                      settings=settings, ray_address=cluster.address)
    assert summary.status == "completed" and summary.done == n
    _exactly_once(settings.home, n)
    running = peak = 0
    for kind, _, _ in _events(log):
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert running == 0 and 2 <= peak <= cap, peak


def test_a_resource_no_node_declares_is_refused_at_start(cluster: _Cluster,
                                                        tmp_path: Path) -> None:
    suite = _suite(tmp_path / "suite.jsonl", 3, {1: {"tpu": 1}})
    res = subprocess.run(
        [sys.executable, "-m", "evalfleet", "run", str(_plan(tmp_path, suite, tmp_path / "l")),
         "--home", str(tmp_path / "home"), "--ray-address", cluster.address, "--quiet"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": TESTS})
    assert res.returncode == 2, res.stderr
    assert "t00001 needs 1 tpu" in res.stderr and "Traceback" not in res.stderr


def test_rate_limit_holds_across_three_nodes(cluster: _Cluster, tmp_path: Path) -> None:
    rpm = 300.0  # 5 requests a second for the whole cluster
    # text tasks graded by `exact`: no sandboxed tests in the workers' event loops, whose
    # pauses would bunch requests between the limiter's grant and the server
    suite = _suite(tmp_path / "suite.jsonl", 30)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "limits", "suite": {"path": str(suite)}, "runs_per_task": 2,
        "agents": [{"name": "agent", "version": "1", "kind": "openai", "model": "sim-large",
                    "args": {"base_url": "{simulator}", "api_key_env": None, "tools": False}}],
        "simulator": {"models": {"sim-large": {"skill": 0.8, "latency_s": 0.02}}, "seed": 3},
        "rate_limits": {"sim-large": {"requests_per_minute": rpm}},
        "execution": {"backend": "ray", "max_in_flight": 24},
    }))
    settings = Settings(home=tmp_path / "home")
    summary = api.run(plan, settings=settings, ray_address=cluster.address)
    assert summary.status == "completed" and summary.done == 60
    rows = _exactly_once(settings.home, 60)
    assert len({r["worker"] for r in rows}) == 3  # requests came from all three nodes
    log = [json.loads(line) for line in (settings.home / "simulator.log").read_text()
           .splitlines()]
    stamps = sorted(e["t"] for e in log)
    assert len(stamps) >= 60
    # counts per window, never the wall-clock duration: the buckets allow the limit plus one,
    # and a second's worth for the jitter between the limiter's grant and the server's log
    window = 5.0
    allowed = rpm / 60 * (window + 1.0) + 1
    worst = max(sum(1 for u in stamps[i:] if u - t < window) for i, t in enumerate(stamps))
    assert worst <= allowed, (worst, allowed)


def _journal_counts(home: Path) -> tuple[str, int]:
    from evalfleet.errors import UnknownEvalError
    from evalfleet.store import Journal

    try:
        j = Journal.open_readonly(home)
    except UnknownEvalError:
        return "", 0
    try:
        evals = j.list_evals()
        if not evals:
            return "", 0
        eid = str(evals[0]["eval_id"])
        return eid, int(j.counts(eid).get("done", 0))
    finally:
        j.close()


def test_sigkill_driver_then_resume_on_ray_exactly_once(cluster: _Cluster,
                                                        tmp_path: Path) -> None:
    n = 300
    suite = _suite(tmp_path / "suite.jsonl", n)
    log = tmp_path / "runs.log"
    plan = _plan(tmp_path, suite, log, sleep_s=0.1, max_in_flight=12)
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": TESTS}
    cmd = [sys.executable, "-m", "evalfleet"]
    err = tmp_path / "driver.err"
    with err.open("wb") as fh:
        proc = subprocess.Popen([*cmd, "run", str(plan), "--home", str(home), "--ray-address",
                                 cluster.address], stdout=subprocess.DEVNULL, stderr=fh, env=env)
    deadline = time.monotonic() + 240
    while _journal_counts(home)[1] < 40:
        assert proc.poll() is None, err.read_text()[-3000:]
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    eval_id, before = _journal_counts(home)
    assert 0 < before < n
    res = subprocess.run([*cmd, "resume", eval_id, "--home", str(home), "--ray-address",
                          cluster.address, "--quiet"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr
    _exactly_once(home, n)
    ended = collections.Counter(task for kind, task, _ in _events(log) if kind == "end")
    assert set(ended) == {f"t{i:05d}" for i in range(n)}


def test_worker_node_lost_mid_eval_retried_as_infra_attempts(cluster: _Cluster,
                                                             tmp_path: Path) -> None:
    n = 300
    suite = _suite(tmp_path / "suite.jsonl", n)
    log = tmp_path / "runs.log"
    plan = _plan(tmp_path, suite, log, sleep_s=0.4, max_in_flight=24, max_attempts=5)
    settings = Settings(home=tmp_path / "home")
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(api.run(
        plan, settings=settings, ray_address=cluster.address)))
    thread.start()
    doomed = cluster.docker.node_id
    deadline = time.monotonic() + 240
    while True:  # well under way, with attempts running on the node to be removed
        events = _events(log) if log.exists() else []
        if sum(1 for e in events if e[0] == "end") >= 60 \
                and sum(1 for e in events if e[0] == "start" and e[2] == doomed) >= 10:
            break
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    # mid-eval, attempts running on it: its processes are killed, not drained
    cluster.c.remove_node(cluster.docker, allow_graceful=False)
    thread.join(timeout=600)
    assert not thread.is_alive() and out, "the eval did not finish"
    summary = out[0]
    assert summary.status == "completed" and summary.done == n
    rows = _exactly_once(settings.home, n)
    events = _events(log)
    started = {(t, node) for kind, t, node in events if kind == "start"}
    ended = {(t, node) for kind, t, node in events if kind == "end"}
    by_task = {r["task_id"]: r for r in rows}
    # lost attempts: started on the removed node and never ended there, or whose run was
    # committed from another node (the attempt there ended but its result never came back)
    lost = {t for t, node in started if node == doomed
            and ((t, node) not in ended or by_task[t]["worker"] != f"ray:{doomed[:16]}")}
    assert lost, "no attempt was running on the removed node"
    for t in lost:
        r = by_task[t]
        # the lost attempt is an infrastructure attempt: retried, the run completed and passed
        # on another node, never recorded as the agent's failure
        assert r["attempts"] >= 2 and r["status"] == "completed" and r["passed"], r
        assert r["worker"] != f"ray:{doomed[:16]}"
    assert all(r["error_kind"] is None and r["status"] == "completed" for r in rows)


def test_importing_evalfleet_does_not_import_ray() -> None:
    code = ("import sys, evalfleet, evalfleet.api, evalfleet.api.driver, evalfleet.execution, "
            "evalfleet.cli.main; evalfleet.api.run; print('ray' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "False", res.stderr


def test_task_resources_map_to_ray_resources() -> None:
    from evalfleet.execution.ray_backend import actor_options, fits, ray_shape

    nodes = {"CPU", "GPU", "docker", "memory"}
    shape = ray_shape({"gpu": 1, "docker": 2, "cpu": 1, "openai_key": 1}, nodes,
                      pools={"openai_key"})
    assert shape == (("CPU", 1.0), ("GPU", 1.0), ("docker", 2.0))  # the pool stays a pool
    assert actor_options(shape) == {"num_cpus": 1.0, "num_gpus": 1.0,
                                    "resources": {"docker": 2.0}}
    assert actor_options(()) == {"num_cpus": 0.0, "num_gpus": 0.0}
    assert fits(shape, {"CPU": 4, "GPU": 2, "docker": 5}) == 2
    assert fits(shape, {"CPU": 4, "docker": 5}) == 0  # no GPU declared: nothing lands there


def test_an_address_where_no_cluster_listens_is_one_line(tmp_path: Path) -> None:
    suite = _suite(tmp_path / "suite.jsonl", 2)
    res = subprocess.run(
        [sys.executable, "-m", "evalfleet", "run", str(_plan(tmp_path, suite, tmp_path / "l")),
         "--home", str(tmp_path / "home"), "--ray-address", "127.0.0.1:1", "--quiet"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": TESTS})
    assert res.returncode == 2, res.stderr
    assert "cannot connect to the Ray cluster at 127.0.0.1:1" in res.stderr
    assert "Traceback" not in res.stderr
