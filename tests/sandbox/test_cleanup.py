"""Sandboxes left behind by a driver that crashed are removed by the next one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from evalfleet.errors import InfraError
from evalfleet.sandbox import BwrapSandboxProvider, LocalSandboxProvider, SandboxLimits
from evalfleet.sandbox._common import DirSandboxProvider
from evalfleet.sandbox._host import live_pids

from .conftest import IS_ROOT

CRASHING_DRIVER = """
import asyncio, os, sys
from evalfleet.errors import InfraError
from evalfleet.sandbox import BwrapSandboxProvider, LocalSandboxProvider, SandboxLimits

async def main():
    kind = BwrapSandboxProvider if sys.argv[2] == "bwrap" else LocalSandboxProvider
    sb = await kind(sys.argv[1]).create(SandboxLimits())
    # A process that escapes the command's process group, still running when the driver dies.
    res = await sb.exec(["sh", "-c", "setsid sleep 300 >/dev/null 2>&1 </dev/null &"])
    assert res.ok, res
    print(sb.host_dir.parent, sb.uid, flush=True)
    os._exit(0)  # no close(): a crash

asyncio.run(main())
"""


def test_a_crashed_drivers_sandboxes_are_swept(provider: DirSandboxProvider,
                                               base_dir: Path) -> None:
    base = base_dir / f"crash-{provider.name}"
    base.mkdir()
    out = subprocess.run([sys.executable, "-c", CRASHING_DRIVER, str(base), provider.name],
                         capture_output=True, text=True, check=True, timeout=60).stdout.split()
    root, uid = Path(out[0]), (None if out[1] == "None" else int(out[1]))
    assert root.is_dir()
    kind = BwrapSandboxProvider if provider.name == "bwrap" else LocalSandboxProvider

    async def main() -> None:
        # Starting a provider on the base directory sweeps it.
        async with await kind(base).create(SandboxLimits()) as live:
            if uid is not None:
                assert live_pids(uid) == []
            # A sandbox whose driver is alive (this one) is left alone.
            assert kind(base).available()
            assert live.host_dir.is_dir()

    asyncio.run(main())
    assert not root.exists()


SPILL = """
import os, sys
for d in ("/tmp", "/var/tmp", "/dev/shm"):
    p = os.path.join(d, sys.argv[1])
    os.makedirs(os.path.join(p, "sub"), exist_ok=True)  # /tmp may be /var/tmp here
    os.chmod(os.path.join(p, "sub"), 0o700)
    open(os.path.join(p, "sub", "f"), "w").write("x")
    os.chmod(os.path.join(p, "sub"), 0o500)
"""


def test_local_close_removes_what_the_code_left_in_shared_scratch(
        providers: dict[str, DirSandboxProvider]) -> None:
    if not IS_ROOT:
        pytest.skip("without a uid of its own, a local sandbox's files cannot be told apart")
    name = f"evalfleet-spill-{os.getpid()}"

    async def main() -> None:
        async with await providers["local"].create(SandboxLimits()) as sb:
            res = await sb.exec(["python3", "-c", SPILL, name])
            assert res.ok, res

    asyncio.run(main())
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        assert not os.path.exists(os.path.join(d, name))


def test_a_sweeping_driver_never_removes_a_sandbox_being_created(
        provider: DirSandboxProvider, base_dir: Path) -> None:
    """Two drivers share a base directory: one sweeps again and again while the other creates
    sandboxes and runs commands in them; no sandbox of the living driver disappears."""
    base = base_dir / f"race-{provider.name}"
    base.mkdir()
    kind = BwrapSandboxProvider if provider.name == "bwrap" else LocalSandboxProvider
    creator, sweeper = kind(base), kind(base)
    assert creator.available() and sweeper.available()
    stop = threading.Event()
    sweeps = [0]

    def sweep() -> None:
        while not stop.is_set():
            sweeper._host.sweep_stale()
            sweeps[0] += 1

    async def main() -> None:
        for i in range(150):
            async with await creator.create(SandboxLimits()) as sb:
                await sb.write_files({"n": str(i)})
                res = await sb.exec(["cat", "n"])
                assert res.ok and res.stdout == str(i), (i, res)

    t = threading.Thread(target=sweep, daemon=True)
    t.start()
    try:
        asyncio.run(main())
    finally:
        stop.set()
        t.join()
    assert sweeps[0] > 10


def test_a_probe_that_fails_once_is_retried(base_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe can lose a race with another driver's sweep; that must not disable the provider
    for the whole eval."""
    provider = LocalSandboxProvider(base_dir)
    real = provider._probe
    calls = []

    def flaky() -> str:
        calls.append(1)
        return "its directory vanished" if len(calls) == 1 else real()

    monkeypatch.setattr(provider, "_probe", flaky)
    assert provider.available(), provider.unavailable_reason
    assert len(calls) == 2


def test_drivers_with_different_base_dirs_never_share_a_uid(base_dir: Path) -> None:
    """A uid per sandbox is what keeps sandboxes apart; two base directories must not hand out
    the same one at once (one uid in the range: the second driver must wait for it)."""
    if not IS_ROOT:
        pytest.skip("sandboxes run as the driver's own user when not root")
    uids = (1_999_999_000 + os.getpid() % 900, 1)
    a = LocalSandboxProvider(base_dir / "base-a", uid_range=uids)
    b = LocalSandboxProvider(base_dir / "base-b", uid_range=uids)
    assert a.available() and b.available()

    async def main() -> None:
        async with await a.create(SandboxLimits()) as first:
            assert first.uid == uids[0]
            with pytest.raises(InfraError, match="no free sandbox uid"):
                await b.create(SandboxLimits())
        async with await b.create(SandboxLimits()) as second:
            assert second.uid == uids[0]
            assert (await second.exec(["true"])).ok

    asyncio.run(main())


def test_an_attempts_lazy_sandbox_is_made_once_and_never_left_open(
        provider: DirSandboxProvider) -> None:
    """Two callers asking at once (an agent's parallel tool calls) get one sandbox; a sandbox
    whose making outlasts the attempt's end is closed and refused, not handed out (before the
    lock, the first case made two and the second left one open: tried)."""
    from evalfleet.errors import AgentError
    from evalfleet.sandbox.lazy import LazySandbox

    made: list[Any] = []

    async def make() -> Any:
        await asyncio.sleep(0.05)  # provisioning takes a while: set-up, files
        sb = await provider.create(SandboxLimits())
        made.append(sb)
        return sb

    async def main() -> None:
        lazy = LazySandbox(make)
        first, second = await asyncio.gather(lazy.get(), lazy.get())
        assert first is second and len(made) == 1
        await lazy.close()
        late = LazySandbox(make)
        asking = asyncio.create_task(late.get())
        await asyncio.sleep(0.01)
        await late.close()  # the attempt ends while its sandbox is being made
        with pytest.raises(AgentError, match="after the attempt ended"):
            await asking
        assert late.created is None and len(made) == 2

    asyncio.run(main())
    assert [sb.host_dir.exists() for sb in made] == [False, False]
