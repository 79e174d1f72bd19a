"""The ``python`` adapter: an importable callable, sync or async."""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evalfleet._util.imports import import_callable
from evalfleet.agents.base import AgentContext, AgentOutput
from evalfleet.errors import AgentError, SpecError


class PythonAgentArgs(BaseModel):
    """Arguments of the python adapter."""

    model_config = ConfigDict(extra="forbid")

    callable: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
                          description="'package.module:function' taking the task dict.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra keyword arguments.")
    threaded: bool = Field(True, description="Run a sync callable in a worker thread.")
    threads: int | None = Field(None, ge=1, le=10_000,
                                description="At most this many worker threads run a threaded "
                                            "sync callable (default: the plan's "
                                            "max_in_flight); the pool grows while calls wait.")


def _summary(exc: BaseException) -> str:
    """``Type: first line of the message``, short enough for a one-line error."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _to_output(value: Any) -> AgentOutput:
    if isinstance(value, AgentOutput):
        return value
    if isinstance(value, str):
        return AgentOutput(answer=value)
    if isinstance(value, dict) and isinstance(value.get("answer"), str):
        return AgentOutput(answer=value["answer"],
                           extra={k: v for k, v in value.items() if k != "answer"})
    raise AgentError(f"agent returned {type(value).__name__}, expected str or "
                     "{'answer': str}")


@dataclass(slots=True, eq=False)
class _Call:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: str = "queued"  # queued | running | done | cancelled
    abandoned: bool = False
    """The caller stopped waiting while the call ran: its thread leaves the pool when done."""


class AgentThreads:
    """Daemon worker threads shared by the sync calls of a python agent, at most ``size``
    serving calls at once.

    The pool grows only when calls wait: the first ``eager`` threads start with the first
    calls; beyond them, a thread starts for each call that has waited ``grow_after_s`` in the
    queue. Calls that block (a model request, a subprocess) leave their threads busy, calls
    wait, and within a few ``grow_after_s`` the pool reaches ``size`` (all of them run at
    once). Calls that return at once never wait that long: one thread serves them all,
    instead of a hundred threads each woken for one call and all contending for the GIL with
    the event loop (measured with 10,000 no-op calls at 100 in flight: 0.1-0.2 s of a 3.3 s
    eval went to that). Threads are not retired once started.

    A Python thread cannot be killed: when a sync agent hangs past its task's time limit the run
    is recorded as a timeout and its thread is abandoned: it leaves the pool (a new one may take
    its place) and ends when the call returns. Daemon threads (unlike the default executor's) do
    not keep the driver from exiting at the end of the eval.
    """

    def __init__(self, size: int, *, eager: int = 1, grow_after_s: float = 0.01) -> None:
        if size < 1:
            raise ValueError("a thread pool needs at least one thread")
        self.size = size
        self.eager = max(1, min(eager, size))
        self.grow_after_s = grow_after_s
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._serving = 0  # threads in the pool (not abandoned, not shut down)
        self._put = 0  # calls queued so far (by the loop's thread)
        self._taken = 0  # of them, those a thread has taken (under the lock)
        self._watching: asyncio.AbstractEventLoop | None = None
        """The loop in which a check for waiting calls is scheduled."""
        self._closed = False
        # results wait here for their loop, which takes them all in one callback: one wake-up
        # of the loop (a write to its self-pipe) per batch instead of one per call
        self._ended: dict[asyncio.AbstractEventLoop, list[tuple[_Call, bool, Any]]] = {}
        self._ended_lock = threading.Lock()

    @property
    def serving(self) -> int:
        """Threads in the pool: not abandoned, not shut down."""
        return self._serving

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` on a pool thread and await its result."""
        loop = asyncio.get_running_loop()
        item = _Call(loop, loop.create_future(), fn, args, kwargs)
        self._put += 1
        self._work.put(item)
        # (no count of idle threads: keeping one took a lock the pool's threads contend for
        # on every call; the growth check below sees whether calls wait)
        if self._serving < self.eager or (self._serving < self.size
                                          and self._watching is not loop):
            with self._lock:
                if self._serving < self.eager:
                    self._spawn()
                elif self._serving < self.size and self._watching is not loop:
                    self._watch(loop)
        try:
            return await item.future
        except asyncio.CancelledError:
            with self._lock:
                if item.state == "queued":
                    item.state = "cancelled"  # a thread that takes it skips it
                elif item.state == "running":
                    item.abandoned = True
                    self._serving -= 1
                    if not self._work.empty():
                        self._spawn()  # calls are waiting: one takes the abandoned one's place
            raise

    def _grow(self, loop: asyncio.AbstractEventLoop, mark: int) -> None:
        """In ``loop``, ``grow_after_s`` after the check was set with ``mark`` calls queued:
        start a thread for each of those calls still waiting; check again while calls wait."""
        with self._lock:
            self._watching = None
            if self._closed:
                return
            for _ in range(min(mark - self._taken, self.size - self._serving)):
                self._spawn()
            if self._put > self._taken and self._serving < self.size:
                self._watch(loop)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Check in ``grow_after_s`` whether the calls queued by now still wait (with the lock
        held; one check at a time per loop)."""
        self._watching = loop
        loop.call_later(self.grow_after_s, self._grow, loop, self._put)

    def _spawn(self) -> None:
        """Start a thread (with the lock held)."""
        self._serving += 1
        threading.Thread(target=self._worker, name="evalfleet-agent", daemon=True).start()

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:  # shut down
                return
            with self._lock:
                self._taken += 1
                skip = item.state == "cancelled"
                item.state = "running"
            if not skip:
                try:
                    result = item.fn(*item.args, **item.kwargs)
                except BaseException as exc:  # delivered to the awaiting coroutine
                    self._deliver_soon(item, False, exc)
                else:
                    self._deliver_soon(item, True, result)
            with self._lock:
                item.state = "done"
                if item.abandoned:
                    return  # replaced in the pool when its caller gave up on it

    def _deliver_soon(self, item: _Call, ok: bool, value: Any) -> None:
        """Hand a call's result to its loop (from the pool's thread)."""
        with self._ended_lock:
            pending = self._ended.get(item.loop)
            if pending is not None:  # a delivery is scheduled: it takes this one too
                pending.append((item, ok, value))
                return
            self._ended[item.loop] = [(item, ok, value)]
        try:
            item.loop.call_soon_threadsafe(self._deliver, item.loop)
        except RuntimeError:  # the loop closed: nobody waits for its results
            with self._ended_lock:
                self._ended.pop(item.loop, None)

    def _deliver(self, loop: asyncio.AbstractEventLoop) -> None:
        """Set the results of the calls ended since the last delivery (in their loop)."""
        with self._ended_lock:
            batch = self._ended.pop(loop, [])
        for item, ok, value in batch:
            if item.future.done():
                continue
            if ok:
                item.future.set_result(value)
            else:
                item.future.set_exception(value)

    def shutdown(self) -> None:
        """Idle threads end; busy ones end after their call."""
        with self._lock:
            n, self._serving = self._serving, 0
            self._closed = True
        for _ in range(n):
            self._work.put(None)


class PythonAgent:
    """Calls ``fn(task: dict, **kwargs)``; the result is the answer."""

    def __init__(self, args: PythonAgentArgs) -> None:
        try:
            self.fn = import_callable(args.callable)
        except ValueError as exc:
            raise SpecError(str(exc), field="args.callable") from None
        except (Exception, SystemExit) as exc:
            # the agent's module ran and failed at import (or called sys.exit): that is a
            # mistake in the plan's agent, reported like one, not a traceback of the driver
            raise SpecError(f"cannot import '{args.callable}': {_summary(exc)}",
                            field="args.callable") from None
        self.kwargs = args.kwargs
        self.threaded = args.threaded
        self.is_async = inspect.iscoroutinefunction(self.fn)
        self._threads_arg = args.threads
        self.threads: AgentThreads | None = None
        """The pool of a threaded sync callable, made on first use."""
        self._bound = 16

    def limit_threads(self, max_in_flight: int) -> None:
        """Size the thread pool to the runs that can be in flight (unless ``threads`` says)."""
        self._bound = max_in_flight

    async def aclose(self) -> None:
        """End the pool's threads (those still running a call end after it)."""
        if self.threads is not None:
            self.threads.shutdown()
            self.threads = None

    async def run(self, ctx: AgentContext) -> AgentOutput:
        payload = ctx.task_payload()
        try:
            if self.is_async:
                value = await self.fn(payload, **self.kwargs)
            elif self.threaded:
                if self.threads is None:
                    self.threads = AgentThreads(self._threads_arg or self._bound)
                value = await self.threads.call(self.fn, payload, **self.kwargs)
            else:
                value = self.fn(payload, **self.kwargs)
        except (AgentError, SpecError):
            raise
        except Exception as exc:
            from evalfleet.errors import RunError

            if isinstance(exc, RunError):
                raise
            raise AgentError(f"agent raised {type(exc).__name__}: {exc}"[:2000]) from exc
        out = _to_output(value)
        ctx.trajectory.add("answer", answer=out.answer)
        return out
