"""The ``openai`` adapter: any OpenAI-compatible chat endpoint with a small tool loop.

The model may call three tools that act inside the run's sandbox: ``run_shell`` (a shell
command), ``write_file`` and ``read_file``. When it answers without a tool call, that text is the
answer. Every model call records its token usage and timing in the trajectory.

Credentials are checked when the agent is built (plan validation): a key variable that is not
set is a :class:`~evalfleet.errors.SpecError` naming it, never a request sent with a dummy key.
Answers that no retry can fix (401, 403, an unknown model) raise
:class:`~evalfleet.errors.ConfigError`, which stops the eval instead of scoring the agent 0.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import openai
from pydantic import BaseModel, ConfigDict, Field

from evalfleet.agents.base import AgentContext, AgentOutput
from evalfleet.errors import AgentError, ConfigError, InfraError, RateLimitedError, SpecError

TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "run_shell", "description": "Run a shell command in the task's working directory.",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                       "required": ["command"]}}},
    {"type": "function", "function": {
        "name": "write_file", "description": "Write a text file (path relative to the workdir).",
        "parameters": {"type": "object", "properties": {
            "path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"]}}},
    {"type": "function", "function": {
        "name": "read_file", "description": "Read a text file (path relative to the workdir).",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                       "required": ["path"]}}},
]

DEFAULT_SYSTEM = (
    "You are a careful software engineer. You work in a sandboxed directory. Use the tools to "
    "inspect and change files; when you are done, reply with your final answer and no tool call."
)


class OpenAIAgentArgs(BaseModel):
    """Arguments of the openai adapter."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="Endpoint, e.g. http://localhost:8000/v1 (vLLM, Ollama).")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY",
        description="Environment variable holding the key; it must be set when the plan is "
                    "checked. null: the endpoint needs no key.")
    temperature: float = Field(1.0, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int | None = Field(None, ge=1, le=1_000_000, description="Per-call output cap.")
    system_prompt: str = Field(DEFAULT_SYSTEM, description="System message.")
    tools: bool = Field(True, description="Offer the sandbox tools; false: single-turn answer.")
    request_timeout_s: float = Field(60.0, gt=0, le=3600, description="Per-call timeout.")


SIMULATOR_PLACEHOLDER = "{simulator}"
"""A base_url containing it points at the plan's simulated model, which needs no key."""


def _unknown_model(exc: openai.APIStatusError) -> bool:
    """A 404 that says the model does not exist (OpenAI's ``model_not_found``)."""
    if exc.status_code != 404:
        return False
    code = getattr(exc, "code", None)
    if code == "model_not_found":
        return True
    text = str(exc).lower()
    return "model" in text and ("not found" in text or "does not exist" in text)


def _tokens(value: Any) -> int:
    """A token count the server reported: a non-negative int, else 0. A hostile or broken
    server's negative count would give the call a negative cost, paying money back into the
    budget."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return 0
    return value


def _cached_tokens(usage: Any, prompt_tokens: int) -> int:
    """``usage.prompt_tokens_details.cached_tokens`` (part of the prompt tokens), 0 when the
    server does not report it; never more than the prompt."""
    details = getattr(usage, "prompt_tokens_details", None) if usage is not None else None
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    if not isinstance(cached, int) or isinstance(cached, bool) or cached < 0:
        return 0
    return min(cached, prompt_tokens)


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class OpenAIAgent:
    """A tool-using chat agent for any OpenAI-compatible server."""

    def __init__(self, args: OpenAIAgentArgs, model: str | None) -> None:
        if not model:
            raise SpecError("the openai adapter needs 'model'", field="model")
        var = args.api_key_env
        # the plan's own simulator takes no key; any other endpoint gets the named one or none
        if var and SIMULATOR_PLACEHOLDER not in args.base_url and not os.environ.get(var):
            raise SpecError(f"the API key variable {var} is not set (export it, or set "
                            "args.api_key_env: null for an endpoint that needs no key)",
                            field="args.api_key_env")
        self.args = args
        self.model = model
        self._clients: dict[str, openai.AsyncOpenAI] = {}

    def _client(self, base_url: str) -> openai.AsyncOpenAI:
        client = self._clients.get(base_url)
        if client is None:
            var = self.args.api_key_env
            key = os.environ.get(var, "") if var else ""
            if var and not key and SIMULATOR_PLACEHOLDER not in self.args.base_url:
                raise ConfigError(f"the API key variable {var} is not set")
            client = openai.AsyncOpenAI(
                base_url=base_url, api_key=key or "unused", max_retries=0,
                timeout=self.args.request_timeout_s,
            )
            self._clients[base_url] = client
        return client

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def _call(self, ctx: AgentContext, base_url: str,
                    messages: list[dict[str, Any]]) -> Any:
        key = ctx.spec.rate_limit_key
        estimate = sum(len(str(m.get("content") or "")) for m in messages) // 4 + 256
        await ctx.gate.acquire(key, estimate)
        t0 = time.time()
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages,
                                  "temperature": self.args.temperature,
                                  "user": f"{ctx.run_id}:{ctx.attempt}"}
        if self.args.max_tokens:
            kwargs["max_tokens"] = self.args.max_tokens
        if self.args.tools:
            kwargs["tools"] = TOOLS
        try:
            resp = await self._client(base_url).chat.completions.create(**kwargs)
        except openai.RateLimitError as exc:
            after = _retry_after(exc)
            ctx.gate.pause(key, after if after is not None else 1.0)
            ctx.trajectory.add("model_error", status=429, retry_after=after,
                               duration_s=round(time.time() - t0, 4))
            raise RateLimitedError(f"model API rate-limited (429) at {base_url}", after) from None
        except openai.APIStatusError as exc:
            ctx.trajectory.add("model_error", status=exc.status_code,
                               duration_s=round(time.time() - t0, 4))
            if exc.status_code >= 500 or exc.status_code in (408, 409):
                raise InfraError(f"model API error {exc.status_code} at {base_url}") from None
            if exc.status_code in (401, 403):
                raise ConfigError(f"model API at {base_url} refused the credentials "
                                  f"({exc.status_code}"
                                  + (f", key from {self.args.api_key_env}"
                                     if self.args.api_key_env else ", no key configured")
                                  + ")") from None
            if _unknown_model(exc):
                raise ConfigError(f"model {self.model!r} is unknown at {base_url} "
                                  f"({exc.status_code})") from None
            if exc.status_code == 404:  # a wrong base_url: no request of this eval can succeed
                raise ConfigError(f"no chat completions endpoint at {base_url} (404); check "
                                  "args.base_url") from None
            raise AgentError(f"model API refused the request ({exc.status_code}): "
                             f"{str(exc)[:300]}") from None
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            ctx.trajectory.add("model_error", error=type(exc).__name__,
                               duration_s=round(time.time() - t0, 4))
            raise InfraError(f"model API {type(exc).__name__} at {base_url}") from None
        usage = resp.usage
        tin = _tokens(getattr(usage, "prompt_tokens", 0))
        tout = _tokens(getattr(usage, "completion_tokens", 0))
        tcached = _cached_tokens(usage, tin)
        ctx.gate.settle(key, estimate, tin + tout)
        ctx.usage.tokens_in += tin
        ctx.usage.tokens_cached += tcached
        ctx.usage.tokens_out += tout
        ctx.usage.model_calls += 1
        ctx.usage.cost_usd += ctx.prices.for_agent(ctx.spec).cost(tin, tout, tcached)
        msg = resp.choices[0].message if resp.choices else None
        ctx.trajectory.add(
            "model_call", model=self.model, tokens_in=tin, tokens_cached=tcached,
            tokens_out=tout,
            duration_s=round(time.time() - t0, 4),
            content=msg.content if msg else None,
            tool_calls=[{"name": c.function.name, "arguments": c.function.arguments}
                        for c in (msg.tool_calls or []) if c.type == "function"] if msg else [],
        )
        return msg

    async def _tool(self, ctx: AgentContext, name: str, raw_args: str) -> str:
        try:
            args = json.loads(raw_args or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be an object")
        except ValueError as exc:
            return json.dumps({"error": f"invalid arguments: {exc}"})
        sandbox = await ctx.sandbox.get()
        if name == "run_shell":
            res = await sandbox.exec(["/bin/sh", "-c", str(args.get("command", ""))],
                                     timeout_s=min(60.0, ctx.task.limits.timeout_s))
            out = {"exit_code": res.exit_code, "stdout": res.stdout[-8000:],
                   "stderr": res.stderr[-4000:], "timed_out": res.timed_out}
        elif name == "write_file":
            try:
                await sandbox.write_files({str(args.get("path", "")): str(args.get("content", ""))})
                out = {"ok": True}
            except (SpecError, InfraError, ValueError) as exc:
                out = {"error": str(exc)}
        elif name == "read_file":
            try:
                data = await sandbox.read_file(str(args.get("path", "")), 100_000)
                out = {"content": data.decode("utf-8", errors="replace")}
            except (SpecError, InfraError, ValueError, OSError) as exc:
                out = {"error": str(exc)}
        else:
            out = {"error": f"unknown tool {name}"}
        ctx.trajectory.add("tool_call", name=name, arguments=args, result=out)
        return json.dumps(out)

    async def run(self, ctx: AgentContext) -> AgentOutput:
        base_url = self.args.base_url.format(**ctx.variables) if ctx.variables \
            else self.args.base_url
        user = ctx.task.input
        if self.args.tools and ctx.task.files:
            user += "\n\nFiles in your working directory: " + ", ".join(sorted(ctx.task.files))
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": self.args.system_prompt},
            {"role": "user", "content": user},
        ]
        for _ in range(ctx.task.limits.max_steps):
            msg = await self._call(ctx, base_url, messages)
            if msg is None:
                raise AgentError("model returned no choices")
            calls = [c for c in (msg.tool_calls or []) if c.type == "function"]
            if not calls or not self.args.tools:
                answer = msg.content or ""
                ctx.trajectory.add("answer", answer=answer)
                return AgentOutput(answer=answer)
            messages.append({"role": "assistant", "content": msg.content or "",
                             "tool_calls": [{"id": c.id, "type": "function",
                                             "function": {"name": c.function.name,
                                                          "arguments": c.function.arguments}}
                                            for c in calls]})
            for c in calls:
                result = await self._tool(ctx, c.function.name, c.function.arguments)
                messages.append({"role": "tool", "tool_call_id": c.id, "content": result})
        raise AgentError(f"agent exceeded its step limit ({ctx.task.limits.max_steps} model calls)")
