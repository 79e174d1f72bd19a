"""A SIMULATED OpenAI-compatible model server for demos and tests. It is not a model.

It says so wherever it shows: every response carries ``X-Evalfleet-Simulated: true``, completions
carry ``system_fingerprint: "evalfleet-simulated"``, ``/v1/models`` lists its models as
``owned_by: "evalfleet-simulator (simulated)"`` and the server logs a SIMULATED line at start-up.

Endpoints: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions``
(non-streaming) and ``GET /healthz``. An unknown model is a 404 in OpenAI's error shape.

Behaviour, configured by a :class:`~evalfleet.spec.plan.SimulatorSpec`:

- **Task recognition.** A HumanEval prompt, or a repo-tasks ``input``, appearing verbatim in a
  user message identifies the task. Anything else gets a generic, unhelpful answer.
- **Success.** Per run, ``logit(p) = logit(skill) + 0.9 * (3 - difficulty) + offset(task)``,
  with ``offset`` a fixed N(0, 0.8) draw hashed from the task id, clipped to [0.02, 0.98].
  A run is identified by the request's OpenAI ``user`` field (the agent sends
  ``"<run_id>:<attempt>"``); its randomness comes from hash(seed, model, user, task id), so every
  turn of a run agrees. Without ``user``, each request draws afresh.
- **HumanEval.** One message with the complete function (prompt + canonical solution) in a
  ```` ```python ```` block; a failed run gets an AST mutant of it (flipped comparison,
  off-by-one constant, swapped and/or, negated condition, ...).
- **Repo tasks**, when the request offers the ``write_file`` tool: turn 1 (no tool call made
  yet) calls ``run_shell {"command": "ls -R"}`` and ``read_file {"path": ...}`` for each file to
  change; turn 2 calls ``write_file {"path", "content"}`` once per changed file (the reference
  content, or on failure the original file or a mutant); afterwards a final message without
  tool calls. Without tools, one message with every changed file in a fenced block under a
  ``### path`` heading.
- **Usage and latency.** ``prompt_tokens`` is the characters of all messages / 4,
  ``completion_tokens`` those of the reply / 4; each answer waits a lognormal delay (sigma 0.5)
  whose mean is the model's ``latency_s``.
- **Prompt caching.** Like a provider's prompt cache, the longest prefix of whole messages (for
  the same model and offered tools) that an earlier request to this server already sent is
  reported as ``usage.prompt_tokens_details.cached_tokens`` (its characters / 4, part of
  ``prompt_tokens``): a shared system prompt, the whole prompt of a repeated run, the earlier
  turns of a multi-turn conversation. As with a real cache, which requests find it warm depends
  on their order. The server remembers the last :data:`CACHE_PREFIXES` prefixes.
- **Faults**, drawn per request: 429 with ``Retry-After``; 500; a dropped connection (headers
  promise a body that is cut off); a hang (no answer until the client gives up).
- **Request log.** With a log path, one JSON line per chat request:
  ``{"t", "model", "outcome": "ok|429|500|drop|hang|404|400", "task", "user"}``.

Run it with ``python -m evalfleet.testing.simulator --config JSON_OR_@FILE --port 0
--port-file PATH [--log PATH]``, from Python with :class:`SimulatorProcess`, or in-process with
:func:`create_app` and ``httpx.ASGITransport``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evalfleet.spec.plan import SimulatorSpec
from evalfleet.testing._sim_tasks import (
    KnownTask,
    Reply,
    TaskCatalog,
    builtin_catalog,
    generic_reply,
    humaneval_reply,
    repo_reply,
    run_rng,
    success_probability,
)

__all__ = ["SimulatedDropError", "SimulatorProcess", "create_app", "main"]

FINGERPRINT = "evalfleet-simulated"
OWNED_BY = "evalfleet-simulator (simulated)"
LATENCY_SIGMA = 0.5
HANG_S = 3600.0
CACHE_PREFIXES = 100_000
"""How many message prefixes the simulated prompt cache remembers (least recently used go)."""
_log = logging.getLogger("evalfleet.testing.simulator")


class SimulatedDropError(ConnectionResetError):
    """Raised inside the app to cut a response short (a simulated dropped connection)."""


def _error(status: int, message: str, kind: str, *, code: str | None = None,
           param: str | None = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


class _DroppedResponse(Response):
    """Sends headers promising a body, a fragment of it, then aborts the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "more_body": True,
                    "body": b'{"id": "chatcmpl-sim-dropped", "object": "chat.completion", '})
        raise SimulatedDropError("simulated dropped connection (evalfleet simulator fault)")


