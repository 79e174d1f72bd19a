"""The ``python`` adapter: an importable callable, sync or async."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
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


async def _in_daemon_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` in a daemon thread and await its result.

    A Python thread cannot be killed: when a sync agent hangs past its task's time limit the run
    is recorded as a timeout and the thread is abandoned. A daemon thread (unlike the default
    executor's) does not keep the driver from exiting at the end of the eval.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # delivered to the awaiting coroutine
            loop.call_soon_threadsafe(deliver, False, exc)
        else:
            loop.call_soon_threadsafe(deliver, True, result)

    threading.Thread(target=target, name="evalfleet-agent", daemon=True).start()
    return await future


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

    async def run(self, ctx: AgentContext) -> AgentOutput:
        payload = ctx.task_payload()
        try:
            if self.is_async:
                value = await self.fn(payload, **self.kwargs)
            elif self.threaded:
                value = await _in_daemon_thread(self.fn, payload, **self.kwargs)
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
