"""The sandbox interface: a private working directory in which commands run under limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Limits of one sandbox: totals over all its processes where the host can enforce them.

    ``memory_mb``, ``max_processes`` and ``disk_mb`` hold for the whole sandbox (every process
    of every command, together) where cgroups and tmpfs mounts are available; where they are not,
    the provider's ``warnings`` and each sandbox's ``isolation`` say what holds instead.
    """

    cpu_s: int = 60
    """CPU seconds per process (RLIMIT_CPU)."""
    memory_mb: int = 1024
    """Memory of all the sandbox's processes together, including files in its tmpfs directories
    (memory cgroup); also the address space of each process (RLIMIT_AS)."""
    file_size_mb: int = 64
    """Largest file a process may write (RLIMIT_FSIZE)."""
    max_processes: int = 64
    """Processes and threads the sandbox may hold at once, all commands together."""
    disk_mb: int = 1024
    """Total size of the files in the working directory, home, tmp and outbox (a tmpfs, so
    they also count toward ``memory_mb`` when written by sandboxed code)."""
    max_output_bytes: int = 1_000_000
    """Stdout and stderr kept per command; the rest is dropped and ``truncated`` set."""
    network: bool = False
    """Whether commands may open network connections; ``False`` is enforced where the
    provider's ``isolates_network`` is True."""


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What one command in a sandbox did."""

    exit_code: int | None
    """Exit status; None when killed by a signal or the timeout."""
    stdout: str
    """Standard output, decoded as UTF-8 with replacement, truncated to the limit."""
    stderr: str
    """Standard error, likewise."""
    duration_s: float
    """Wall time."""
    timed_out: bool = False
    """True when the timeout killed the process group."""
    truncated: bool = False
    """True when output beyond ``max_output_bytes`` was dropped."""
    signal: int | None = None
    """The signal that ended the process, if any."""

    @property
    def ok(self) -> bool:
        """Exited with status 0 in time."""
        return self.exit_code == 0 and not self.timed_out


@runtime_checkable
class Sandbox(Protocol):
    """A private directory and a way to run commands in it.

    ``workdir`` is the directory as commands inside the sandbox see it; ``host_dir`` is the same
    directory on the host (the driver reads and writes files there).
    """

    provider: str
    workdir: str
    host_dir: Path
    outdir: str
    """A directory outside ``workdir``, as commands see it, from which :meth:`read_output`
    reads: a test runner writes its report there, where the agent's files cannot be."""
    isolation: str
    """What this sandbox enforces, as comma-separated ``aspect:mechanism`` pairs, e.g.
    ``memory:cgroup-v1,pids:cgroup-v1,disk:tmpfs,network:none,ipc:namespace,fs:private,
    privileges:no-new-privs``; a degraded aspect names what holds instead
    (``memory:rlimit-per-process``, ``network:not-isolated``). Copied into each run row."""

    async def write_files(self, files: Mapping[str, str | bytes]) -> None:
        """Write files under the sandbox dir. Paths are relative; any escape raises InfraError
        (or SpecError for a task's own bad path)."""
        ...

    async def read_file(self, path: str, max_bytes: int = 1_000_000) -> bytes:
        """Read a file from the sandbox dir (at most ``max_bytes``); escapes are refused."""
        ...

    async def read_output(self, name: str, max_bytes: int = 16_000_000) -> bytes:
        """At most ``max_bytes`` of the regular file ``name`` in ``outdir``.

        Raises:
            FileNotFoundError: there is no such file.
            InfraError: it is a symlink or not a regular file of the sandbox.
        """
        ...

    async def exec(self, argv: Sequence[str], *, stdin: bytes | None = None,
                   timeout_s: float = 60.0, env: Mapping[str, str] | None = None) -> ExecResult:
        """Run ``argv`` in ``workdir`` under the limits; on timeout kill the whole process group.

        ``env`` adds variables to the scrubbed allow-listed environment.
        """
        ...

    async def kill_all(self) -> None:
        """Kill every process the sandbox holds (all of its uid or cgroup, whatever session or
        process group they moved to) and return only when none is left; files stay.

        Raises:
            InfraError: processes survived the kill.
        """
        ...

    async def snapshot(self, *, max_files: int = 10_000,
                       max_bytes: int = 256 * 1024 * 1024) -> dict[str, bytes]:
        """Every regular file under the working directory, by relative path.

        Symlinks, devices, FIFOs, sockets, ``__pycache__`` directories and files not owned by
        the sandbox are left out. Call after :meth:`kill_all`, so nothing changes meanwhile.

        Raises:
            AgentError: the directory holds more than ``max_files`` files or ``max_bytes``.
        """
        ...

    async def close(self) -> None:
        """Kill anything still running and delete the directory."""
        ...


class SandboxProvider(Protocol):
    """Creates sandboxes of one kind."""

    name: str

    @property
    def warnings(self) -> list[str]:
        """What this provider cannot enforce on this host (one sentence each), for the CLI to
        print once at start; empty when every limit holds."""
        ...

    @property
    def isolates_network(self) -> bool:
        """Whether a sandbox created with ``network=False`` really has no network here; plan
        validation refuses such tasks up front where it does not, unless the plan allows it."""
        ...

    def available(self) -> bool:
        """Whether this provider works on this machine (checked once, cached)."""
        ...

    async def create(self, limits: SandboxLimits) -> Sandbox:
        """A fresh, empty sandbox."""
        ...