class _SimulatedHeader:
    """ASGI middleware adding ``X-Evalfleet-Simulated: true`` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-evalfleet-simulated", b"true")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_marked)


def _text(content: Any) -> str:
    """The text of a message's content: a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def _chars(messages: Sequence[Mapping[str, Any]]) -> int:
    total = 0
    for m in messages:
        total += len(_text(m.get("content")))
        for call in m.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(fn, Mapping):
                total += len(str(fn.get("name", ""))) + len(str(fn.get("arguments", "")))
    return total


def _tokens(chars: int) -> int:
    return max(1, math.ceil(chars / 4))


def _offered_tools(body: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for tool in body.get("tools") or ():
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            names.add(fn["name"])
    return names


class _PromptCache:
    """Which message prefixes were sent before, per model and tool set (bounded, LRU)."""

    def __init__(self, capacity: int = CACHE_PREFIXES) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def cached_chars(self, model: str, tools: Any, messages: Sequence[Mapping[str, Any]]) -> int:
        """Characters of the longest whole-message prefix sent before; remembers this prompt's
        prefixes for the requests that follow."""
        h = hashlib.sha256(json.dumps([model, tools], sort_keys=True, default=str).encode())
        cached = chars = 0
        warm = True
        for m in messages:
            h.update(json.dumps(m, sort_keys=True, default=str).encode())
            key = h.copy().digest()
            chars += _chars([m])
            if warm and key in self._seen:
                cached = chars
                self._seen.move_to_end(key)
            else:
                warm = False
                self._seen[key] = None
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return cached


class _Simulator:
    """The request handlers and their state (random streams, prompt cache, request log)."""

    def __init__(self, spec: SimulatorSpec, log_path: Path | None,
                 catalog: TaskCatalog) -> None:
        self.spec = spec
        self.log_path = log_path
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
        self.catalog = catalog
        self.request_rng = random.Random(spec.seed)
        self.salt = spec.seed if spec.seed is not None else random.SystemRandom().getrandbits(64)
        self.cache = _PromptCache()

    def _log_request(self, t: float, model: str, outcome: str, task: KnownTask | None,
                     user: str | None) -> None:
        if self.log_path is None:
            return
        line = json.dumps({"t": round(t, 6), "model": model, "outcome": outcome,
                           "task": task.id if task else None, "user": user})
        with self.log_path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def _fault(self) -> str:
        f = self.spec.faults
        u = self.request_rng.random()
        for outcome, share in (("429", f.rate_limit), ("500", f.server_error), ("drop", f.drop),
                               ("hang", f.hang)):
            if u < share:
                return outcome
            u -= share
        return "ok"

    def _delay(self, mean: float) -> float:
        if mean <= 0:
            return 0.0
        mu = math.log(mean) - LATENCY_SIGMA**2 / 2
        return self.request_rng.lognormvariate(mu, LATENCY_SIGMA)

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self._model_card(m)
                                                        for m in self.spec.models]})

    async def model(self, request: Request) -> Response:
        name = request.path_params["model"]
        if name not in self.spec.models:
            return self._unknown_model(name)
        return JSONResponse(self._model_card(name))

    @staticmethod
    def _model_card(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 0, "owned_by": OWNED_BY}

    def _unknown_model(self, name: str) -> Response:
        return _error(404, f"The model '{name}' does not exist (the evalfleet simulator serves: "
                      f"{', '.join(self.spec.models)})", "invalid_request_error",
                      code="model_not_found", param="model")

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "simulated": True})

    async def chat(self, request: Request) -> Response:
        t = time.time()
        try:
            body = await request.json()
        except ValueError:
            self._log_request(t, "", "400", None, None)
            return _error(400, "the request body is not JSON", "invalid_request_error")
        if not isinstance(body, dict):
            self._log_request(t, "", "400", None, None)
            return _error(400, "the request body must be a JSON object", "invalid_request_error")
        model = str(body.get("model", ""))
        user = body.get("user") if isinstance(body.get("user"), str) else None
        messages = body.get("messages")
        if model not in self.spec.models:
            self._log_request(t, model, "404", None, user)
            return self._unknown_model(model)
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            self._log_request(t, model, "400", None, user)
            return _error(400, "'messages' must be a list of objects", "invalid_request_error",
                          param="messages")
        if body.get("stream"):
            self._log_request(t, model, "400", None, user)
            return _error(400, "the evalfleet simulator does not stream", "invalid_request_error",
                          param="stream")
        task = self.catalog.recognise([_text(m.get("content")) for m in messages
                                       if m.get("role") == "user"])
        outcome = self._fault()
        self._log_request(t, model, outcome, task, user)
        if outcome == "429":
            after = self.spec.faults.retry_after_s
            return _error(429, "Rate limit reached (simulated by the evalfleet simulator)",
                          "requests", code="rate_limit_exceeded",
                          headers={"Retry-After": f"{after:g}",
                                   "retry-after-ms": str(round(after * 1000))})
        if outcome == "hang":
            await self._wait_for_disconnect(request, HANG_S)
            return _error(504, "simulated hang ended", "server_error")
        await asyncio.sleep(self._delay(self.spec.models[model].latency_s))
        if outcome == "500":
            return _error(500, "The server had an error (simulated by the evalfleet simulator)",
                          "server_error")
        if outcome == "drop":
            return _DroppedResponse()
        reply = self._reply(model, user, task, messages, _offered_tools(body))
        cached_chars = self.cache.cached_chars(model, body.get("tools"), messages)
        return JSONResponse(self._completion(model, messages, reply, body, cached_chars))

    @staticmethod
    async def _wait_for_disconnect(request: Request, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while (await request.receive())["type"] != "http.disconnect":
                    pass

    def _reply(self, model: str, user: str | None, task: KnownTask | None,
               messages: list[dict[str, Any]], tools: set[str]) -> Reply:
        if task is None:
            return generic_reply()
        rng = (run_rng(self.salt, model, user, task.id) if user is not None
               else random.Random(self.request_rng.getrandbits(64)))
        p = success_probability(self.spec.models[model].skill, task.difficulty, task.id)
        success = rng.random() < p
        if task.kind == "humaneval":
            return humaneval_reply(task, success, rng)
        key = f"{user}|{task.id}|{len(messages)}"
        return repo_reply(task, messages, tools, success, rng, key)

    @staticmethod
    def _completion(model: str, messages: list[dict[str, Any]], reply: Reply,
                    body: Mapping[str, Any], cached_chars: int = 0) -> dict[str, Any]:
        content = reply.content
        finish = "tool_calls" if reply.tool_calls else "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if content is not None and isinstance(limit, int) and limit > 0 \
                and _tokens(len(content)) > limit:
            content, finish = content[: limit * 4], "length"
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = list(reply.tool_calls)
        out_chars = len(content or "") + _chars([{"tool_calls": list(reply.tool_calls)}])
        prompt_tokens, completion_tokens = _tokens(_chars(messages)), _tokens(out_chars)
        cached_tokens = min(prompt_tokens, cached_chars // 4)
        return {
            "id": f"chatcmpl-sim-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "message": message, "finish_reason": finish,
                         "logprobs": None}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens,
                      "prompt_tokens_details": {"cached_tokens": cached_tokens}},
        }


