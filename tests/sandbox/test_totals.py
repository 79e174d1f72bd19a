"""Limits that hold for the whole sandbox: memory, disk, System V IPC, privileges, network."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import pytest

from evalfleet.sandbox import LocalSandboxProvider, SandboxLimits
from evalfleet.sandbox._common import DirSandbox, DirSandboxProvider

from .conftest import CONNECT, IS_ROOT

TEN_CHILDREN = """
import subprocess, sys
CHILD = '''
import sys, time
open('/proc/self/oom_score_adj', 'w').write('1000')  # the OOM killer picks a child, not us
block = bytearray(int(sys.argv[1]) * 2**20)
for i in range(0, len(block), 4096):
    block[i] = 1  # touch every page: resident, charged
print('held', flush=True)
time.sleep(1)
'''
kids = [subprocess.Popen([sys.executable, '-c', CHILD, sys.argv[1]], stdout=subprocess.PIPE)
        for _ in range(10)]
held = sum(1 for k in kids if k.communicate()[0] == b'held\\n' and k.returncode == 0)
print(held)
"""


def _requires(sb: DirSandbox, aspect: str) -> None:
    if aspect not in sb.isolation:
        pytest.skip(f"this host cannot enforce {aspect} ({sb.isolation})")


def test_ten_children_cannot_hold_more_than_the_memory_total(
        provider: DirSandboxProvider) -> None:
    """Each child stays under the per-process limit; together they would hold 2.3x the total."""
    async def main() -> None:
        async with await provider.create(SandboxLimits(memory_mb=256)) as sb:
            _requires(sb, "memory:cgroup")
            res = await sb.exec(["python3", "-c", TEN_CHILDREN, "60"], timeout_s=60)
            assert res.ok, res
            held = int(res.stdout)
            assert held * 60 <= 256, f"{held} children held 60 MB each under a 256 MB total"
            assert "reached its memory limit" in res.stderr, res
            # Control: a share that fits is held by every child.
            res = await sb.exec(["python3", "-c", TEN_CHILDREN, "8"], timeout_s=60)
            assert res.ok and int(res.stdout) == 10, res

    asyncio.run(main())


MANY_FILES = """
import os, sys
written = 0
try:
    for i in range(40):  # 40 files of 2 MB: 80 MB, 2.5x the total, each under file_size_mb
        d = (os.getcwd(), os.environ['HOME'], os.environ['TMPDIR'], '/tmp', '/var/tmp')[i % 5]
        with open(os.path.join(d, f'f{i}'), 'wb') as f:
            for _ in range(2):
                f.write(b'x' * 2**20)
                f.flush()
                written += 1
except OSError as exc:
    print(written, exc.strerror)
else:
    print(written, 'all written')
"""


def test_many_files_cannot_exceed_the_disk_total(provider: DirSandboxProvider) -> None:
    async def main() -> None:
        limits = SandboxLimits(disk_mb=32, file_size_mb=4)
        async with await provider.create(limits) as sb:
            _requires(sb, "disk:tmpfs")
            res = await sb.exec(["python3", "-c", MANY_FILES], timeout_s=60)
            assert res.ok, res
            written, _, why = res.stdout.strip().partition(" ")
            assert why == "No space left on device", res
            assert int(written) <= 32
            # What the run wrote is still there and the sandbox still works for small things.
            assert (await sb.read_file("f0", max_bytes=4 * 2**20)) == b"x" * 2 * 2**20
            small = await sb.exec(["sh", "-c", "rm -f f0 f3 && echo ok > small && cat small"])
            assert small.ok and small.stdout == "ok\n", small

    asyncio.run(main())


SHM = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.shmget.restype = ctypes.c_int
libc.shmat.restype = ctypes.c_void_p
shmid = libc.shmget(int(sys.argv[1]), 8 * 2**20, 0o1000 | 0o666)  # IPC_CREAT, left behind
assert shmid >= 0, ctypes.get_errno()
addr = libc.shmat(shmid, None, 0)
ctypes.memset(addr, 1, 8 * 2**20)
print(shmid)
"""


def _host_shm_keys() -> set[int]:
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(line.split()[0]) for line in lines}


