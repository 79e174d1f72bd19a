"""Keep this Python interpreter reachable for an unprivileged sandbox uid.

When the driver runs as root from an interpreter under a private directory (pyenv under
``/root``, mode 0700), the uid that sandboxed code runs as cannot even traverse to
``sys.executable``. Rather than loosening host permissions, the child of each command, still root,
enters a private mount namespace, covers the blocking directory with an empty tmpfs and bind-mounts
the interpreter's directories back read-only. The host's mount table is never touched: the mounts
are made private before anything is mounted.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import stat
import sys
from dataclasses import dataclass

_CLONE_NEWNS = 0x00020000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_REMOUNT = 32
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.mount.restype = ctypes.c_int
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


def interpreter_dirs() -> tuple[str, ...]:
    """The directories this interpreter needs (prefixes, venv and base), none inside another."""
    found = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                            sys.base_exec_prefix)}
    if sys.executable:
        found.add(os.path.dirname(os.path.realpath(sys.executable)))
    return tuple(d for d in sorted(found)
                 if not any(o != d and d.startswith(o.rstrip("/") + "/") for o in found))


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


class UnreachableInterpreterError(Exception):
    """The interpreter cannot be made reachable for an unprivileged uid."""


@functools.cache
def interpreter_exposure() -> InterpreterExposure | None:
    """The recipe for this interpreter, or None when "others" can already reach it.

    Raises:
        UnreachableInterpreterError: an interpreter directory itself is not searchable by others.
    """
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
