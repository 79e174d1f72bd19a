"""Running one command under limits: shared by every provider.

The child is set up between fork and exec (``preexec_fn``): join the sandbox's cgroups, enter
its namespaces (see ``_mountns``: interpreter exposed, private files hidden, IPC and network of
its own), set rlimits, drop to the sandbox uid, forbid gaining privileges, ask to die with the
parent. It leads a new session, so a timeout kills its whole process group with SIGKILL, and
so does its exit: a command leaves nothing running behind it.
Output is read concurrently from both pipes; bytes past the limit are read and dropped so the
child never blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from evalfleet.errors import InfraError
from evalfleet.sandbox._mountns import ChildNamespaces, set_no_new_privs, set_parent_death_signal
from evalfleet.sandbox.base import ExecResult, SandboxLimits

OUTPUT_GRACE_S = 0.5
"""After the command ends, how long to wait for escaped processes to close its pipes."""
KILL_WAIT_S = 10.0
"""How long a SIGKILLed process group may take to disappear before we call it an infra error."""
_PIPE_BYTES = 1 << 20
_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ChildSetup:
    """What the forked child does, still as the driver's user, before it execs the command."""

    limits: SandboxLimits
    nproc: int
    """RLIMIT_NPROC: processes the sandbox uid may hold."""
    uid: int | None = None
    """Switch to this uid and gid (with no supplementary groups) when set."""
    cgroup_procs_fds: tuple[int, ...] = ()
    """Open ``cgroup.procs`` of each of the sandbox's cgroups, all joined."""
    namespaces: ChildNamespaces | None = None
    """Namespaces entered (as root) before the uid switch."""
    no_new_privs: bool = True
    """Set PR_SET_NO_NEW_PRIVS, so a setuid program cannot raise the command's privileges.
    Off only where the wrapper itself is a setuid program (a setuid bwrap)."""

    def preexec(self) -> Callable[[], None]:
        """The function run in the child between fork and exec."""
        lim = self.limits
        cpu = max(1, lim.cpu_s)
        early = (_clamped(resource.RLIMIT_CORE, 0, 0),
                 _clamped(resource.RLIMIT_CPU, cpu, cpu + 1),
                 _clamped(resource.RLIMIT_FSIZE, lim.file_size_mb * _MB),
                 _clamped(resource.RLIMIT_NPROC, self.nproc))
        address_space = _clamped(resource.RLIMIT_AS, lim.memory_mb * _MB)[1]
        uid, cgroup_fds, namespaces = self.uid, self.cgroup_procs_fds, self.namespaces
        no_new_privs = self.no_new_privs

        def setup() -> None:  # runs in the child: no imports, no locks, little allocation
            pid = str(os.getpid()).encode()
            for fd in cgroup_fds:  # first, so everything below is charged to the sandbox
                os.write(fd, pid)
            if namespaces is not None:
                namespaces.apply()
            for res, value in early:
                resource.setrlimit(res, value)
            if uid is not None:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
            if no_new_privs:
                set_no_new_privs()
            set_parent_death_signal(signal.SIGKILL)  # after setuid, which clears it
            # Last: the forked copy of the driver may already exceed the address-space limit.
            resource.setrlimit(resource.RLIMIT_AS, address_space)

        return setup


def _clamped(res: int, soft: int, hard: int | None = None) -> tuple[int, tuple[int, int]]:
    """``(res, (soft, hard))`` lowered to the driver's own hard limit, which it cannot raise."""
    hard = soft if hard is None else hard
    ceiling = resource.getrlimit(res)[1]
    if ceiling != resource.RLIM_INFINITY:
        hard = min(hard, ceiling)
    return res, (min(soft, hard), hard)


