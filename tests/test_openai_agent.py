"""The openai adapter against the SIMULATED model: faults, retries, rate limits, tool loop."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import duckdb
import httpx
import openai
import pytest
import yaml

from evalfleet import api
from evalfleet.cli import main
from evalfleet.settings import Settings
from evalfleet.store import read_trajectory


def _plan(tmp_path: Path, **fields: object) -> Path:
    plan = {
        "name": "sim",
        "agents": [{"name": "agent", "version": "1", "kind": "openai", "model": "sim-large",
                    "args": {"base_url": "{simulator}", "api_key_env": None,
                             "tools": False}}],
        "simulator": {"models": {"sim-large": {"skill": 0.8, "latency_s": 0.05}}, "seed": 3},
        **fields,
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_faulty_model_still_completes_within_rate_limit(tmp_path: Path,
                                                         settings: Settings) -> None:
    rpm = 1200.0
    plan = _plan(tmp_path, suite={"builtin": "humaneval", "limit": 20}, runs_per_task=2,
                 execution={"max_in_flight": 16, "max_attempts": 12, "backoff_base_s": 0.05,
                            "backoff_max_s": 0.5},
                 rate_limits={"sim-large": {"requests_per_minute": rpm}},
                 simulator={"models": {"sim-large": {"skill": 0.8, "latency_s": 0.05}},
                            "faults": {"rate_limit": 0.1, "server_error": 0.1,
                                       "retry_after_s": 0.1},
                            "seed": 11})
    summary = api.run(plan, settings=settings)
    assert summary.status == "completed" and summary.done == 40
    con = duckdb.connect()
    rows = con.execute(f"SELECT status, attempts, tokens_in, cost_usd FROM "
                       f"read_parquet('{settings.home}/results/**/*.parquet')").fetchall()
    con.close()
    assert {r[0] for r in rows} <= {"completed", "failed"}  # no run lost to infra errors
    assert sum(r[1] for r in rows) > 40  # the attempts column shows the retries
    assert all(r[2] > 0 and r[3] > 0 for r in rows)
    log = [json.loads(line) for line in (settings.home / "simulator.log").read_text().splitlines()]
    stamps = sorted(e["t"] for e in log)
    assert {e["outcome"] for e in log} >= {"ok", "429", "500"}
    window = 2.0  # seconds; the server sees requests with a little network jitter
    for i, t in enumerate(stamps):
        in_window = sum(1 for u in stamps[i:i + 400] if u - t < window)
        assert in_window <= rpm / 60 * window + 1


def test_tool_loop_on_repository_tasks(tmp_path: Path, settings: Settings) -> None:
    plan = _plan(tmp_path, suite={"builtin": "repo-tasks", "limit": 4}, runs_per_task=1,
                 agents=[{"name": "coder", "version": "1", "kind": "openai",
                          "model": "sim-large",
                          "args": {"base_url": "{simulator}", "api_key_env": None}}],
                 simulator={"models": {"sim-large": {"skill": 0.98, "latency_s": 0.01}},
                            "seed": 5})
    summary = api.run(plan, settings=settings)
    assert summary.done == 4
    con = duckdb.connect()
    rows = con.execute(f"SELECT score, metrics, trajectory_uri, repository, tokens_out, "
                       f"sandbox, run_id FROM read_parquet('{settings.home}/results/**/*.parquet')"
                       ).fetchall()
    con.close()
    assert all(r[3] for r in rows)
    assert all(r[5] in ("local", "bwrap") for r in rows)
    assert sum(1 for r in rows if r[0] == 1.0) >= 2  # skill 0.98 on easy-to-hard tasks
    assert all(r[1]["tests_total"] >= 3 for r in rows)
    traj = read_trajectory(settings.home, rows[0][2], rows[0][6])
    assert traj is not None
    kinds = [e["kind"] for e in traj["events"]]
    assert "model_call" in kinds and "tool_call" in kinds and "scorer" in kinds
    calls = [e for e in traj["events"] if e["kind"] == "model_call"]
    assert all(c["tokens_in"] > 0 and c["duration_s"] >= 0 for c in calls)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_stop_the_eval_with_exit_2(
        status: int, tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # a provider that refuses the key: every run would score 0 if this were the agent's
    # failure; it is a configuration error that stops the eval instead
    calls: list[str] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers.get("authorization", ""))
        return httpx.Response(status, json={"error": {"message": "bad key", "type": "auth",
                                                      "code": "invalid_api_key"}})

    real = openai.AsyncOpenAI

    def client(**kwargs: Any) -> openai.AsyncOpenAI:
        return real(**kwargs, http_client=httpx.AsyncClient(transport=httpx.MockTransport(refuse)))

    monkeypatch.setattr("evalfleet.agents.openai_agent.openai.AsyncOpenAI", client)
    monkeypatch.setenv("EVALFLEET_TEST_KEY", "sk-wrong")
    plan = {"name": "refused", "suite": {"builtin": "humaneval", "limit": 20},
            "runs_per_task": 1, "execution": {"max_in_flight": 2},
            "agents": [{"name": "agent", "version": "1", "kind": "openai", "model": "gpt-x",
                        "args": {"base_url": "http://provider.invalid/v1",
                                 "api_key_env": "EVALFLEET_TEST_KEY", "tools": False}}]}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    monkeypatch.setattr(sys, "argv", ["evalfleet", "run", str(path), "--home",
                                      str(settings.home), "--quiet"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"({status}, key from EVALFLEET_TEST_KEY)" in err
    assert calls and all(c == "Bearer sk-wrong" for c in calls)
    assert len(calls) <= 4  # stopped at the first refusal: only runs in flight were sent
    (ev,) = api.status(settings=settings)["evals"]
    rep = api.report(ev["eval_id"], settings=settings)
    agent = rep["agents"][0]
    # nothing was scored 0 for the provider's refusal, nor recorded: all 20 wait for resume
    assert ev["done"] == 0 and agent["overall"] is None
    assert rep["coverage"]["planned"] == 20 and rep["coverage"]["scored"] == 0