def test_sysv_shared_memory_does_not_outlive_the_sandbox(provider: DirSandboxProvider) -> None:
    key = 0x5EED0000 + (os.getpid() * 2 + (provider.name == "bwrap")) % 0xFFFF

    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            _requires(sb, "ipc:namespace")
            res = await sb.exec(["python3", "-c", SHM, str(key)])
            assert res.ok, res
            # The segment lived in the command's own IPC namespace: the host never had it.
            assert key not in _host_shm_keys()

    try:
        asyncio.run(main())
        assert key not in _host_shm_keys()
    finally:  # a failure must not leave the segment's memory held on the host
        subprocess.run(["ipcrm", "-M", str(key)], capture_output=True, check=False)


def test_posix_shared_memory_stays_inside_the_command(provider: DirSandboxProvider) -> None:
    name = f"evalfleet-posix-shm-{os.getpid()}-{provider.name}"
    host = Path("/dev/shm") / name

    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            _requires(sb, "ipc:namespace")
            res = await sb.exec(["sh", "-c", f"head -c 4096 /dev/zero > /dev/shm/{name} && "
                                             f"ls /dev/shm/{name}"])
            assert res.ok, res
            # Not on the host's /dev/shm, even while the sandbox is still open.
            assert not host.exists()

    try:
        asyncio.run(main())
    finally:
        host.unlink(missing_ok=True)


def test_commands_cannot_gain_privileges(provider: DirSandboxProvider) -> None:
    have_su = Path("/usr/bin/su").exists()

    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            res = await sb.exec(["cat", "/proc/self/status"])
            assert res.ok, res
            assert re.search(r"^NoNewPrivs:\s+1$", res.stdout, re.M), res.stdout
            if sb.uid is not None and have_su:
                # setuid su would run as root; with no_new_privs it cannot switch users.
                su = await sb.exec(["/usr/bin/su", "-c", "id -u", "root"], stdin=b"",
                                   timeout_s=10)
                assert su.stdout.strip() != "0", su

    asyncio.run(main())



OWN_LOOPBACK = """
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname(), timeout=3)
conn, _ = srv.accept(); conn.sendall(b"own"); print(c.recv(3).decode())
"""


def test_no_network_where_the_provider_says_it_isolates(provider: DirSandboxProvider,
                                                        tcp_server: int) -> None:
    if not provider.isolates_network:
        pytest.skip("this provider cannot isolate the network here (it says so)")

    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            assert "network:none" in sb.isolation
            res = await sb.exec(["python3", "-c", CONNECT, str(tcp_server)], timeout_s=10)
            assert res.exit_code == 1 and "hello" not in res.stdout, res
            # Its own loopback works: servers inside a run can be tested.
            own = await sb.exec(["python3", "-c", OWN_LOOPBACK], timeout_s=10)
            assert own.ok and own.stdout == "own\n", own
        async with await provider.create(SandboxLimits(network=True)) as sb:
            assert "network:open" in sb.isolation
            res = await sb.exec(["python3", "-c", CONNECT, str(tcp_server)], timeout_s=10)
            assert res.ok and res.stdout.strip() == "hello", res

    asyncio.run(main())


def test_isolation_names_what_holds(provider: DirSandboxProvider) -> None:
    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            aspects = dict(part.split(":", 1) for part in sb.isolation.split(","))
            assert set(aspects) == {"memory", "pids", "disk", "network", "ipc", "fs",
                                    "privileges"}
            if IS_ROOT and sb.provider == "local":
                assert aspects["network"] == "none" and aspects["ipc"] == "namespace"
            if sb.provider == "bwrap":
                assert aspects["fs"] == "private" and aspects["network"] == "none"

    asyncio.run(main())


def test_a_host_that_cannot_enforce_a_total_says_so(base_dir: Path) -> None:
    """Without cgroups the memory limit is per process: the warnings and the run row say so."""
    provider = LocalSandboxProvider(base_dir, use_cgroups=False)
    assert any("memory_mb holds per process" in w for w in provider.warnings), provider.warnings

    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            assert "memory:rlimit-per-process" in sb.isolation

    asyncio.run(main())