class _Capture(asyncio.SubprocessProtocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.limit = limit
        self.out = {1: bytearray(), 2: bytearray()}
        self.truncated = False
        self.exited: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()
        self._open = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        buf = self.out[fd]
        room = self.limit - len(buf)
        if len(data) > room:
            self.truncated = True
            if room > 0:
                buf += data[:room]
        else:
            buf += data

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)
        if not self._open and not self.drained.done():
            self.drained.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def _grow_pipe(transport: asyncio.SubprocessTransport, fd: int) -> None:
    pipe = transport.get_pipe_transport(fd)
    f = pipe.get_extra_info("pipe") if pipe is not None else None
    if f is not None:
        with contextlib.suppress(OSError, ValueError):  # fewer wake-ups when output floods
            fcntl.fcntl(f.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class RawResult:
    """The outcome before a provider interprets the status."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    duration_s: float
    timed_out: bool
    truncated: bool


async def run_command(argv: Sequence[str], *, cwd: str, env: Mapping[str, str],
                      stdin: bytes | None, timeout_s: float, max_output_bytes: int,
                      setup: ChildSetup, groups: set[int]) -> RawResult:
    """Run ``argv`` to completion or timeout; ``groups`` holds its process group while it runs.

    Raises:
        FileNotFoundError, PermissionError: ``argv[0]`` could not be executed.
        InfraError: the process could not be started or would not die.
    """
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    try:
        transport, proto = await loop.subprocess_exec(
            lambda: _Capture(loop, max_output_bytes), *argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=dict(env),
            start_new_session=True, preexec_fn=setup.preexec())
    except (FileNotFoundError, PermissionError):
        raise
    except BlockingIOError as exc:
        raise InfraError(f"cannot start {argv[0]!r}: process limit reached ({exc})") from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise InfraError(f"cannot start {argv[0]!r} in the sandbox: {exc}") from exc
    pid = transport.get_pid()
    groups.add(pid)
    timed_out = False
    try:
        _grow_pipe(transport, 1)
        _grow_pipe(transport, 2)
        if stdin is not None:
            w = transport.get_pipe_transport(0)
            if w is not None:
                assert isinstance(w, asyncio.WriteTransport)
                w.write(stdin)
                w.write_eof()
        try:
            await asyncio.wait_for(asyncio.shield(proto.exited), timeout_s)
        except TimeoutError:
            timed_out = True
            _kill_group(pid)
            try:
                await asyncio.wait_for(asyncio.shield(proto.exited), KILL_WAIT_S)
            except TimeoutError:
                raise InfraError(f"process group {pid} survived SIGKILL") from None
        # The command is over: what it left running in its group goes too (bwrap does the same
        # for its pid namespace). Escapees that called setsid() may still hold the pipes open:
        # wait briefly for the output, not forever; ``close`` kills them.
        _kill_group(pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(proto.drained), OUTPUT_GRACE_S)
    except BaseException:
        _kill_group(pid)
        # Let the child watcher reap it, so closing the transport does not race for the status.
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(proto.exited), KILL_WAIT_S)
        raise
    finally:
        groups.discard(pid)
        transport.close()
    return RawResult(returncode=transport.get_returncode(), stdout=bytes(proto.out[1]),
                     stderr=bytes(proto.out[2]), duration_s=time.monotonic() - start,
                     timed_out=timed_out, truncated=proto.truncated)


def to_exec_result(raw: RawResult, *, signal_from_status: bool = False) -> ExecResult:
    """Decode output and status; ``signal_from_status`` reads 128+N as death by signal N."""
    status = raw.returncode
    rc: int | None = status
    sig: int | None = None
    if raw.timed_out:
        rc, sig = None, int(signal.SIGKILL)
    elif status is not None and status < 0:
        rc, sig = None, -status
    elif signal_from_status and status is not None and 128 < status < 128 + signal.NSIG:
        rc, sig = None, status - 128
    return ExecResult(exit_code=rc, stdout=raw.stdout.decode("utf-8", errors="replace"),
                      stderr=raw.stderr.decode("utf-8", errors="replace"),
                      duration_s=raw.duration_s, timed_out=raw.timed_out,
                      truncated=raw.truncated, signal=sig)


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` at once, from a short-lived child running as ``uid``.

    ``kill(-1)`` reaches processes that left their process group or session; the kernel blocks
    forks while it walks the process list, so a fork bomb cannot outrun it.
    """
    def as_uid() -> None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)

    true = shutil.which("true") or "/bin/true"
    subprocess.run([true], preexec_fn=as_uid, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   cwd="/", env={})
