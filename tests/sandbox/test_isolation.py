"""What sandboxed code must not see: other files, other sandboxes, secrets, the network."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalfleet.sandbox import SandboxLimits
from evalfleet.sandbox._common import DirSandboxProvider
from evalfleet.sandbox._mountns import interpreter_dirs

from .conftest import CONNECT

SECRET = "s3cr3t-planted-outside"


@pytest.fixture
def planted() -> Iterator[Path]:
    """A root-only file (mode 0600) in a world-traversable directory under /tmp."""
    d = Path(tempfile.mkdtemp(prefix="evalfleet-planted-"))
    d.chmod(0o755)
    f = d / "secret.txt"
    f.write_text(SECRET)
    f.chmod(0o600)
    yield f
    f.unlink()
    d.rmdir()


def _cat(path: str | Path) -> list[str]:
    return ["python3", "-c", "import sys; print(open(sys.argv[1]).read())", str(path)]


def test_cannot_read_root_only_file_outside(isolated: DirSandboxProvider, planted: Path) -> None:
    async def main() -> None:
        async with await isolated.create(SandboxLimits()) as sb:
            res = await sb.exec(_cat(planted))
            assert res.exit_code not in (0, None)
            assert SECRET not in res.stdout
            assert ("PermissionError" in res.stderr) or ("FileNotFoundError" in res.stderr)

    asyncio.run(main())


def test_cannot_read_another_sandboxes_dir(isolated: DirSandboxProvider) -> None:
    async def main() -> None:
        async with await isolated.create(SandboxLimits()) as a, \
                await isolated.create(SandboxLimits()) as b:
            await a.write_files({"mine.txt": SECRET})
            # The owner can read it: the file exists and the command works.
            assert (await a.exec(_cat("mine.txt"))).stdout.strip() == SECRET
            res = await b.exec(_cat(a.host_dir / "mine.txt"))
            assert not res.ok and SECRET not in res.stdout
            listing = await b.exec(["ls", str(a.host_dir)])
            assert not listing.ok and "mine.txt" not in listing.stdout

    asyncio.run(main())


@pytest.mark.skipif(not Path("/etc/shadow").exists(), reason="no /etc/shadow on this host")
def test_cannot_read_etc_shadow(provider: DirSandboxProvider) -> None:
    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            res = await sb.exec(["cat", "/etc/shadow"])
            assert res.exit_code == 1, res
            assert "Permission denied" in res.stderr
            assert "root:" not in res.stdout

    asyncio.run(main())


def test_api_key_in_the_drivers_environment_is_invisible(
        provider: DirSandboxProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")

    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            res = await sb.exec(["env"], env={"GIVEN": "by-caller"})
            assert res.ok
            assert "sk-secret" not in res.stdout and "OPENAI_API_KEY" not in res.stdout
            assert "GIVEN=by-caller" in res.stdout
            names = {line.split("=", 1)[0] for line in res.stdout.splitlines()}
            assert {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE",
                    "PYTHONUNBUFFERED"} <= names

    asyncio.run(main())


def test_drivers_environment_is_unreadable_through_proc(
        isolated: DirSandboxProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")

    async def main() -> None:
        async with await isolated.create(SandboxLimits()) as sb:
            res = await sb.exec(["cat", f"/proc/{os.getpid()}/environ"])
            assert not res.ok
            assert "sk-secret" not in res.stdout

    asyncio.run(main())


def test_the_drivers_command_line_is_invisible(isolated: DirSandboxProvider) -> None:
    """Other users' processes (the driver, other sandboxes) do not show in /proc."""
    async def main() -> None:
        async with await isolated.create(SandboxLimits()) as sb:
            res = await sb.exec(["cat", f"/proc/{os.getpid()}/cmdline"])
            assert not res.ok and "pytest" not in res.stdout, res
            res = await sb.exec(["python3", "-c", "import os; print(os.getpid() in "
                                                  "[int(p) for p in os.listdir('/proc') "
                                                  "if p.isdigit()])"])
            assert res.ok and res.stdout == "True\n", res

    asyncio.run(main())


def test_python3_is_this_interpreter(provider: DirSandboxProvider) -> None:
    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            res = await sb.exec(["python3", "-c", "import sys; print(sys.prefix)"])
            assert res.ok, res
            assert res.stdout.strip() == sys.prefix

    asyncio.run(main())




