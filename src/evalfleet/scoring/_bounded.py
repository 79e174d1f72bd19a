"""Scorer code that may run long (a regex, a user's function) runs here: off the event loop, in
worker processes that are killed when a call outlives its time bound.

A thread could not be stopped, and a backtracking regex holds the GIL, so a process is the only
bound that holds; the driver's event loop (heartbeats, signals) never waits on scorer code.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import multiprocessing
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from evalfleet.errors import InfraError

_WORKERS = 2
_START_TIMEOUT_S = 120.0


def _noop() -> None:
    """A no-op: once it returns, the worker is up."""


class ScorerTimeout(Exception):
    """The call outlived its time bound; its worker was killed."""


class BoundedPool:
    """A small process pool whose calls have a time limit; a late call kills the pool's workers
    (the next call starts new ones)."""

    def __init__(self, workers: int = _WORKERS) -> None:
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._ready: asyncio.Future[Any] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _bind(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._slots is None:
            # one slot per worker: a call's clock starts when a worker is free for it, so
            # waiting behind other calls never counts against its time bound
            self._loop, self._slots, self._ready = loop, asyncio.Semaphore(self._workers), None
        return self._slots

    async def _get(self) -> ProcessPoolExecutor:
        if self._pool is None or self._ready is None:
            if self._pool is None:
                # spawn, not fork: the driver has threads, and a forked copy could deadlock
                self._pool = ProcessPoolExecutor(
                    self._workers, mp_context=multiprocessing.get_context("spawn"))
            pool = self._pool
            # Starting a worker (an interpreter importing evalfleet) is not the scorer's time.
            self._ready = asyncio.ensure_future(asyncio.wait_for(asyncio.gather(  # noqa: RUF006
                *(asyncio.wrap_future(pool.submit(_noop)) for _ in range(self._workers))),
                _START_TIMEOUT_S))
        pool, ready = self._pool, self._ready
        try:
            await asyncio.shield(ready)
        except (TimeoutError, BrokenProcessPool, OSError) as exc:
            self._kill(pool)
            raise InfraError(f"scorer worker processes did not start: {exc!r}") from None
        return pool

    def _kill(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:
            self._pool, self._ready = None, None
        procs = list((getattr(pool, "_processes", None) or {}).values())
        for proc in procs:
            with contextlib.suppress(OSError, ValueError):
                proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            with contextlib.suppress(OSError, ValueError, AssertionError):
                proc.join(5)

    async def call(self, fn: Callable[..., Any], *args: Any, timeout_s: float) -> Any:
        """``fn(*args)`` in a worker process.

        Raises:
            ScorerTimeout: it ran longer than ``timeout_s`` (the worker was killed).
            InfraError: the worker processes could not be started.
        """
        async with self._bind():
            for attempt in range(2):
                pool = await self._get()
                try:
                    fut = pool.submit(fn, *args)
                    return await asyncio.wait_for(asyncio.wrap_future(fut), timeout_s)
                except BrokenProcessPool:
                    # another call's time-out killed the workers under this one: run it again
                    self._kill(pool)
                    if attempt:
                        raise InfraError("scorer worker processes keep dying") from None
                except TimeoutError:
                    self._kill(pool)
                    raise ScorerTimeout(f"scorer did not finish within {timeout_s:g}s") from None
                except asyncio.CancelledError:
                    self._kill(pool)  # the driver stops: leave no worker stuck in a regex
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Kill the workers (idempotent)."""
        if self._pool is not None:
            self._kill(self._pool)


POOL = BoundedPool()
"""The driver's shared pool."""


def regex_search(patterns: list[tuple[str, int]], text: str) -> bool:
    """Whether any of the patterns (source, flags) is found in ``text``. Runs in a worker."""
    return any(re.compile(p, flags).search(text) for p, flags in patterns)


def _finite(x: Any) -> float:
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{x!r} is not a finite number")
    return v


def call_python_scorer(path: str, answer: str, task: dict[str, Any],
                       sys_path: list[str]) -> tuple[str, Any]:
    """Import and call ``module:function(answer, task)``; runs in a worker.

    ``sys_path`` is the driver's import path now: entries the worker lacks (the driver may have
    added a plan's folder after the worker started) are appended before the import.

    Returns ``("ok", value)`` with ``value`` a bool, a float or a dict of plain numbers, or
    ``("error", message)``: whatever went wrong, as text, so nothing unpicklable crosses back.
    """
    import sys

    from evalfleet._util.imports import import_callable

    sys.path.extend(p for p in sys_path if p not in sys.path)
    try:
        fn = import_callable(path)
        value = fn(answer, task)
        if inspect.isawaitable(value):
            value = asyncio.run(_wait(value))
        if isinstance(value, bool):
            return "ok", value
        if isinstance(value, int | float):
            return "ok", float(value)
        if isinstance(value, dict) and "value" in value:
            out: dict[str, Any] = {"value": float(value["value"])}
            if "passed" in value:
                out["passed"] = bool(value["passed"])
            out["metrics"] = {str(k): _finite(x) for k, x in (value.get("metrics") or {}).items()}
            return "ok", out
        return "error", (f"returned {type(value).__name__}; expected a bool, a number in [0, 1] "
                         "or a dict with 'value'")
    except BaseException as exc:  # any failure is the scorer's, reported
        return "error", f"raised {type(exc).__name__}: {exc}"[:1000]


async def _wait(aw: Any) -> Any:
    return await aw