def create_app(spec: SimulatorSpec, log_path: str | Path | None = None,
               catalog: TaskCatalog | None = None) -> Starlette:
    """The simulator as an ASGI app (for ``uvicorn`` or ``httpx.ASGITransport``).

    Over ``httpx.ASGITransport`` a dropped connection surfaces as :class:`SimulatedDropError`
    (a ``ConnectionResetError``) raised from the client call, and a hang never ends since that
    transport has no timeouts: test those two faults against a :class:`SimulatorProcess`.

    Args:
        spec: Models, faults and seed.
        log_path: File to append one JSON line per chat request to.
        catalog: Known tasks; default: HumanEval and repo-tasks.
    """
    sim = _Simulator(spec, Path(log_path) if log_path is not None else None,
                     catalog if catalog is not None else builtin_catalog())
    routes = [
        Route("/v1/models", sim.models, methods=["GET"]),
        Route("/v1/models/{model:path}", sim.model, methods=["GET"]),
        Route("/v1/chat/completions", sim.chat, methods=["POST"]),
        Route("/healthz", sim.healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(_SimulatedHeader)])


class _Server(uvicorn.Server):
    """uvicorn on a pre-bound socket; SIGTERM/SIGINT stop it gracefully.

    uvicorn's own signal capture re-raises the signal after shutting down, which would end the
    process with SIGTERM's status instead of 0; this server installs plain handlers instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def stop(signum: int, frame: FrameType | None) -> None:
            self.should_exit = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


async def _serve(app: Starlette, sock: socket.socket, port_file: Path | None,
                 banner: str, exit_with_parent: bool = False) -> None:
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2)
    logging.getLogger("uvicorn.error").addFilter(_hide_simulated_drops)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    if exit_with_parent:
        watchdog = asyncio.create_task(_exit_with_parent(server, os.getppid()))
        task.add_done_callback(lambda _: watchdog.cancel())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("the simulator server stopped during start-up")
        await asyncio.sleep(0.01)
    print(banner, file=sys.stderr, flush=True)
    if port_file is not None:
        tmp = port_file.with_name(port_file.name + ".tmp")
        tmp.write_text(str(sock.getsockname()[1]))
        os.replace(tmp, port_file)
    await task


async def _exit_with_parent(server: uvicorn.Server, parent: int) -> None:
    # A parent killed without a chance to stop us would otherwise leave an orphan server.
    while not server.should_exit:
        await asyncio.sleep(0.5)
        if os.getppid() != parent:
            server.should_exit = True


def _hide_simulated_drops(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], SimulatedDropError))


def _read_config(value: str) -> SimulatorSpec:
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    return SimulatorSpec.model_validate(yaml.safe_load(text))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: serve a simulator until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m evalfleet.testing.simulator",
        description="A SIMULATED OpenAI-compatible model server (not a real model).")
    parser.add_argument("--config", required=True,
                        help="SimulatorSpec as JSON (or YAML), or @FILE holding it")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    parser.add_argument("--log", type=Path, help="append one JSON line per chat request here")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="stop when the parent process goes away")
    args = parser.parse_args(argv)
    try:
        spec = _read_config(args.config)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"simulator: bad --config: {exc}", file=sys.stderr)
        return 2
    app = create_app(spec, args.log)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        print(f"simulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    banner = (f"evalfleet simulator: SIMULATED OpenAI-compatible model server (not a real model) "
              f"on http://{host}:{port}/v1 serving {', '.join(spec.models)}")
    with sock:
        asyncio.run(_serve(app, sock, args.port_file, banner, args.exit_with_parent))
    return 0


class SimulatorProcess:
    """The simulator in a child process (same process group), for demos and tests.

    Example:
        with SimulatorProcess(spec) as sim:
            client = openai.OpenAI(base_url=sim.base_url, api_key="unused")
    """

    def __init__(self, spec: SimulatorSpec, *, log_path: str | Path | None = None,
                 host: str = "127.0.0.1", startup_timeout_s: float = 20.0) -> None:
        self.spec = spec
        self.log_path = Path(log_path) if log_path is not None else None
        self.host = host
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._base_url: str | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``; raises RuntimeError before :meth:`start`."""
        if self._base_url is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return self._base_url

    @property
    def output_path(self) -> Path | None:
        """File holding the child's stdout and stderr (its start-up line, errors)."""
        return Path(self._tmp.name) / "output.log" if self._tmp is not None else None

    def start(self) -> str:
        """Start the server, wait until it listens, and return its base URL."""
        if self._proc is not None:
            return self.base_url
        self._tmp = tempfile.TemporaryDirectory(prefix="evalfleet-sim-")
        port_file = Path(self._tmp.name) / "port"
        cmd = [sys.executable, "-m", "evalfleet.testing.simulator",
               "--config", self.spec.model_dump_json(), "--host", self.host, "--port", "0",
               "--port-file", str(port_file), "--exit-with-parent"]
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            cmd += ["--log", str(self.log_path)]
        assert self.output_path is not None
        with self.output_path.open("wb") as out:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        self._finalizer = weakref.finalize(self, _terminate, self._proc, self._tmp)
        deadline = time.monotonic() + self.startup_timeout_s
        while not port_file.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                output = self.output_path.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"the simulator did not start: {output.strip() or 'no output'}")
            time.sleep(0.02)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._base_url = f"http://{host}:{int(port_file.read_text())}/v1"
        _log.info("SIMULATED model server started at %s", self._base_url)
        return self._base_url

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its temporary files."""
        if self._finalizer is not None:
            self._finalizer()
        self._proc = self._tmp = self._base_url = self._finalizer = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _terminate(proc: subprocess.Popen[bytes],
               tmp: tempfile.TemporaryDirectory[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
