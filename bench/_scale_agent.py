"""The agent of ``bench/scale.py``: lognormal durations and injected infrastructure faults.

Everything is deterministic per task id (a hash), so every variant of the benchmark runs the
same work. The module counts, in this process, the attempts that ran and the seconds they
slept: the benchmark runs the eval in-process and reads them for the ideal wall.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
from statistics import NormalDist
from typing import Any

from evalfleet.errors import InfraError

_NORMAL = NormalDist()
attempts = 0
"""Attempts started in this process."""
busy_s = 0.0
"""Sum of the durations of the attempts started in this process."""
_failed_once: set[str] = set()


def _uniform(key: str) -> float:
    """A uniform draw in (0, 1) from a hash of ``key``."""
    n = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    return (n + 0.5) / 2**64


def duration(task_id: str, median_s: float = 0.2, sigma: float = 0.8) -> float:
    """The task's lognormal duration: ``median * exp(sigma * z)``."""
    return median_s * math.exp(sigma * _NORMAL.inv_cdf(_uniform("d:" + task_id)))


def faulty(task_id: str, fault_rate: float = 0.05) -> bool:
    """Whether the task's first attempt fails with an infrastructure error."""
    return _uniform("f:" + task_id) < fault_rate


def _first_time(tid: str, marker_dir: str | None) -> bool:
    """Whether this is the task's first faulty attempt: in this process, or (``marker_dir``,
    for workers in several processes: the Ray backend) across processes, by a marker file
    created exclusively."""
    if marker_dir is None:
        if tid in _failed_once:
            return False
        _failed_once.add(tid)
        return True
    try:
        os.close(os.open(os.path.join(marker_dir, tid), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


async def lognormal(task: dict[str, Any], median_s: float = 0.2, sigma: float = 0.8,
                    fault_rate: float = 0.05, marker_dir: str | None = None) -> str:
    """Sleeps the task's duration and answers ``ok``; a faulty task's first attempt dies
    halfway through with an InfraError (the half it ran counts as work)."""
    global attempts, busy_s
    tid = task["id"]
    d = duration(tid, median_s, sigma)
    attempts += 1
    if faulty(tid, fault_rate) and _first_time(tid, marker_dir):
        busy_s += d / 2
        await asyncio.sleep(d / 2)
        raise InfraError("injected infrastructure fault")
    busy_s += d
    await asyncio.sleep(d)
    return "ok"
