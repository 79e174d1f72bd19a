"""The Ray worker's queue of prefetched attempts, without a cluster: a queued attempt starts
only in the slot of one that ended (or was cancelled), and each end says which queued attempt
took its slot, which is how the driver keeps its count of running attempts exact."""

from __future__ import annotations

import asyncio
from typing import Any

from evalfleet.execution.ray_backend import AttemptWorker


def _worker(gates: dict[str, asyncio.Event], log: list[tuple[str, str]]) -> AttemptWorker:
    worker = object.__new__(AttemptWorker)  # no Ray runtime: only the queue is under test
    worker.worker = "ray:test"

    async def attempt(task_id: str, agent_index: int, run_id: str,
                      attempt: int) -> tuple[Any, str]:
        log.append(("start", task_id))
        try:
            await gates[task_id].wait()
        finally:
            log.append(("end", task_id))
        return f"outcome {task_id}", "ray:test"

    worker.attempt = attempt  # type: ignore[method-assign]
    return worker


def _peak(log: list[tuple[str, str]]) -> int:
    running = peak = 0
    for kind, _ in log:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    return peak


def test_queued_attempts_start_only_in_freed_slots() -> None:
    async def main() -> None:
        ids = [f"t{i}" for i in range(6)]
        gates = {t: asyncio.Event() for t in ids}
        log: list[tuple[str, str]] = []
        w = _worker(gates, log)
        # two start at once, four wait for a slot
        await w.submit([(i, t, 0, f"r{i}", 1, i >= 2) for i, t in enumerate(ids)])
        await asyncio.sleep(0.01)
        assert [t for k, t in log if k == "start"] == ["t0", "t1"]
        gates["t1"].set()
        ended: list[Any] = await w.collect(1.0, 0.0)
        assert ended == [(1, "outcome t1", "ray:test", "", 2)]  # t2 took t1's slot
        await asyncio.sleep(0.01)
        assert [t for k, t in log if k == "start"] == ["t0", "t1", "t2"]
        # a queued attempt the driver gave up on never starts; a running one cancelled frees
        # its slot for the next queued one, and says so
        await w.cancel([3])
        await w.cancel([0])
        ended = await w.collect(1.0, 0.0)
        assert ended == [(0, None, "ray:test", "cancelled", 4)]
        for t in ids:
            gates[t].set()
        got: list[Any] = []
        while len(got) < 3:
            got += await w.collect(1.0, 0.0)
        assert sorted(e[0] for e in got) == [2, 4, 5]
        assert [e[4] for e in got].count(5) == 1 and sorted(e[4] for e in got)[:2] == [-1, -1]
        starts = [t for k, t in log if k == "start"]
        assert "t3" not in starts and sorted(starts) == ["t0", "t1", "t2", "t4", "t5"]
        assert _peak(log) == 2  # never more running than the two started at once

    asyncio.run(main())
