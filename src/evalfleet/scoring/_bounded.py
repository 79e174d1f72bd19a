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

_WORKERS = 2


class ScorerTimeout(Exception):
    """The call outlived its time bound; its worker was killed."""


class BoundedPool:
    """A small process pool whose calls have a time limit; a late call kills the pool's workers
    (the next call starts new ones)."""

    def __init__(self, workers: int = _WORKERS) -> None:
        self._workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def _get(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the driver has threads, and a forked copy of it could deadlock
            self._pool = ProcessPoolExecutor(self._workers,
                                             mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def _kill(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is pool:
            self._pool = None
        procs = list(getattr(pool, "_processes", {}).values())
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
        """
        for attempt in range(2):
            pool = self._get()
            try:
                fut = pool.submit(fn, *args)
                return await asyncio.wait_for(asyncio.wrap_future(fut), timeout_s)
            except BrokenProcessPool:
                # another call's timeout killed the workers under this one: run it again once
                self._kill(pool)
                if attempt:
                    raise
            except TimeoutError:
                self._kill(pool)
                raise ScorerTimeout(f"scorer did not finish within {timeout_s:g}s") from None
            except asyncio.CancelledError:
                self._kill(pool)  # the driver stops: leave no worker stuck in a regex behind
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


def call_python_scorer(path: str, answer: str, task: dict[str, Any]) -> tuple[str, Any]:
    """Import and call ``module:function(answer, task)``; runs in a worker.

    Returns ``("ok", value)`` with ``value`` a bool, a float or a dict of plain numbers, or
    ``("error", message)``: whatever went wrong, as text, so nothing unpicklable crosses back.
    """
    from evalfleet._util.imports import import_callable

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
