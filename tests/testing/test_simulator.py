"""The SIMULATED model server, through the real openai client, over sockets and over ASGI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from evalfleet.spec.humaneval import difficulty_of, read_problems
from evalfleet.spec.loaders import builtin_suite_dir, load_suite
from evalfleet.spec.plan import SimulatorSpec
from evalfleet.testing._sim_tasks import success_probability, task_offset
from evalfleet.testing.simulator import SimulatorProcess, create_app

TOOLS = [
    {"type": "function", "function": {
        "name": "run_shell", "parameters": {"type": "object",
                                            "properties": {"command": {"type": "string"}}}}},
    {"type": "function", "function": {
        "name": "write_file", "parameters": {"type": "object", "properties": {
            "path": {"type": "string"}, "content": {"type": "string"}}}}},
    {"type": "function", "function": {
        "name": "read_file", "parameters": {"type": "object",
                                            "properties": {"path": {"type": "string"}}}}},
]
PROBLEMS = read_problems()
EASY = [p for p in PROBLEMS if difficulty_of(p) == 1][:8]
REPO = load_suite(builtin_suite_dir("repo-tasks"))


def spec(**faults: float) -> SimulatorSpec:
    return SimulatorSpec.model_validate({
        "models": {"strong": {"skill": 0.98, "latency_s": 0.0},
                   "weak": {"skill": 0.02, "latency_s": 0.0},
                   "even": {"skill": 0.5, "latency_s": 0.0},
                   "slow": {"skill": 0.7, "latency_s": 0.2}},
        "faults": faults, "seed": 7})


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    log = tmp_path_factory.mktemp("sim") / "requests.jsonl"
    with SimulatorProcess(spec(), log_path=log) as server:
        yield server


@pytest.fixture(scope="module")
def client(sim: SimulatorProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.base_url, api_key="unused", max_retries=0,
                       timeout=30) as c:
        yield c


def fenced_code(text: str) -> str:
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match, text
    return match.group(1)


def passes_humaneval(problem: dict[str, Any], code: str) -> bool:
    program = code + "\n\n" + problem["test"] + f"\n\ncheck({problem['entry_point']})\n"
    try:
        proc = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def ask(client: openai.OpenAI, model: str, content: str, user: str | None = None,
        **kwargs: Any) -> Any:
    extra = {"user": user} if user is not None else {}
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], **extra, **kwargs)


def test_models_are_listed_and_labelled_simulated(sim: SimulatorProcess,
                                                  client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"strong", "weak", "even", "slow"}
    assert all(m.owned_by == "evalfleet-simulator (simulated)" for m in models.values())
    assert client.models.retrieve("weak").id == "weak"
    health = httpx.get(sim.base_url.removesuffix("/v1") + "/healthz")
    assert health.json() == {"status": "ok", "simulated": True}
    assert health.headers["x-evalfleet-simulated"] == "true"


def test_unknown_model_is_404_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        ask(client, "gpt-imaginary", "hello")
    assert caught.value.code == "model_not_found"
    assert caught.value.response.headers["x-evalfleet-simulated"] == "true"


def test_humaneval_prompt_gets_the_function_in_a_fence(client: openai.OpenAI) -> None:
    problem = PROBLEMS[2]
    raw = client.chat.completions.with_raw_response.create(
        model="strong", user="fence:0",
        messages=[{"role": "system", "content": "Complete the function."},
                  {"role": "user", "content": "Please complete:\n\n" + problem["prompt"]}])
    assert raw.headers["x-evalfleet-simulated"] == "true"
    resp = raw.parse()
    assert resp.system_fingerprint == "evalfleet-simulated"
    choice = resp.choices[0]
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    code = fenced_code(choice.message.content or "")
    assert f"def {problem['entry_point']}(" in code


def _outcomes(client: openai.OpenAI, model: str) -> list[tuple[bool, bool]]:
    """(answer is the canonical solution, answer passes the real tests) for EASY problems."""
    codes = [fenced_code(ask(client, model, p["prompt"], user=f"{model}-run:{i}")
                         .choices[0].message.content or "") for i, p in enumerate(EASY)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        passed = list(pool.map(passes_humaneval, EASY, codes))
    canonical = [code.strip() == (p["prompt"] + p["canonical_solution"]).strip()
                 for p, code in zip(EASY, codes, strict=True)]
    return list(zip(canonical, passed, strict=True))


def test_skilled_model_mostly_answers_the_canonical_solution(client: openai.OpenAI) -> None:
    outcomes = _outcomes(client, "strong")
    assert sum(c for c, _ in outcomes) >= 7
    assert all(passed for c, passed in outcomes if c)


def test_unskilled_model_mostly_fails_the_real_tests(client: openai.OpenAI) -> None:
    outcomes = _outcomes(client, "weak")
    assert sum(not passed for _, passed in outcomes) >= 6
    assert sum(c for c, _ in outcomes) <= 2


def test_the_user_field_fixes_the_outcome_of_a_run(client: openai.OpenAI) -> None:
    prompt = PROBLEMS[10]["prompt"]
    answers = {ask(client, "even", prompt, user="run-a:1").choices[0].message.content
               for _ in range(3)}
    assert len(answers) == 1
    others = {ask(client, "even", prompt, user=f"run-{i}:1").choices[0].message.content
              for i in range(12)}
    assert len(others) >= 2  # success and failure both happen at skill 0.5


def test_success_probability_follows_the_model() -> None:
    assert success_probability(0.98, 1, "x") == 0.98
    assert success_probability(0.02, 5, "x") == 0.02
    p = [success_probability(0.6, d, "HumanEval/3") for d in range(1, 6)]
    assert p == sorted(p, reverse=True)
    z = math.log(0.6 / 0.4) + 0.9 * (3 - 2) + task_offset("HumanEval/3")
    assert success_probability(0.6, 2, "HumanEval/3") == pytest.approx(1 / (1 + math.exp(-z)))
    offsets = [task_offset(f"t{i}") for i in range(4000)]
    assert task_offset("t1") == offsets[1]
    mean = sum(offsets) / len(offsets)
    sd = math.sqrt(sum((o - mean) ** 2 for o in offsets) / len(offsets))
    assert abs(mean) < 0.05 and abs(sd - 0.8) < 0.05


def _repo_solution(task_id: str) -> dict[str, str]:
    root = builtin_suite_dir("repo-tasks") / "tasks" / task_id / "solution"
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


def _tool_turn(client: openai.OpenAI, messages: list[dict[str, Any]], user: str) -> Any:
    resp = client.chat.completions.create(model="strong", messages=messages,  # type: ignore[arg-type]
                                          tools=TOOLS, user=user)  # type: ignore[arg-type]
    message = resp.choices[0].message
    calls = [{"id": c.id, "type": "function",
              "function": {"name": c.function.name, "arguments": c.function.arguments}}
             for c in message.tool_calls or []]
    messages.append({"role": "assistant", "content": message.content, "tool_calls": calls}
                    if calls else {"role": "assistant", "content": message.content})
    for c in calls:
        messages.append({"role": "tool", "tool_call_id": c["id"], "content": '{"ok": true}'})
    return resp


def test_repo_task_conversation_protocol(client: openai.OpenAI, tmp_path: Path) -> None:
    task = REPO.by_id["calc-function-calls"]
    solution = _repo_solution(task.id)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a careful software engineer."},
        {"role": "user", "content": task.input + "\n\nFiles: " + ", ".join(sorted(task.files))}]
    first = _tool_turn(client, messages, "repo-run:1")
    assert first.choices[0].finish_reason == "tool_calls"
    calls = [(c.function.name, json.loads(c.function.arguments))
             for c in first.choices[0].message.tool_calls]
    assert calls == [("run_shell", {"command": "ls -R"})] + [
        ("read_file", {"path": p}) for p in sorted(solution)]

    second = _tool_turn(client, messages, "repo-run:1")
    assert second.choices[0].finish_reason == "tool_calls"
    writes = [json.loads(c.function.arguments) for c in second.choices[0].message.tool_calls
              if c.function.name == "write_file"]
    assert [w["path"] for w in writes] == sorted(solution)
    assert {w["path"]: w["content"] for w in writes} == solution

    third = _tool_turn(client, messages, "repo-run:1")
    assert third.choices[0].finish_reason == "stop"
    assert not third.choices[0].message.tool_calls
    assert "calc/parser.py" in (third.choices[0].message.content or "")


def test_repo_task_failures_write_broken_files(client: openai.OpenAI) -> None:
    task = REPO.by_id["lrucache-memoize-none"]
    solution = _repo_solution(task.id)
    written = []
    for i in range(6):
        messages: list[dict[str, Any]] = [{"role": "user", "content": task.input}]
        _tool_turn(client, messages, f"weak-repo:{i}")
        resp = client.chat.completions.create(model="weak", messages=messages,  # type: ignore[arg-type]
                                              tools=TOOLS, user=f"weak-repo:{i}")  # type: ignore[arg-type]
        calls = resp.choices[0].message.tool_calls or []
        written.append({json.loads(c.function.arguments)["path"]:
                        json.loads(c.function.arguments)["content"] for c in calls})
    assert all(set(w) == set(solution) for w in written)
    assert sum(w != solution for w in written) >= 4


def test_repo_task_without_tools_answers_with_fenced_files(client: openai.OpenAI) -> None:
    task = REPO.by_id["ledger-format-money-alias"]
    content = ask(client, "strong", task.input, user="no-tools:1").choices[0].message.content
    assert content is not None
    for path, text in _repo_solution(task.id).items():
        assert f"### {path}\n\n```python\n{text.rstrip()}\n```" in content


def test_usage_counts_characters(client: openai.OpenAI) -> None:
    prompt = PROBLEMS[5]["prompt"]
    system = "You write Python."
    resp = client.chat.completions.create(
        model="strong", user="usage:1",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}])
    usage = resp.usage
    assert usage is not None
    assert usage.prompt_tokens == math.ceil((len(system) + len(prompt)) / 4)
    assert usage.completion_tokens == math.ceil(len(resp.choices[0].message.content or "") / 4)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_unrecognised_prompt_gets_a_generic_answer(client: openai.OpenAI) -> None:
    resp = ask(client, "strong", "What is the capital of France?", user="u:1", tools=TOOLS)
    message = resp.choices[0].message
    assert not message.tool_calls and "NotImplementedError" in (message.content or "")
    assert resp.usage is not None and resp.usage.completion_tokens >= 1


def test_request_log_has_one_line_per_request(sim: SimulatorProcess,
                                              client: openai.OpenAI) -> None:
    assert sim.log_path is not None
    before = len(sim.log_path.read_text().splitlines()) if sim.log_path.exists() else 0
    ask(client, "strong", PROBLEMS[0]["prompt"], user="log:1")
    ask(client, "weak", "unrecognised", user="log:2")
    with pytest.raises(openai.NotFoundError):
        ask(client, "nobody", "x")
    entries = [json.loads(line) for line in sim.log_path.read_text().splitlines()[before:]]
    assert [(e["model"], e["outcome"], e["task"], e["user"]) for e in entries] == [
        ("strong", "ok", "HumanEval/0", "log:1"), ("weak", "ok", None, "log:2"),
        ("nobody", "404", None, None)]
    assert all(abs(e["t"] - time.time()) < 60 for e in entries)


# In-process (ASGI) tests: faults whose response is a normal HTTP response, and latency.


async def _asgi_call(app: Any, n: int = 1, model: str = "strong") -> list[Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http, \
            openai.AsyncOpenAI(base_url="http://sim/v1", api_key="unused", max_retries=0,
                               http_client=http) as client:
        async def one(i: int) -> Any:
            try:
                return await client.chat.completions.with_raw_response.create(
                    model=model, user=f"asgi:{i}",
                    messages=[{"role": "user", "content": PROBLEMS[i % 20]["prompt"]}])
            except openai.APIStatusError as exc:
                return exc

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def test_rate_limit_fault_returns_429_with_retry_after() -> None:
    [exc] = asyncio.run(_asgi_call(create_app(spec(rate_limit=1.0, retry_after_s=2.5))))
    assert isinstance(exc, openai.RateLimitError)
    assert exc.response.headers["retry-after"] == "2.5"
    assert exc.response.headers["x-evalfleet-simulated"] == "true"
    assert exc.code == "rate_limit_exceeded"


def test_server_error_fault_returns_500() -> None:
    [exc] = asyncio.run(_asgi_call(create_app(spec(server_error=1.0))))
    assert isinstance(exc, openai.InternalServerError) and exc.status_code == 500


def test_drop_over_asgi_is_a_connection_error() -> None:
    with pytest.raises(ConnectionError):
        asyncio.run(_asgi_call(create_app(spec(drop=1.0))))


def test_fault_shares_and_the_log_over_asgi(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    results = asyncio.run(_asgi_call(create_app(spec(rate_limit=0.5), log_path=log), n=40))
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(entries) == 40
    limited = sum(isinstance(r, openai.RateLimitError) for r in results)
    assert limited == sum(e["outcome"] == "429" for e in entries)
    assert 8 <= limited <= 32


def test_latency_is_simulated_and_requests_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each answer waits a lognormal delay around the model's latency_s, and the waits of
    concurrent requests overlap. The simulator's sleeps are intercepted (no clock is read): a
    sleep of the simulated latency is held until all eight requests are waiting at once, which
    cannot happen if the server answers one request after another."""
    real_sleep = asyncio.sleep
    delays: list[float] = []
    state = {"waiting": 0, "most": 0}
    all_waiting: asyncio.Event | None = None

    async def fake_sleep(delay: float, result: Any = None) -> Any:
        nonlocal all_waiting
        if delay < 0.02:  # the event loop's and the HTTP stack's own short sleeps
            return await real_sleep(delay, result)
        all_waiting = all_waiting or asyncio.Event()
        delays.append(delay)
        state["waiting"] += 1
        state["most"] = max(state["most"], state["waiting"])
        if state["waiting"] == 8:
            all_waiting.set()
        with contextlib.suppress(TimeoutError):  # a guard against a hang, not a measurement
            await asyncio.wait_for(all_waiting.wait(), 10)
        state["waiting"] -= 1
        return result

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    results = asyncio.run(_asgi_call(create_app(spec()), n=8, model="slow"))
    assert all(r.http_response.status_code == 200 for r in results)
    assert len(delays) == 8 and state["most"] == 8
    # Lognormal with mean 0.2 and sigma 0.5: log-delays centre on log(0.2) - 0.125.
    logs = [math.log(d) for d in delays]
    assert abs(sum(logs) / 8 - (math.log(0.2) - 0.125)) < 4 * 0.5 / math.sqrt(8)
    assert len(set(delays)) == 8  # drawn per request, not one fixed wait


