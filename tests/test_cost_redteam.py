"""Red-team tests of cost control: inputs a hostile server or a busy team would give."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest

from evalfleet.agents.base import AgentContext
from evalfleet.agents.openai_agent import OpenAIAgent, OpenAIAgentArgs
from evalfleet.cost.prices import ModelPrice, PriceTable
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
