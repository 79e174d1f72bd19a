"""Per-sandbox overhead: create + exec + close, one after another (not collected by pytest).

Usage: python tests/sandbox/bench_overhead.py [N] [--no-cgroups]
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from evalfleet.sandbox import BwrapSandboxProvider, LocalSandboxProvider, SandboxLimits
from evalfleet.sandbox._common import DirSandboxProvider


def _ms(ts: Sequence[float]) -> str:
    ms = sorted(t * 1000 for t in ts)
    return f"median {statistics.median(ms):6.1f} ms  p90 {ms[int(len(ms) * 0.9)]:6.1f} ms"


def bare(argv: list[str], n: int) -> list[float]:
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, check=True)
        ts.append(time.perf_counter() - t)
    return ts


async def cycle(p: DirSandboxProvider, argv: list[str], n: int) -> str:
    total, parts = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        sb = await p.create(SandboxLimits())
        t1 = time.perf_counter()
        res = await sb.exec(argv)
        t2 = time.perf_counter()
        await sb.close()
        t3 = time.perf_counter()
        assert res.ok, res
        total.append(t3 - t0)
        parts.append((t1 - t0, t2 - t1, t3 - t2))
    c, e, cl = (statistics.median(x) * 1000 for x in zip(*parts, strict=True))
    return f"{_ms(total)}  (create {c:.1f}, exec {e:.1f}, close {cl:.1f})"


async def main(n: int, cgroups: bool) -> None:
    for argv in (["python3", "-c", "pass"], ["true"]):
        print(f"== {' '.join(argv)}  (N={n})")
        exe = sys.executable if argv[0] == "python3" else "/usr/bin/true"
        print(f"  bare subprocess.run          {_ms(bare([exe, *argv[1:]], n))}")
        kinds: list[type[DirSandboxProvider]] = [LocalSandboxProvider, BwrapSandboxProvider]
        for kind in kinds:
            p = kind(use_cgroups=cgroups)
            if not p.available():
                print(f"  {p.name}: unavailable ({p.unavailable_reason})")
                continue
            print(f"  {p.name:6s} create+exec+close  {await cycle(p, argv, n)}")
            async with await p.create(SandboxLimits()) as sb:
                print(f"         [{sb.isolation}]")


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(int(next((a for a in args if a.isdigit()), "50")), "--no-cgroups" not in args))
