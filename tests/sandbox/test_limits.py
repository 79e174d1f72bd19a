"""Limits hold: memory, CPU, file size, wall time, processes, output."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import resource
import signal
import time
from pathlib import Path

import pytest

from evalfleet.sandbox import LocalSandboxProvider, SandboxLimits
from evalfleet.sandbox._common import DirSandbox, DirSandboxProvider
from evalfleet.sandbox._host import live_pids


def test_memory_limit(provider: DirSandboxProvider) -> None:
    async def main() -> None:
        async with await provider.create(SandboxLimits(memory_mb=256)) as sb:
            big = await sb.exec(["python3", "-c", "b = bytearray(2 * 1024**3); print('got it')"])
            assert big.exit_code == 1 and "MemoryError" in big.stderr, big
            assert "got it" not in big.stdout
            small = await sb.exec(["python3", "-c", "b = bytearray(50 * 1024**2); print('ok')"])
            assert small.ok and small.stdout == "ok\n", small

    asyncio.run(main())


def test_cpu_limit_kills_a_busy_loop_well_before_the_timeout(
        provider: DirSandboxProvider) -> None:
    async def main() -> None:
        async with await provider.create(SandboxLimits(cpu_s=1)) as sb:
            res = await sb.exec(["python3", "-c", "while True: pass"], timeout_s=30)
            assert not res.timed_out
            assert res.signal in (signal.SIGXCPU, signal.SIGKILL), res
            assert res.exit_code is None
            assert res.duration_s < 10

    asyncio.run(main())


def test_file_size_limit(provider: DirSandboxProvider) -> None:
    write = "open('big', 'wb').write(b'x' * (10 * 1024**2)); print('wrote')"

    async def main() -> None:
        async with await provider.create(SandboxLimits(file_size_mb=1)) as sb:
            res = await sb.exec(["python3", "-c", write])
            assert not res.ok and "wrote" not in res.stdout, res
            assert "File too large" in res.stderr
            assert (sb.host_dir / "big").stat().st_size <= 1024**2

    asyncio.run(main())


def test_a_hanging_command_is_killed_at_the_timeout(provider: DirSandboxProvider) -> None:
    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            t = time.monotonic()
            res = await sb.exec(["sleep", "60"], timeout_s=1)
            assert res.timed_out and not res.ok
            assert res.exit_code is None and res.signal == signal.SIGKILL
            assert time.monotonic() - t < 30  # killed, not waited for: the sleep is 60 s

    asyncio.run(main())


STUBBORN = r"""
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
CHILD = '''
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if sys.argv[1] == 'escape':
    os.setsid()
for _ in range(200):  # bounded, in case a kill fails
    with open('beat-' + sys.argv[1], 'a') as f:
        f.write('x')
    time.sleep(0.05)
'''
kids = [subprocess.Popen([sys.executable, '-c', CHILD, name])
        for name in ('a', 'b', 'escape')]
with open('pids', 'w') as f:
    f.write(' '.join(str(p) for p in [os.getpid()] + [k.pid for k in kids]))
print('started', flush=True)
while True:
    time.sleep(1)
"""


def _alive(pid: int) -> bool:
    """True for a process that runs; a zombie waiting to be reaped counts as dead."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != b"Z"


def _beats(d: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(d.glob("beat-*"))}


def test_sigterm_ignoring_process_and_its_children_die_at_the_timeout(
        provider: DirSandboxProvider) -> None:
    async def main() -> None:
        sb = await provider.create(SandboxLimits())
        try:
            res = await sb.exec(["python3", "-c", STUBBORN], timeout_s=2)
            assert res.timed_out and res.signal == signal.SIGKILL, res
            assert res.stdout == "started\n"
            await asyncio.sleep(0.3)
            before = _beats(sb.host_dir)
            assert set(before) == {"beat-a", "beat-b", "beat-escape"}
            await asyncio.sleep(0.5)
            after = _beats(sb.host_dir)
            # Children in the command's process group stop with it.
            assert after["beat-a"] == before["beat-a"] and after["beat-b"] == before["beat-b"]
            pids = [int(p) for p in (sb.host_dir / "pids").read_text().split()]
            if sb.provider == "local":
                # pids are host pids here (bwrap's are inside its pid namespace).
                assert not any(_alive(p) for p in pids[:3])
            else:
                # The pid namespace died with the command: even the setsid() escapee is gone.
                assert after["beat-escape"] == before["beat-escape"]
        finally:
            await sb.close()
        if sb.uid is not None:
            # close() kills whatever is left, including a child that left the process group.
            assert live_pids(sb.uid) == []
        if sb.provider == "local":
            assert not _alive(pids[3]) or sb.uid is None

    asyncio.run(main())


