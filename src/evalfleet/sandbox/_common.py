"""What every directory-backed sandbox shares: files, exec, close, and the provider skeleton."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from evalfleet.errors import InfraError, SpecError
from evalfleet.sandbox import _files
from evalfleet.sandbox._host import DEFAULT_UID_RANGE, Allocation, Host
from evalfleet.sandbox._process import RawResult, run_command, to_exec_result
from evalfleet.sandbox.base import ExecResult, SandboxLimits

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def sandbox_env(*, home: str, tmpdir: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    """The allow-listed environment plus ``extra``; nothing is inherited from the driver."""
    env = {
        "PATH": f"{os.path.dirname(sys.executable)}:{SYSTEM_PATH}",
        "HOME": home,
        "TMPDIR": tmpdir,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    for key, value in (extra or {}).items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise SpecError(f"invalid environment variable {key!r}", field="env")
        env[key] = value
    return env


class DirSandbox:
    """A sandbox backed by a host directory; providers differ only in how a command is wrapped.

    Attributes:
        provider: The provider's name.
        workdir: The working directory as commands see it.
        host_dir: The same directory on the host.
        uid: The uid commands run as, or None when they run as the driver's own user.
        process_limit_mechanism: What bounds the number of processes (see ``Allocation``).
    """

    def __init__(self, *, provider: str, host: Host, alloc: Allocation, limits: SandboxLimits,
                 workdir: str, home: str, tmpdir: str, outdir: str,
                 prefix: Sequence[str] = (),
                 signal_from_status: bool = False) -> None:
        self.provider = provider
        self.workdir = workdir
        self.host_dir = alloc.work
        self.outdir = outdir
        self.limits = limits
        self.uid = alloc.uid
        self.process_limit_mechanism = alloc.process_limit_mechanism
        self._host = host
        self._alloc = alloc
        self._home = home
        self._tmpdir = tmpdir
        self._prefix = tuple(prefix)
        self._signal_from_status = signal_from_status
        self._groups: set[int] = set()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise InfraError("the sandbox is closed")

    async def write_files(self, files: Mapping[str, str | bytes]) -> None:
        """Create or replace files under ``host_dir`` (see :func:`_files.write_files`)."""
        self._check_open()
        await asyncio.to_thread(_files.write_files, self.host_dir, files, self.uid)

    async def read_file(self, path: str, max_bytes: int = 1_000_000) -> bytes:
        """At most ``max_bytes`` of a regular file; FileNotFoundError if it does not exist."""
        self._check_open()
        return await asyncio.to_thread(_files.read_file, self.host_dir, path, max_bytes,
                                       self.uid)

    async def read_output(self, name: str, max_bytes: int = 16_000_000) -> bytes:
        """A file of the outbox; see :class:`Sandbox`."""
        self._check_open()
        return await asyncio.to_thread(_files.read_file, self._alloc.out, name, max_bytes,
                                       self.uid)

    async def exec(self, argv: Sequence[str], *, stdin: bytes | None = None,
                   timeout_s: float = 60.0, env: Mapping[str, str] | None = None) -> ExecResult:
        """Run ``argv`` in ``workdir`` under the limits; see :class:`Sandbox`.

        A program that does not exist gives exit code 127, one that cannot be executed 126.
        """
        self._check_open()
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise SpecError(f"a command must be a non-empty list of strings, not {argv!r}")
        if not timeout_s > 0:
            raise SpecError(f"timeout_s must be positive, not {timeout_s!r}")
        full_env = sandbox_env(home=self._home, tmpdir=self._tmpdir, extra=env)
        try:
            raw = await run_command([*self._prefix, *argv], cwd=str(self.host_dir),
                                    env=full_env, stdin=stdin, timeout_s=timeout_s,
                                    max_output_bytes=self.limits.max_output_bytes,
                                    setup=self._alloc.setup, groups=self._groups)
        except FileNotFoundError:
            return ExecResult(exit_code=127, stdout="", duration_s=0.0,
                              stderr=f"{argv[0]}: command not found\n")
        except PermissionError as exc:
            return ExecResult(exit_code=126, stdout="", duration_s=0.0,
                              stderr=f"{argv[0]}: {exc.strerror}\n")
        return self._interpret(raw)

    def _interpret(self, raw: RawResult) -> ExecResult:
        return to_exec_result(raw, signal_from_status=self._signal_from_status)

    async def kill_all(self) -> None:
        """Kill every process of the sandbox and wait for them; see :class:`Sandbox`."""
        self._check_open()
        await asyncio.to_thread(self._host.kill_processes, self._alloc, set(self._groups))

    async def snapshot(self, *, max_files: int = 10_000,
                       max_bytes: int = 256 * 1024 * 1024) -> dict[str, bytes]:
        """The working directory's regular files; see :class:`Sandbox`."""
        self._check_open()
        return await asyncio.to_thread(_files.snapshot_tree, self.host_dir, owner=self.uid,
                                       max_files=max_files, max_bytes=max_bytes)

    async def close(self) -> None:
        """Kill every process the sandbox still has and delete its directory; idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._host.release, self._alloc, set(self._groups))

    async def __aenter__(self) -> DirSandbox:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


class DirSandboxProvider:
    """Skeleton of a provider: one :class:`Host`, an availability probe, ``create``."""

    name: str = ""
    extra_procs = 0
    """Processes the wrapper itself holds per command (counted against the limits)."""

    def __init__(self, base_dir: str | os.PathLike[str] | None = None, *,
                 uid_range: tuple[int, int] = DEFAULT_UID_RANGE, use_cgroups: bool = False) -> None:
        self._host = Host(base_dir, uid_range=uid_range, use_cgroups=use_cgroups)
        self._available: bool | None = None
        self.unavailable_reason = ""
        """Why :meth:`available` said False."""

    @property
    def base_dir(self) -> Path:
        """Where this provider's sandboxes are created."""
        return self._host.base_dir

    @property
    def process_limit_mechanism(self) -> str:
        """What bounds the number of processes in new sandboxes (see ``Allocation``)."""
        return self._host.process_limit_mechanism()

    def _wrap(self, alloc: Allocation, limits: SandboxLimits) -> DirSandbox:
        raise NotImplementedError

    def _precheck(self) -> str:
        """A reason this provider cannot work here, or ``""``."""
        return ""

    def available(self) -> bool:
        """Whether a command actually runs in a sandbox of this kind here (probed once)."""
        if self._available is None:
            self.unavailable_reason = self._precheck() or self._probe()
            self._available = not self.unavailable_reason
        return self._available

    def _probe(self) -> str:
        try:
            alloc = self._host.allocate(SandboxLimits(), extra_procs=self.extra_procs)
        except (InfraError, OSError) as exc:
            return str(exc)
        try:
            sb = self._wrap(alloc, alloc.setup.limits)
            proc = subprocess.run([*sb._prefix, "true"], cwd=alloc.work, check=False,
                                  env=sandbox_env(home=sb._home, tmpdir=sb._tmpdir, extra=None),
                                  preexec_fn=alloc.setup.preexec(), capture_output=True,
                                  timeout=30)
            if proc.returncode != 0:
                return (f"a test command failed (exit {proc.returncode}): "
                        f"{proc.stderr.decode(errors='replace').strip()[:500]}")
        except (OSError, subprocess.SubprocessError) as exc:
            return f"a test command could not start: {exc}"
        finally:
            with contextlib.suppress(InfraError, OSError):  # the verdict stands either way
                self._host.release(alloc, set())
        return ""

    async def create(self, limits: SandboxLimits) -> DirSandbox:
        """A fresh, empty sandbox.

        Raises:
            InfraError: this provider does not work here, or the host refused resources.
        """
        if not self.available():
            raise InfraError(f"the {self.name} sandbox provider is unavailable: "
                             f"{self.unavailable_reason}")
        try:
            alloc = self._host.allocate(limits, extra_procs=self.extra_procs)
        except OSError as exc:
            raise InfraError(f"cannot create a {self.name} sandbox: {exc}") from exc
        return self._wrap(alloc, limits)
