"""Full cost per run: cached-token pricing, infrastructure from every attempt's seconds, priced
vs unpriced agents, the report's cost breakdown, and the cross-eval `costs` view."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from evalfleet import api
from evalfleet.agents.base import Usage
from evalfleet.agents.openai_agent import _cached_tokens
from evalfleet.cli import main
from evalfleet.cost.prices import ModelPrice, PriceTable, load_price_table
from evalfleet.errors import InfraError, SpecError
from evalfleet.execution.attempt import AttemptOutcome
from evalfleet.scoring.base import Score
from evalfleet.settings import Settings
from evalfleet.spec.agent import AgentSpec
from evalfleet.spec.plan import SimulatorSpec
from evalfleet.spec.trajectory import Trajectory
from evalfleet.testing.simulator import create_app

NOOP = {"kind": "python", "args": {"callable": "evalfleet.testing.agents:noop"}}


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["evalfleet", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().out


# --- cached-token pricing -------------------------------------------------------------------

def test_cached_prompt_tokens_are_billed_at_the_cached_rate() -> None:
    table = load_price_table()
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per million tokens. 1M prompt
    # tokens of which 400k cached, and 100k completion tokens:
    # 600k x 2.50 + 400k x 1.25 + 100k x 10 = 1.50 + 0.50 + 1.00 = $3.00
    assert table.cost("gpt-4o", 1_000_000, 100_000, cached=400_000) == pytest.approx(3.00)
    assert table.cost("gpt-4o", 1_000_000, 100_000) == pytest.approx(3.50)  # none cached
    # the batch tier halves every part
    assert table.cost("gpt-4o", 1_000_000, 100_000, "batch", cached=400_000) == \
        pytest.approx(1.50)
    # a model without a cached price bills cached tokens at its input price
    plain = ModelPrice(2.0, 8.0)
    assert plain.cost(1_000_000, 0, cached=500_000) == pytest.approx(2.0)
    # cached tokens are part of tokens_in: never more than it
    assert ModelPrice(2.0, 8.0, cached_input_per_mtok=0.5).cost(100, 0, cached=10**6) == \
        pytest.approx(100 * 0.5 / 1e6)


def test_a_price_file_may_give_a_cached_price(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  mine: {input_per_mtok: 3, cached_input_per_mtok: 0.3, "
                    "output_per_mtok: 15}\n")
    table = load_price_table(str(path))
    # 10k in (8k cached), 1k out: 2k x 3 + 8k x 0.3 + 1k x 15 = 0.006 + 0.0024 + 0.015
    assert table.cost("mine", 10_000, 1_000, cached=8_000) == pytest.approx(0.0234)
    path = tmp_path / "negative.yaml"  # (tables are cached by file name)
    path.write_text("models:\n  mine: {input_per_mtok: 3, cached_input_per_mtok: -1, "
                    "output_per_mtok: 15}\n")
    with pytest.raises(SpecError, match="cached_input_per_mtok"):
        load_price_table(str(path))
    path = tmp_path / "typo.yaml"
    path.write_text("models:\n  mine: {input_per_mtok: 3, cached_per_mtok: 1, "
                    "output_per_mtok: 15}\n")
    with pytest.raises(SpecError, match="cached_per_mtok"):  # a typo is not ignored
        load_price_table(str(path))


def test_agent_price_resolution() -> None:
    table = PriceTable({"m": ModelPrice(1.0, 2.0, cached_input_per_mtok=0.25)},
                       {"standard": 1.0, "batch": 0.5})

    def spec(**kw: Any) -> AgentSpec:
        return AgentSpec.model_validate({"name": "a", "kind": "python", **kw})

    listed = table.for_agent(spec(model="m", tier="batch"))
    assert listed.source == "table" and not listed.unpriced
    # 1M in (half cached), 1M out at half price: (0.5 + 0.125 + 2) / 2
    assert listed.cost(1_000_000, 1_000_000, 500_000) == pytest.approx(1.3125)
    inline = table.for_agent(spec(model="m", price={"input_per_mtok": 4, "output_per_mtok": 8}))
    assert inline.source == "inline"  # the agent's own price wins over the table's
    assert inline.cost(1_000_000, 0, 1_000_000) == pytest.approx(4.0)  # cached at input price
    free = table.for_agent(spec(model="local-llama", price=0))
    assert free.source == "free" and not free.unpriced and free.cost(10**6, 10**6) == 0
    unknown = table.for_agent(spec(model="local-llama"))
    assert unknown.unpriced and unknown.cost(10**6, 10**6) == 0
    assert not table.for_agent(spec()).unpriced  # no model: nothing to price
    assert [a.model for a in table.unpriced([spec(model="x"), spec(model="m"),
                                             spec(model="y", price=0)])] == ["x"]


def test_openai_usage_cached_tokens_are_read() -> None:
    from openai.types import CompletionUsage

    usage = CompletionUsage.model_validate({
        "prompt_tokens": 1200, "completion_tokens": 50, "total_tokens": 1250,
        "prompt_tokens_details": {"cached_tokens": 1024}})
    assert _cached_tokens(usage, 1200) == 1024
    assert _cached_tokens(CompletionUsage(prompt_tokens=5, completion_tokens=1,
                                          total_tokens=6), 5) == 0  # not reported
    assert _cached_tokens(None, 0) == 0


def test_simulator_reports_a_prompt_cache() -> None:
    app = create_app(SimulatorSpec.model_validate({"models": {"m": {"latency_s": 0}}}))
    system = {"role": "system", "content": "You are careful. " * 40}

    async def calls() -> list[Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http, \
                openai.AsyncOpenAI(base_url="http://sim/v1", api_key="unused", max_retries=0,
                                   http_client=http) as client:
            first = [system, {"role": "user", "content": "task one " * 30}]
            a = await client.chat.completions.create(model="m", messages=first)
            b = await client.chat.completions.create(model="m", messages=first)
            turn2 = [*first, {"role": "assistant", "content": "thinking"},
                     {"role": "user", "content": "go on"}]
            c = await client.chat.completions.create(model="m", messages=turn2)
            other = [system, {"role": "user", "content": "task two " * 30}]
            d = await client.chat.completions.create(model="m", messages=other)
            return [a, b, c, d]

    a, b, c, d = asyncio.run(calls())

    def cached(r: Any) -> int:
        return int(r.usage.prompt_tokens_details.cached_tokens)

    assert cached(a) == 0  # nothing sent before
    first_chars = len(system["content"]) + len("task one " * 30)
    # the same prompt again: all of it (whole tokens: characters / 4 rounded down)
    assert cached(b) == first_chars // 4 and b.usage.prompt_tokens - 1 <= cached(b)
    # the next turn: the earlier prompt is cached, the new messages are not
    assert cached(c) == first_chars // 4 < c.usage.prompt_tokens
    assert cached(d) == len(system["content"]) // 4  # the shared system prompt only


def _sim_plan(tmp_path: Path, **fields: Any) -> Path:
    plan = {
        "name": "cached", "suite": {"builtin": "humaneval", "limit": 3}, "runs_per_task": 2,
        "agents": [{"name": "agent", "kind": "openai", "model": "sim-large",
                    "args": {"base_url": "{simulator}", "api_key_env": None, "tools": False}}],
        "execution": {"max_in_flight": 1},
        "simulator": {"models": {"sim-large": {"skill": 0.8, "latency_s": 0.0}}, "seed": 1},
        **fields,
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_a_run_bills_cached_tokens_at_the_cached_rate(tmp_path: Path,
                                                      settings: Settings) -> None:
    summary = api.run(_sim_plan(tmp_path), settings=settings)
    assert summary.status == "completed"
    # the committed rows (files on disk may also hold superseded copies, until compaction's
    # grace period removes them)
    _, rows = api.query("SELECT tokens_in, tokens_cached, tokens_out, cost_usd, attempts "
                        "FROM runs", settings=settings)
    assert len(rows) == 6
    # repeats (and the shared system prompt) come from the simulated cache
    assert sum(1 for r in rows if r[1] > 0) >= 3 and all(r[1] <= r[0] for r in rows)
    for tin, cached, tout, cost, _ in rows:  # sim-large: $2.50 in, $1.25 cached, $10 out
        assert cost == pytest.approx(((tin - cached) * 2.5 + cached * 1.25 + tout * 10) / 1e6)
    rep = api.report(summary.eval_id, settings=settings)
    tok = rep["agents"][0]["tokens"]
    assert tok["cached"] == sum(r[1] for r in rows) and tok["in"] == sum(r[0] for r in rows)


# --- infrastructure cost ---------------------------------------------------------------------

def _timed_attempts(seconds: list[float], model_usd: float) -> Callable[..., Any]:
    """A run_attempt whose attempt k takes ``seconds[k-1]``; every attempt but the last of that
    list fails as an infrastructure error; each bills ``model_usd``."""

    async def fake(*, attempt: int, **_: Any) -> AttemptOutcome:
        last = attempt >= len(seconds)
        return AttemptOutcome(
            score=Score(1.0, True) if last else None,
            error=None if last else InfraError("sandbox lost"),
            usage=Usage(tokens_in=10, tokens_out=5, cost_usd=model_usd, model_calls=1),
            trajectory=Trajectory(), sandbox="local", started_at=time.time(),
            duration_s=seconds[min(attempt, len(seconds)) - 1])

    return fake


def test_infra_cost_counts_every_attempt(make_plan: Callable[..., Path], settings: Settings,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 attempts of 100, 200 and 60 sandbox seconds at $36 an hour: 360 s x 36 / 3600 = $3.60
    monkeypatch.setattr("evalfleet.execution.executor.run_attempt",
                        _timed_attempts([100.0, 200.0, 60.0], model_usd=0.25))
    plan = make_plan(n_tasks=4, agents=[{"name": "a", "version": "1", **NOOP}],
                     costs={"infra_usd_per_hour": 36.0},
                     execution={"max_attempts": 5, "backoff_base_s": 0.0})
    summary = api.run(plan, settings=settings)
    assert summary.status == "completed" and summary.done == 4
    _, rows = api.query("SELECT attempts, cost_usd, infra_cost_usd FROM runs",
                        settings=settings)
    rows = [tuple(r) for r in rows]
    assert rows and all(r == (3, pytest.approx(0.75), pytest.approx(3.60)) for r in rows)
    # the journal (status, budgets) holds the total: model + infra
    assert api.status(summary.eval_id, settings=settings)["cost_usd"] == \
        pytest.approx(4 * (0.75 + 3.60))
    cost = api.report(summary.eval_id, settings=settings)["agents"][0]["cost"]
    assert cost["infra_usd"] == pytest.approx(4 * 3.60)
    assert cost["total_usd"] == pytest.approx(4 * 4.35)


def test_spot_capacity_uses_the_spot_rate(make_plan: Callable[..., Path], settings: Settings,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("evalfleet.execution.executor.run_attempt",
                        _timed_attempts([1800.0], model_usd=0.0))
    plan = make_plan(n_tasks=2, costs={"infra_usd_per_hour": 4.0, "spot_usd_per_hour": 1.0,
                                       "capacity": "spot"})
    summary = api.run(plan, settings=settings)
    cost = api.report(summary.eval_id, settings=settings)["cost"]
    assert cost["infra_usd"] == pytest.approx(2 * 0.5)  # half an hour each at $1
    assert cost["rates"]["infra_usd_per_hour"] == 1.0


# --- priced, free and unpriced agents --------------------------------------------------------

def _priced_plan(make_plan: Callable[..., Path], **fields: Any) -> Path:
    return make_plan(n_tasks=6, agents=[
        {"name": "local", "version": "1", "model": "my-local-llm", "price": 0, **NOOP},
        {"name": "mystery", "version": "1", "model": "my-local-llm", **NOOP},
    ], **fields)


def test_unpriced_agent_is_warned_about_and_free_one_is_not(
        make_plan: Callable[..., Path], settings: Settings,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _priced_plan(make_plan)
    warnings = api.check_plan(plan, settings=settings)["warnings"]
    unpriced = [w for w in warnings if "no price" in w]
    assert len(unpriced) == 1 and "mystery@1" in unpriced[0]
    assert "price: 0" in unpriced[0] and "EVALFLEET_PRICES" in unpriced[0]
    summary = api.run(plan, settings=settings)
    assert [w for w in summary.warnings if "no price" in w] == unpriced  # said at the start
    rep = api.report(summary.eval_id, settings=settings)
    local, mystery = rep["agents"]
    assert local["cost"]["unpriced"] is False and local["cost"]["price_source"] == "free"
    assert mystery["cost"]["unpriced"] is True and rep["cost"]["unpriced"] is True
    code, out = _cli(monkeypatch, capsys, "report", summary.eval_id, "--home",
                     str(settings.home))
    assert code == 0
    assert "UNPRICED" in out and "mystery@1" in out.split("UNPRICED")[0].splitlines()[-1]
    code, md = _cli(monkeypatch, capsys, "report", summary.eval_id, "--home",
                    str(settings.home), "--markdown", "-")
    assert "UNPRICED" in md and md.count("unpriced") >= 2
    # a price file for the model makes it priced: no warning
    prices = settings.home.parent / "prices.yaml"
    prices.write_text("models:\n  my-local-llm: {input_per_mtok: 1, output_per_mtok: 2}\n")
    priced = Settings(home=settings.home, prices=str(prices))
    assert not [w for w in api.check_plan(plan, settings=priced)["warnings"] if "no price" in w]
    assert not api.report(summary.eval_id, settings=priced)["cost"]["unpriced"]


# --- the breakdown adds up -------------------------------------------------------------------

def test_breakdowns_add_up_to_the_totals(make_plan: Callable[..., Path], settings: Settings,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("evalfleet.execution.executor.run_attempt",
                        _timed_attempts([30.0, 90.0], model_usd=0.125))
    plan = make_plan(n_tasks=9, runs_per_task=2, agents=[
        {"name": "std", "version": "1", "model": "gpt-4o", **NOOP},
        {"name": "cheap", "version": "1", "model": "gpt-4o", "tier": "batch", **NOOP},
    ], costs={"infra_usd_per_hour": 12.0, "review_usd_per_run": 2.0, "review_fraction": 0.25},
        sample={"tier": "weekly", "fraction": 1.0})
    summary = api.run(plan, settings=settings)
    assert summary.status == "completed"
    rep = api.report(summary.eval_id, settings=settings)
    cost = rep["cost"]
    n = 9 * 2 * 2
    assert cost["runs"] == n and cost["eval_type"] == "weekly" == rep["eval_type"]
    assert cost["model_usd"] == pytest.approx(n * 0.25)  # two attempts of $0.125
    assert cost["infra_usd"] == pytest.approx(n * 120 * 12 / 3600)
    assert cost["total_usd"] == pytest.approx(cost["model_usd"] + cost["infra_usd"])
    # expected review: 25% of the scored runs at $2
    assert cost["review_usd_expected"] == pytest.approx(0.25 * n * 2.0)
    money = ("model_usd", "infra_usd", "total_usd", "review_usd_expected")
    for key in ("by_tier", "by_category"):
        parts = cost[key]
        assert len(parts) >= 2, key
        for m in (*money, "runs", "tokens_in", "tokens_out"):
            assert sum(p[m] for p in parts) == pytest.approx(cost[m]), (key, m)
    assert {t["model_tier"] for t in cost["by_tier"]} == {"standard", "batch"}
    for a in rep["agents"]:
        c = a["cost"]
        assert c["eval_type"] == "weekly"
        for m in money:
            assert sum(p[m] for p in c["by_category"]) == pytest.approx(c[m]), m
        assert c["mean_per_run"] == pytest.approx(c["total_usd"] / c["runs"])
    for m in money:
        assert sum(a["cost"][m] for a in rep["agents"]) == pytest.approx(cost[m])


# --- the cross-eval view ---------------------------------------------------------------------

def test_costs_command_sums_every_eval(make_plan: Callable[..., Path], settings: Settings,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    home = str(settings.home)
    code, _ = _cli(monkeypatch, capsys, "costs", "--home", home, "--json")
    assert code != 0 and not settings.home.exists()  # read-only: creates no home
    monkeypatch.setattr("evalfleet.execution.executor.run_attempt",
                        _timed_attempts([60.0], model_usd=0.5))
    full = api.run(make_plan(n_tasks=4, name="full", costs={"infra_usd_per_hour": 6.0}),
                   settings=settings)
    smoke = api.run(make_plan(n_tasks=6, name="smoke", sample={"tier": "smoke",
                                                               "fraction": 1.0}),
                    settings=settings)
    code, out = _cli(monkeypatch, capsys, "costs", "--home", home, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["evals"] == 2
    types = {r["eval_type"]: r for r in data["by_eval_type"]}
    assert set(types) == {"full", "smoke"}
    assert types["full"]["model_usd"] == pytest.approx(4 * 0.5)
    assert types["full"]["infra_usd"] == pytest.approx(4 * 60 * 6 / 3600)
    assert types["smoke"]["infra_usd"] == 0 and types["smoke"]["runs"] == 6
    for key in ("by_eval_type", "by_model_tier", "by_category"):
        for m in ("model_usd", "infra_usd", "total_usd", "runs"):
            assert sum(r[m] for r in data[key]) == pytest.approx(data["total"][m]), (key, m)
    reports = [api.report(e, settings=settings)["cost"]["total_usd"]
               for e in (full.eval_id, smoke.eval_id)]
    assert data["total"]["total_usd"] == pytest.approx(sum(reports))
    # --since keeps only recent evals: make the full eval 10 days old
    with sqlite3.connect(settings.home / "journal.db") as db:
        db.execute("UPDATE evals SET created_at = created_at - 864000 WHERE eval_id = ?",
                   (full.eval_id,))
    code, out = _cli(monkeypatch, capsys, "costs", "--home", home, "--since", "5", "--json")
    recent = json.loads(out)
    assert code == 0 and recent["evals"] == 1
    assert [r["eval_type"] for r in recent["by_eval_type"]] == ["smoke"]
    code, out = _cli(monkeypatch, capsys, "costs", "--home", home)
    assert code == 0 and "by eval type" in out and "smoke" in out
    assert _cli(monkeypatch, capsys, "costs", "--home", home, "--since", "0")[0] == 2
