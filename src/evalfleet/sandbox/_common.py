"""What every directory-backed sandbox shares: files, exec, close, and the provider skeleton."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from evalfleet.errors import InfraError, SpecError
from evalfleet.sandbox import _files
from evalfleet.sandbox._host import DEFAULT_UID_RANGE, Allocation, Host
from evalfleet.sandbox._process import RawResult, run_command, to_exec_result
from evalfleet.sandbox.base import ExecResult, SandboxLimits

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def sandbox_env(*, home: str, tmpdir: str, extra: Mapping[str, str] | None,
                bin_dir: str | None = None) -> dict[str, str]:
    """The allow-listed environment plus ``extra``; nothing is inherited from the driver.

    ``bin_dir`` (default: this interpreter's) comes first on PATH, so ``python3`` is that one.
    """
    env = {
        "PATH": f"{bin_dir or os.path.dirname(sys.executable)}:{SYSTEM_PATH}",
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
        isolation: What the sandbox enforces (see :class:`~evalfleet.sandbox.base.Sandbox`).
    """

    def __init__(self, *, provider: str, host: Host, alloc: Allocation, limits: SandboxLimits,
                 workdir: str, home: str, tmpdir: str, outdir: str,
                 prefix: Sequence[str] = (), isolation: Sequence[str] = (),
                 signal_from_status: bool = False) -> None:
        self.provider = provider
        self.workdir = workdir
        self.host_dir = alloc.work
        self.outdir = outdir
        self.limits = limits
        self.uid = alloc.uid
        self.process_limit_mechanism = alloc.process_limit_mechanism
        self.isolation = ",".join([*alloc.isolation, *isolation])
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
        full_env = self._env(env)
        cgroups = self._alloc.cgroups
        ooms = cgroups.oom_kills() if cgroups is not None else 0
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
        result = self._interpret(raw)
        if cgroups is not None and cgroups.oom_kills() > ooms:
            # Say why a process died: a bare SIGKILL would look like a crash of the code.
            note = (f"\nevalfleet: the sandbox reached its memory limit ({self.limits.memory_mb} MB"
                    f" for all its processes and files together); the kernel killed a process\n")
            result = dataclasses.replace(result, stderr=result.stderr + note)
        return result

    def _env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        interp = self._host.interpreter
        return sandbox_env(home=self._home, tmpdir=self._tmpdir, extra=extra,
                           bin_dir=interp.bin_dir if interp else None)

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
    """Skeleton of a provider: one :class:`Host`, an availability probe, ``create``.

    Args:
        base_dir: Parent of the sandbox directories (default ``$TMPDIR/evalfleet-sandboxes``).
            Several drivers may share one.
        uid_range: ``(first, count)`` of the uids given to sandboxes when running as root.
        use_cgroups: Put each sandbox in a memory and a pids cgroup of its own where the host
            lets us, so ``memory_mb`` and ``max_processes`` hold for all its processes together
            (joining costs the child well under a millisecond on recent kernels).
        python: The interpreter that sandboxed commands get as ``python3`` (default: the one
            running evalfleet); its installation is made visible read-only.
        hidden_paths: More directories sandboxed code must not read, e.g. the evalfleet home
            with other evals' journals. The interpreter's site-packages and the evalfleet
            package itself are always hidden.
        site_packages: Opt in to showing the interpreter's third-party packages to sandboxed
            code, for tasks that need them; they may hold benchmark data (HumanEval's
            canonical solutions are installed there).
    """

    name: str = ""
    extra_procs = 0
    """Processes the wrapper itself holds per command (counted against the limits)."""
    child_namespaces = False
    """Whether the child of each command enters (as root) mount, IPC and network namespaces
    made here rather than by a wrapper."""
    PROBE_TRIES = 3
    """A failed probe is retried: it can fail for a passing reason (another driver's sweep)."""

    def __init__(self, base_dir: str | os.PathLike[str] | None = None, *,
                 uid_range: tuple[int, int] = DEFAULT_UID_RANGE, use_cgroups: bool = True,
                 python: str | None = None, hidden_paths: Sequence[str | os.PathLike[str]] = (),
                 site_packages: bool = False) -> None:
        self._host = Host(base_dir, uid_range=uid_range, use_cgroups=use_cgroups, python=python,
                          hidden_paths=hidden_paths, site_packages=site_packages,
                          child_namespaces=self.child_namespaces)
        self._available: bool | None = None
        self._notes: list[str] = []
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

    @property
    def warnings(self) -> list[str]:
        """What this provider cannot enforce here; see :class:`SandboxProvider`."""
        if not self.available():
            return [*self._notes, f"the {self.name} sandbox does not work here: "
                                  f"{self.unavailable_reason}"]
        return [*self._notes, *(f"{self.name} sandbox: {w}" for w in self._host.warnings),
                *(f"{self.name} sandbox: {w}" for w in self._own_warnings())]

    def add_warning(self, text: str) -> None:
        """Record a fact about how this provider was chosen (e.g. a fallback), shown first."""
        self._notes.append(text)

    @property
    def isolates_network(self) -> bool:
        """Whether ``network=False`` is enforced here."""
        return False

    def _own_warnings(self) -> list[str]:
        return []

    def _wrap(self, alloc: Allocation, limits: SandboxLimits) -> DirSandbox:
        raise NotImplementedError

    def _precheck(self) -> str:
        """A reason this provider cannot work here, or ``""``."""
        return ""

    def available(self) -> bool:
        """Whether a command actually runs in a sandbox of this kind here.

        Probed until it works or has failed :attr:`PROBE_TRIES` times in a row; the verdict is
        then kept.
        """
        if self._available is None:
            reason = self._precheck()
            if not reason:
                for attempt in range(self.PROBE_TRIES):
                    reason = self._probe()
                    if not reason:
                        break
                    time.sleep(0.05 * (attempt + 1))
            self.unavailable_reason = reason
            self._available = not reason
        return self._available

    def _probe(self) -> str:
        try:
            alloc = self._host.allocate(SandboxLimits(), extra_procs=self.extra_procs)
        except (InfraError, OSError) as exc:
            return str(exc)
        try:
            sb = self._wrap(alloc, alloc.setup.limits)
            proc = subprocess.run([*sb._prefix, "true"], cwd=alloc.work, check=False,
                                  env=sb._env(None), preexec_fn=alloc.setup.preexec(),
                                  capture_output=True, timeout=30)
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
