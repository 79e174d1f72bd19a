"""Red-team tests of cost control: inputs a hostile server or a busy team would give."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from conftest import write_jsonl_suite, write_plan
from evalfleet import api
from evalfleet.agents.base import AgentContext
from evalfleet.agents.openai_agent import OpenAIAgent, OpenAIAgentArgs
from evalfleet.cost.prices import ModelPrice, PriceTable
from evalfleet.settings import Settings
from evalfleet.spec.agent import AgentSpec
from evalfleet.spec.task import Task
from evalfleet.spec.trajectory import Trajectory


def _hostile_call(usage: dict[str, Any]) -> AgentContext:
    """One model call of the openai adapter against a server answering with ``usage``."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={
            "id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "ok"}}],
            "usage": usage})

    spec = AgentSpec.model_validate({"name": "a", "kind": "openai", "model": "m",
                                     "args": {"base_url": "http://hostile/v1",
                                              "api_key_env": None, "tools": False}})
    agent = OpenAIAgent(OpenAIAgentArgs(base_url="http://hostile/v1", api_key_env=None,
                                        tools=False), "m")
    ctx = AgentContext(task=Task.model_validate({"id": "t", "input": "hi", "target": "ok",
                                                  "scorer": {"kind": "exact"}}),
                       spec=spec, run_id="r", attempt=1, sandbox=None,  # type: ignore[arg-type]
                       trajectory=Trajectory(),
                       prices=PriceTable(models={"m": ModelPrice(2.0, 8.0)}, tiers={}))

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            agent._clients["http://hostile/v1"] = openai.AsyncOpenAI(
                base_url="http://hostile/v1", api_key="unused", max_retries=0, http_client=http)
            await agent._call(ctx, "http://hostile/v1", [{"role": "user", "content": "hi"}])

    asyncio.run(go())
    return ctx


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": -5_000_000, "completion_tokens": -1_000_000, "total_tokens": -6_000_000},
    {"prompt_tokens": 1000, "completion_tokens": -1_000_000, "total_tokens": 0},
    {"prompt_tokens": "lots", "completion_tokens": None, "total_tokens": 0},
])
def test_a_hostile_usage_never_makes_a_call_cost_less_than_nothing(usage: dict[str, Any]
                                                                     ) -> None:
    """Negative or non-numeric token counts from a model server would give a call a negative
    cost: the run would pay money back into the budget, which then never stops."""
    ctx = _hostile_call(usage)
    assert ctx.usage.tokens_in >= 0 and ctx.usage.tokens_out >= 0
    assert ctx.usage.tokens_cached <= ctx.usage.tokens_in
    assert ctx.usage.cost_usd >= 0
    calls = [json.loads(json.dumps(e)) for e in ctx.trajectory.to_dict()["events"]
             if e["kind"] == "model_call"]
    assert calls and all(c["tokens_in"] >= 0 and c["tokens_out"] >= 0 for c in calls)


# --- plan review: history tokens are priced at the agent's price now ----------------------

def _review_plan(path: Path, agent_extra: dict[str, Any]) -> Path:
    plan = {"name": "reprice", "suite": {"builtin": "humaneval", "limit": 4}, "runs_per_task": 1,
            "agents": [{"name": "agent", "kind": "openai", "model": "sim-large",
                        "args": {"base_url": "{simulator}", "api_key_env": None,
                                 "tools": False}, **agent_extra}],
            "execution": {"max_in_flight": 4},
            "simulator": {"models": {"sim-large": {"skill": 0.8, "latency_s": 0.0}}, "seed": 3}}
    path.write_text(yaml.safe_dump(plan))
    return path


def test_plan_review_prices_history_at_the_agents_price_now(tmp_path: Path,
                                                           settings: Settings) -> None:
    """An agent's price is outside its fingerprint, so history run at one price matches a plan
    at another: free (or unpriced) history reviewed as $0 model cost under a real price would
    make a plan look free and fit any budget."""
    summary = api.run(_review_plan(tmp_path / "free.yaml", {"price": 0}), settings=settings)
    assert summary.status == "completed"
    _, rows = api.query("SELECT sum(tokens_in), sum(tokens_cached), sum(tokens_out), "
                           "sum(cost_usd), count(*) FROM runs", settings=settings)
    tin, tcached, tout, charged, n = rows[0]
    assert charged == 0 and tin > 0
    priced = {"price": {"input_per_mtok": 3.0, "output_per_mtok": 15.0,
                        "cached_input_per_mtok": 0.3}}
    r = api.review_plan(_review_plan(tmp_path / "priced.yaml", priced), settings=settings)
    (agent,) = r["agents"]
    assert agent["source"] == "history"
    expected = ((tin - tcached) * 3.0 + tcached * 0.3 + tout * 15.0) / 1e6 / n
    assert agent["unit"]["model_usd"] == pytest.approx(expected, rel=1e-6)
    # and the same history under its own price is what those runs were charged: $0
    same = api.review_plan(_review_plan(tmp_path / "free2.yaml", {"price": 0}),
                           settings=settings)
    assert same["agents"][0]["unit"]["model_usd"] == 0


# --- plan review of a deep plan: reuse keys only for repeats the home has ---------------------

def test_plan_review_of_a_deep_plan_builds_keys_only_for_repeats_with_history(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """`runs: {max: 1000}` with reuse made the review build tasks x agents x 1000 reuse keys
    (5,000 tasks: a minute and 5 GB), although no earlier run has a repeat past the home's
    deepest: only those repeats can have a source."""
    from evalfleet.store import reuse as reuse_mod

    suite = write_jsonl_suite(tmp_path / "suite.jsonl", 5)
    agent = {"name": "noop", "version": "1", "kind": "python",
             "args": {"callable": "evalfleet.testing.agents:noop"}}
    first = write_plan(tmp_path / "first.yaml", name="first", suite={"path": str(suite)},
                       runs_per_task=2, agents=[agent])
    assert api.run(first, settings=settings).status == "completed"
    deep = write_plan(tmp_path / "deep.yaml", name="deep", suite={"path": str(suite)},
                      reuse=True, runs={"min": 1, "max": 1000, "target_halfwidth": 0.01},
                      agents=[agent])
    seen: list[int] = []
    real = reuse_mod.find_sources

    def counting(home: Path, paths: list[str], keys: Any, **kw: Any) -> Any:
        seen.append(len(keys))
        return real(home, paths, keys, **kw)

    monkeypatch.setattr(reuse_mod, "find_sources", counting)
    r = api.review_plan(deep, settings=settings)
    assert r["reuse"]["runs"] == {"min": 5, "max": 10}  # repeats 0 and 1 of the 5 tasks
    assert seen and max(seen) <= 5 * 2