FORK_BOMB = """
import os, time
n = 0
for _ in range(10_000):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    n += 1
print(n, flush=True)
"""


def test_fork_bomb_is_contained(provider: DirSandboxProvider) -> None:
    async def main() -> None:
        async with await provider.create(SandboxLimits(max_processes=20)) as sb:
            res = await sb.exec(["python3", "-c", FORK_BOMB], timeout_s=8)
            assert not res.timed_out, res
            forked = int(res.stdout)
            assert 0 < forked < 20, res
            # The sandbox still works afterwards: the children died with the command.
            again = await sb.exec(["python3", "-c", "print('fine')"])
            assert again.ok and again.stdout == "fine\n", again

    asyncio.run(main())


def test_gigabytes_of_output_are_truncated(provider: DirSandboxProvider) -> None:
    async def main() -> None:
        async with await provider.create(SandboxLimits(max_output_bytes=10_000)) as sb:
            res = await sb.exec(["sh", "-c", "head -c 1G /dev/zero; head -c 1G /dev/zero >&2; "
                                             "echo done >&2"], timeout_s=60)
            assert res.ok and res.truncated, res.exit_code
            assert len(res.stdout) == 10_000 and len(res.stderr) == 10_000
            small = await sb.exec(["echo", "hi"])
            assert small.stdout == "hi\n" and not small.truncated

    asyncio.run(main())


def test_invalid_utf8_output_decodes(provider: DirSandboxProvider) -> None:
    code = ("import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe \\xc3'); "
            "sys.stderr.buffer.write(b'\\x80')")

    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            res = await sb.exec(["python3", "-c", code])
            assert res.ok
            assert res.stdout.startswith("ok ") and "\ufffd" in res.stdout
            assert res.stderr == "\ufffd"

    asyncio.run(main())


def test_stdin_env_and_exit_codes(provider: DirSandboxProvider) -> None:
    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            res = await sb.exec(["cat"], stdin=b"x" * 300_000)
            assert res.ok and len(res.stdout) == 300_000
            res = await sb.exec(["sh", "-c", "echo $GREETING; exit 3"], env={"GREETING": "hi"})
            assert res.exit_code == 3 and res.stdout == "hi\n" and not res.ok
            res = await sb.exec(["no-such-program-xyz"])
            assert res.exit_code == 127 and not res.ok
            res = await sb.exec(["sh", "-c", "kill -TERM $$"])
            assert res.exit_code is None and res.signal == signal.SIGTERM

    asyncio.run(main())


def test_pids_cgroup_alone_bounds_processes(base_dir: Path) -> None:
    """Where the host lets us create pids cgroups, the cgroup holds even without RLIMIT_NPROC."""
    provider = LocalSandboxProvider(base_dir, use_cgroups=True)
    if "pids-cgroup" not in provider.process_limit_mechanism:
        pytest.skip("pids cgroups (v1) are not writable here")

    async def main() -> list[Path]:
        sb = await provider.create(SandboxLimits(max_processes=20))
        assert isinstance(sb, DirSandbox)
        cgroup = sb._alloc.cgroups
        assert cgroup is not None
        # Lift the rlimit so only the cgroup is left to stop the bomb.
        hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        unlimited = 1_000_000 if hard == resource.RLIM_INFINITY else hard
        sb._alloc.setup = dataclasses.replace(sb._alloc.setup, nproc=unlimited)
        try:
            res = await sb.exec(["python3", "-c", FORK_BOMB], timeout_s=8)
            assert 0 < int(res.stdout) < 20, res
        finally:
            await sb.close()
        return cgroup.dirs

    dirs = asyncio.run(main())
    assert dirs and not any(d.exists() for d in dirs)


def test_cancelled_exec_kills_its_processes(provider: DirSandboxProvider) -> None:
    """The attempt runner wraps agents in ``asyncio.wait_for``: a cancelled exec leaves nothing."""
    script = ("import time\nwhile True:\n    open('beat', 'a').write('x')\n    time.sleep(0.05)\n")

    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(sb.exec(["python3", "-c", script], timeout_s=60), 1.0)
            await asyncio.sleep(0.2)
            size = (sb.host_dir / "beat").stat().st_size
            assert size > 0
            await asyncio.sleep(0.4)
            assert (sb.host_dir / "beat").stat().st_size == size
            if sb.uid is not None:
                assert live_pids(sb.uid) == []

    asyncio.run(main())