# Faults that only a real socket shows.


def test_dropped_connection_is_a_protocol_error() -> None:
    with SimulatorProcess(spec(drop=1.0)) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(server.base_url + "/chat/completions", timeout=5,
                       json={"model": "strong", "messages": [{"role": "user", "content": "x"}]})
        with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as c, \
                pytest.raises(openai.APIConnectionError):
            ask(c, "strong", "x")


def test_hang_is_ended_by_the_client_timeout() -> None:
    with SimulatorProcess(spec(hang=1.0)) as server, \
            openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0,
                          timeout=1.0) as c:
        start = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            ask(c, "strong", "x")
        # At least the client's timeout passed; far less than the simulated hour-long hang
        # (the bound is loose so that a loaded machine cannot fail it).
        assert 0.9 < time.monotonic() - start < 120


def test_command_line_writes_the_port_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    config = tmp_path / "sim.json"
    config.write_text(spec().model_dump_json())
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalfleet.testing.simulator", "--config", f"@{config}",
         "--port", "0", "--port-file", str(port_file), "--log", str(tmp_path / "log.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        port = int(port_file.read_text())
        resp = httpx.get(f"http://127.0.0.1:{port}/v1/models")
        assert resp.status_code == 200
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "SIMULATED" in err and f":{port}/v1" in err


def test_bad_config_is_reported() -> None:
    proc = subprocess.run([sys.executable, "-m", "evalfleet.testing.simulator", "--config",
                           '{"models": {"m": {"skill": 7}}}'], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2 and "bad --config" in proc.stderr


def test_process_reports_a_start_failure() -> None:
    sim = SimulatorProcess(spec(), host="256.0.0.1")
    with pytest.raises(RuntimeError, match="did not start: simulator: cannot listen"):
        sim.start()
    with pytest.raises(RuntimeError):
        _ = sim.base_url
