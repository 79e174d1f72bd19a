"""Files in and out of a sandbox, and its removal."""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalfleet.errors import InfraError, SpecError
from evalfleet.sandbox import SandboxLimits
from evalfleet.sandbox._common import DirSandboxProvider


@pytest.fixture
def outside_file() -> Iterator[Path]:
    """A file outside every sandbox that a symlink planted by sandboxed code will point to."""
    d = Path(tempfile.mkdtemp(prefix="evalfleet-outside-"))
    f = d / "target.txt"
    f.write_text("original")
    yield f
    f.unlink(missing_ok=True)
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


@pytest.mark.parametrize("bad", ["../x", "/etc/evalfleet-x", "a/../../x", "", "."])
def test_write_files_refuses_paths_that_escape(provider: DirSandboxProvider, bad: str) -> None:
    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            with pytest.raises(SpecError):
                await sb.write_files({bad: "x"})
            with pytest.raises(SpecError):
                await sb.read_file(bad)
            assert not (sb.host_dir.parent / "x").exists()
            assert not (sb.host_dir.parent.parent / "x").exists()

    asyncio.run(main())
    assert not Path("/etc/evalfleet-x").exists()


def test_files_round_trip_and_belong_to_the_sandbox(provider: DirSandboxProvider) -> None:
    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            await sb.write_files({"a/b/c.txt": "hello", "bin.dat": b"\x00\xff", "top.txt": "1"})
            await sb.write_files({"top.txt": "2"})  # replaced, not appended
            res = await sb.exec(["sh", "-c", "cat a/b/c.txt && echo more >> a/b/c.txt && "
                                             "touch a/b/new && cat top.txt"])
            assert res.ok, res
            assert res.stdout == "hello2"
            assert await sb.read_file("a/b/c.txt") == b"hellomore\n"
            assert await sb.read_file("bin.dat") == b"\x00\xff"
            assert await sb.read_file("a/b/c.txt", max_bytes=3) == b"hel"
            with pytest.raises(FileNotFoundError):
                await sb.read_file("missing.txt")
            with pytest.raises(InfraError):
                await sb.read_file("a/b")  # a directory

    asyncio.run(main())


def test_write_files_refuses_symlinks_planted_by_the_code(provider: DirSandboxProvider,
                                                          outside_file: Path) -> None:
    outside_dir = outside_file.parent

    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            res = await sb.exec(["sh", "-c", f"ln -s {outside_dir} evil_dir && "
                                             f"ln -s {outside_file} evil_file && mkfifo fifo"])
            assert res.ok, res
            with pytest.raises(InfraError, match="symlink"):
                await sb.write_files({"evil_dir/planted.txt": "pwned"})
            assert not (outside_dir / "planted.txt").exists()
            # A link in the last position is replaced by a regular file, never written through.
            await sb.write_files({"evil_file": "mine"})
            assert not (sb.host_dir / "evil_file").is_symlink()
            assert (sb.host_dir / "evil_file").read_text() == "mine"
            # Reading through links is refused too, and a FIFO neither blocks nor is read.
            with pytest.raises(InfraError):
                await sb.read_file("evil_dir/target.txt")
            await sb.exec(["ln", "-sf", str(outside_file), "evil_file"])
            with pytest.raises(InfraError, match="symlink"):
                await sb.read_file("evil_file")
            with pytest.raises(InfraError, match="regular"):
                await asyncio.wait_for(sb.read_file("fifo"), 5)
            await asyncio.wait_for(sb.write_files({"fifo": "x"}), 5)
            assert (sb.host_dir / "fifo").read_text() == "x"

    asyncio.run(main())
    assert outside_file.read_text() == "original"


def test_close_removes_the_directory_even_if_made_read_only(
        provider: DirSandboxProvider) -> None:
    async def main() -> None:
        sb = await provider.create(SandboxLimits())
        root = sb.host_dir.parent
        res = await sb.exec(["sh", "-c", "mkdir -p ro/a/b && touch ro/a/b/f ro/g && "
                                         "chmod -R a-w ro && chmod 0 ro/a && chmod 0 ro/g"])
        assert res.ok, res
        assert root.exists()
        await sb.close()
        assert not root.exists()
        await sb.close()  # idempotent
        with pytest.raises(InfraError, match="closed"):
            await sb.exec(["true"])

    asyncio.run(main())


def test_many_sandboxes_at_once(provider: DirSandboxProvider) -> None:
    async def one(i: int) -> Path:
        async with await provider.create(SandboxLimits()) as sb:
            await sb.write_files({"i.txt": str(i)})
            res = await sb.exec(["cat", "i.txt"])
            assert res.stdout == str(i)
            return sb.host_dir.parent

    async def main() -> None:
        roots = await asyncio.gather(*(one(i) for i in range(12)))
        assert len(set(roots)) == 12
        assert not any(r.exists() for r in roots)

    asyncio.run(main())


def test_read_file_refuses_a_hard_link_to_a_host_file(isolated: DirSandboxProvider,
                                                      outside_file: Path) -> None:
    """The driver reads as root: a hard link to a host file (which the kernel's
    protected_hardlinks normally stops sandboxed code from making) must not leak it."""

    async def main() -> None:
        async with await isolated.create(SandboxLimits()) as sb:
            if sb.uid is None:
                pytest.skip("commands run as the driver's own user here")
            try:
                os.link(outside_file, sb.host_dir / "linked.txt")
            except OSError as exc:
                # The sandbox's disk is a tmpfs of its own: no host file can be linked in.
                assert exc.errno == errno.EXDEV
            else:
                with pytest.raises(InfraError, match="owned by uid"):
                    await sb.read_file("linked.txt")
            await sb.exec(["sh", "-c", "echo mine > own.txt"])
            assert await sb.read_file("own.txt") == b"mine\n"

    asyncio.run(main())