@pytest.mark.sandbox
def test_bwrap_has_no_network(bwrap: DirSandboxProvider, tcp_server: int) -> None:
    async def main() -> None:
        async with await bwrap.create(SandboxLimits()) as sb:
            res = await sb.exec(["python3", "-c", CONNECT, str(tcp_server)], timeout_s=10)
            assert res.exit_code == 1, res
            assert "hello" not in res.stdout
            assert "ConnectionRefusedError" in res.stderr or "OSError" in res.stderr
        # Control: with the network allowed the same command reaches the server.
        async with await bwrap.create(SandboxLimits(network=True)) as sb:
            res = await sb.exec(["python3", "-c", CONNECT, str(tcp_server)], timeout_s=10)
            assert res.ok and res.stdout.strip() == "hello", res

    asyncio.run(main())


LIST_DIRS = """
import json, os
out = {}
for d in ("/home", "/tmp", "/run", "/root"):
    out[d] = sorted(os.listdir(d)) if os.path.isdir(d) else None
print(json.dumps(out))
"""


@pytest.mark.sandbox
def test_bwrap_cannot_write_outside_its_dirs(bwrap: DirSandboxProvider) -> None:
    marker = f"evalfleet-escape-{os.getpid()}"
    targets = [f"/tmp/{marker}", f"/var/tmp/{marker}", f"/sandbox/{marker}",
               f"/home/sandbox/{marker}"]
    outside = ["/usr/x", "/etc/x", "/x", "/home/x", "/root/x", "/proc/x", "/dev/x"]
    script = ("import sys\nfor p in sys.argv[1:]:\n    try:\n        open(p, 'w').write('x')\n"
              "        print('wrote', p)\n    except OSError as e:\n        print('fail', p)\n")

    async def main() -> None:
        async with await bwrap.create(SandboxLimits()) as sb:
            res = await sb.exec(["python3", "-c", script, *targets, *outside])
            assert res.ok, res
            for p in targets:  # private, writable
                assert f"wrote {p}" in res.stdout
            for p in outside:
                assert f"fail {p}" in res.stdout
            assert (sb.host_dir / marker).exists()
            # The host's home directories, /run and other runs' files are not there at all.
            ls = await sb.exec(["python3", "-c", LIST_DIRS])
            assert ls.ok, ls
            seen = json.loads(ls.stdout)
            assert seen["/home"] == ["sandbox"]
            # an interpreter that lives under /tmp (a venv in a checkout there) is bound back
            # at its own path, so its top folder shows; nothing else of the host's /tmp does
            bound = {Path(d).parts[2] for d in interpreter_dirs()
                     if Path(d).parts[:2] == ("/", "tmp") and len(Path(d).parts) > 2}
            assert set(seen["/tmp"]) - bound == {marker}
            assert seen["/run"] is None
            # likewise an interpreter under /root (pyenv, or a venv whose base is there)
            under_root = {Path(d).parts[2] for d in interpreter_dirs()
                          if Path(d).parts[:2] == ("/", "root") and len(Path(d).parts) > 2}
            assert seen["/root"] is None or set(seen["/root"]) == under_root
            assert str(bwrap.base_dir) not in ls.stdout

    asyncio.run(main())
    # The writes to /tmp and /var/tmp went to the sandbox's own tmp, not the host's.
    assert not Path(f"/tmp/{marker}").exists()
    assert not Path(f"/var/tmp/{marker}").exists()


@pytest.mark.sandbox
def test_bwrap_shared_memory_is_bounded(bwrap: DirSandboxProvider) -> None:
    fill = ("import sys\nfor i in range(int(sys.argv[1])):\n"
            "    with open(f'/dev/shm/fill{i}', 'wb') as f:\n"
            "        for _ in range(32):\n            f.write(b'x' * 2**20)\n"
            "print('ok')")  # files of 32 MB, under the 64 MB file-size limit

    async def main() -> None:
        async with await bwrap.create(SandboxLimits(memory_mb=64)) as sb:
            small = await sb.exec(["python3", "-c", fill, "1"])
            assert small.ok and small.stdout == "ok\n", small
            big = await sb.exec(["python3", "-c", fill, "4"])
            # Refused by the tmpfs's size, or killed at the sandbox's memory total (shared
            # memory is charged to it).
            assert not big.ok and "ok" not in big.stdout, big
            assert "No space left" in big.stderr or big.signal == signal.SIGKILL, big

    asyncio.run(main())
