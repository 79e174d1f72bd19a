"""The ``bwrap`` provider: bubblewrap namespaces on top of everything ``local`` does.

Each command runs in fresh user, mount, pid, ipc, uts and cgroup namespaces and, unless
``limits.network``, a network namespace with only a loopback device. The file system inside is
read-only system directories (``/usr``, ``/etc``, the ``/bin``-style links, the Python
installation) plus this sandbox's own directories::

    /sandbox        read-write, the working directory (host: <base>/u<uid>/work)
    /home/sandbox   read-write, HOME
    /tmp, /var/tmp  read-write, TMPDIR (host: <base>/u<uid>/tmp)
    /evalfleet-out  read-write, the outbox for a test runner's report (host: <base>/u<uid>/out)
    /dev/shm        read-write tmpfs of at most ``memory_mb``, gone when the command ends

Nothing else of the host (other sandboxes, /root, /home, /run, /var) exists inside. As root,
bwrap is started only after the child dropped to the sandbox's uid: bubblewrap started by root
leaves root-owned files such as /etc/shadow readable even with capabilities dropped. bwrap exits
with 128+N when the command dies of signal N; that is reported as ``signal=N``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
from collections.abc import Sequence

from evalfleet.sandbox._common import DirSandbox, DirSandboxProvider
from evalfleet.sandbox._host import DEFAULT_UID_RANGE, Allocation
from evalfleet.sandbox._mountns import interpreter_dirs
from evalfleet.sandbox._process import RawResult
from evalfleet.sandbox.base import ExecResult, SandboxLimits

__all__ = ["WORKDIR", "BwrapSandbox", "BwrapSandboxProvider"]

WORKDIR = "/sandbox"
HOME = "/home/sandbox"
OUTDIR = "/evalfleet-out"
_SYSTEM_DIRS = ("/usr", "/etc")
_ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


@functools.cache
def _system_args() -> tuple[str, ...]:
    args: list[str] = []
    for d in _SYSTEM_DIRS:
        if os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for d in _ROOT_LINKS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for d in interpreter_dirs():
        if not any(d == s or d.startswith(s + "/") for s in _SYSTEM_DIRS):
            args += ["--ro-bind", d, d]
    return tuple(args)


class BwrapSandbox(DirSandbox):
    """A sandbox whose commands run under bubblewrap; ``workdir`` is ``/sandbox``."""

    def _interpret(self, raw: RawResult) -> ExecResult:
        # bwrap itself reports a program it cannot exec with status 1; say 127/126 like local.
        if raw.returncode == 1 and raw.stderr.startswith(b"bwrap: execvp "):
            code = 127 if raw.stderr.rstrip().endswith(b"No such file or directory") else 126
            raw = dataclasses.replace(raw, returncode=code)
        return super()._interpret(raw)


class BwrapSandboxProvider(DirSandboxProvider):
    """Creates :class:`BwrapSandbox` es under ``base_dir``.

    Args:
        base_dir: Parent of the sandbox directories (default ``$TMPDIR/evalfleet-sandboxes``).
        bwrap: The bubblewrap executable (default: ``bwrap`` on PATH).
        ro_binds: More host directories to show read-only at the same path (e.g. ``/opt``).
        uid_range: ``(first, count)`` of the uids given to sandboxes when running as root.
        use_cgroups: Also put each sandbox in a pids cgroup of its own where the host lets us.
            Off by default: moving each command into a cgroup v1 costs 5-25 ms (the kernel
            waits for an RCU grace period), and as root the per-sandbox uid already makes
            RLIMIT_NPROC an exact per-sandbox bound.
    """

    name = "bwrap"
    extra_procs = 2  # bwrap outside the pid namespace and its init inside it

    def __init__(self, base_dir: str | os.PathLike[str] | None = None, *,
                 bwrap: str | None = None, ro_binds: Sequence[str] = (),
                 uid_range: tuple[int, int] = DEFAULT_UID_RANGE,
                 use_cgroups: bool = False) -> None:
        super().__init__(base_dir, uid_range=uid_range, use_cgroups=use_cgroups)
        self.bwrap = bwrap or shutil.which("bwrap")
        self._extra: tuple[str, ...] = tuple(
            arg for d in ro_binds for arg in ("--ro-bind", os.path.abspath(d), os.path.abspath(d)))

    def _precheck(self) -> str:
        return "" if self.bwrap else "bwrap (bubblewrap) is not installed"

    def _wrap(self, alloc: Allocation, limits: SandboxLimits) -> DirSandbox:
        assert self.bwrap is not None
        prefix = [self.bwrap, "--unshare-all", *(["--share-net"] if limits.network else []),
                  "--die-with-parent", "--new-session", *_system_args(), *self._extra,
                  "--proc", "/proc", "--dev", "/dev",
                  # POSIX shared memory is RAM: bounded like the memory limit; /dev is read-only.
                  "--size", str(limits.memory_mb * 1024 * 1024), "--tmpfs", "/dev/shm",
                  "--remount-ro", "/dev",
                  "--bind", str(alloc.work), WORKDIR, "--bind", str(alloc.home), HOME,
                  "--bind", str(alloc.tmp), "/tmp", "--bind", str(alloc.tmp), "/var/tmp",
                  "--bind", str(alloc.out), OUTDIR,
                  "--chdir", WORKDIR, "--remount-ro", "/", "--"]
        return BwrapSandbox(provider=self.name, host=self._host, alloc=alloc, limits=limits,
                            workdir=WORKDIR, home=HOME, tmpdir="/tmp", outdir=OUTDIR,
                            prefix=prefix,
                            signal_from_status=True)
