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

The interpreter's installation is bound after the sandbox's own directories, so one that lives
under /tmp stays visible. Inside every bound directory, the interpreter's site-packages, the
evalfleet package and the provider's ``hidden_paths`` are covered by an empty read-only tmpfs.
Nothing else of the host (other sandboxes, /root, /home, /run, /var) exists inside. As root,
bwrap is started only after the child dropped to the sandbox's uid: bubblewrap started by root
leaves root-owned files such as /etc/shadow readable even with capabilities dropped. bwrap exits
with 128+N when the command dies of signal N; that is reported as ``signal=N``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from collections.abc import Sequence

from evalfleet.sandbox._common import DirSandbox, DirSandboxProvider
from evalfleet.sandbox._host import DEFAULT_UID_RANGE, Allocation
from evalfleet.sandbox._process import RawResult
from evalfleet.sandbox.base import ExecResult, SandboxLimits

__all__ = ["WORKDIR", "BwrapSandbox", "BwrapSandboxProvider"]

WORKDIR = "/sandbox"
HOME = "/home/sandbox"
OUTDIR = "/evalfleet-out"
_SYSTEM_DIRS = ("/usr", "/etc")
_ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def _under(path: str, parents: Sequence[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in parents)


def _system_args() -> list[str]:
    args: list[str] = []
    for d in _SYSTEM_DIRS:
        if os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for d in _ROOT_LINKS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    return args


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
        uid_range, use_cgroups, python, hidden_paths, site_packages: as for
            :class:`~evalfleet.sandbox._common.DirSandboxProvider`.
    """

    name = "bwrap"
    extra_procs = 2  # bwrap outside the pid namespace and its init inside it

    def __init__(self, base_dir: str | os.PathLike[str] | None = None, *,
                 bwrap: str | None = None, ro_binds: Sequence[str] = (),
                 uid_range: tuple[int, int] = DEFAULT_UID_RANGE,
                 use_cgroups: bool = True, python: str | None = None,
                 hidden_paths: Sequence[str | os.PathLike[str]] = (),
                 site_packages: bool = False) -> None:
        super().__init__(base_dir, uid_range=uid_range, use_cgroups=use_cgroups, python=python,
                         hidden_paths=hidden_paths, site_packages=site_packages)
        self.bwrap = bwrap or shutil.which("bwrap")
        self._ro_binds = tuple(os.path.abspath(d) for d in ro_binds)
        self._setuid = False
        self._args: tuple[list[str], list[str]] | None = None

    @property
    def isolates_network(self) -> bool:
        """Always: each command gets a network namespace of its own unless ``limits.network``."""
        return True

    def _precheck(self) -> str:
        if not self.bwrap:
            return "bwrap (bubblewrap) is not installed"
        try:
            # A setuid bwrap must be let gain its privileges (it sets no_new_privs itself).
            self._setuid = bool(os.stat(self.bwrap).st_mode & stat.S_ISUID)
        except OSError as exc:
            return f"bwrap (bubblewrap) cannot be used: {exc}"
        return ""

    def _mount_args(self) -> tuple[list[str], list[str]]:
        """(system binds, interpreter binds and hides), built once the host is prepared."""
        if self._args is None:
            interp = self._host.interpreter
            assert interp is not None
            system = _system_args()
            bound = [*_SYSTEM_DIRS, *_ROOT_LINKS, *self._ro_binds]
            late: list[str] = []
            for d in interp.prefixes:
                if not _under(d, _SYSTEM_DIRS):
                    late += ["--ro-bind", d, d]
                    bound.append(d)
            for d in self._ro_binds:
                system += ["--ro-bind", d, d]
            for d in self._host.hidden_dirs():
                if _under(d, bound) and os.path.isdir(d):
                    late += ["--perms", "0555", "--tmpfs", d, "--remount-ro", d]
            self._args = (system, late)
        return self._args

    def _wrap(self, alloc: Allocation, limits: SandboxLimits) -> DirSandbox:
        assert self.bwrap is not None
        if self._setuid:
            alloc.setup = dataclasses.replace(alloc.setup, no_new_privs=False)
        system, late = self._mount_args()
        prefix = [self.bwrap, "--unshare-all", *(["--share-net"] if limits.network else []),
                  "--die-with-parent", "--new-session", *system,
                  "--proc", "/proc", "--dev", "/dev",
                  # POSIX shared memory is RAM: bounded like the memory limit; /dev is read-only.
                  "--size", str(limits.memory_mb * 1024 * 1024), "--tmpfs", "/dev/shm",
                  "--remount-ro", "/dev",
                  "--bind", str(alloc.work), WORKDIR, "--bind", str(alloc.home), HOME,
                  "--bind", str(alloc.tmp), "/tmp", "--bind", str(alloc.tmp), "/var/tmp",
                  "--bind", str(alloc.out), OUTDIR,
                  # After /tmp: an interpreter (a venv) under /tmp must not be hidden by it.
                  *late,
                  "--chdir", WORKDIR, "--remount-ro", "/", "--"]
        isolation = ["network:open" if limits.network else "network:none", "ipc:namespace",
                     "fs:private", "privileges:no-new-privs"]
        return BwrapSandbox(provider=self.name, host=self._host, alloc=alloc, limits=limits,
                            workdir=WORKDIR, home=HOME, tmpdir="/tmp", outdir=OUTDIR,
                            prefix=prefix, isolation=isolation, signal_from_status=True)
