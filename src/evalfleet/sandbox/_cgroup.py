"""One cgroup per sandbox (memory and pids), where the host lets us create them.

A memory cgroup bounds the memory of all the sandbox's processes together, including the files
they write to tmpfs (its disk and ``/dev/shm``) and SysV shared memory; a pids cgroup bounds every
process and thread the sandbox holds, whatever uid they run as, and lists them all for the final
kill, including those that left their process group.

cgroup v1 (one hierarchy per controller, ``/sys/fs/cgroup/memory`` and ``/sys/fs/cgroup/pids``) is
used where those controllers are mounted; otherwise cgroup v2, where the driver's own cgroup has
the controllers delegated to its children. Each command's child joins the sandbox's cgroups
between fork and exec by writing its pid to descriptors opened here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

_ROOT = Path("/sys/fs/cgroup")
_PARENT = "evalfleet"


def _own_cgroups() -> dict[str, str]:
    """Controller (``""`` for the v2 hierarchy) -> this process's cgroup path in it."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


def _make_parent(path: Path) -> Path | None:
    try:
        path.mkdir(exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


def _v2_mount() -> Path | None:
    for p in (_ROOT, _ROOT / "unified"):
        if (p / "cgroup.controllers").exists():
            return p
    return None


@dataclass(slots=True)
class CgroupRoots:
    """Where sandbox cgroups are created: per-controller v1 parents, or one v2 parent."""

    memory: Path | None = None
    pids: Path | None = None
    v2: Path | None = None
    v2_controllers: frozenset[str] = frozenset()
    version: str = ""
    """``v1`` or ``v2`` (empty when neither works)."""

    @classmethod
    def detect(cls) -> CgroupRoots:
        """The writable parents found on this host (fields stay None where refused)."""
        own = _own_cgroups()
        roots = cls()
        for ctl in ("memory", "pids"):
            mount = _ROOT / ctl
            if ctl in own and (mount / "cgroup.procs").exists():
                setattr(roots, ctl, _make_parent(mount / own[ctl].lstrip("/") / _PARENT))
        if roots.memory or roots.pids:
            roots.version = "v1"
            return roots
        v2 = _v2_mount()
        if v2 is None or "" not in own:
            return roots
        mine = v2 / own[""].lstrip("/")
        try:  # delegated: our own cgroup passes memory and pids on to its children
            delegated = _controllers(mine / "cgroup.subtree_control")
        except OSError:
            return roots
        wanted = delegated & {"memory", "pids"}
        parent = _make_parent(mine / _PARENT) if wanted else None
        if parent is None:
            return roots
        with contextlib.suppress(OSError):
            (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
        try:
            enabled = _controllers(parent / "cgroup.subtree_control") & wanted
        except OSError:
            enabled = set()
        if enabled:
            roots.v2, roots.v2_controllers, roots.version = parent, frozenset(enabled), "v2"
        return roots

    @property
    def has_memory(self) -> bool:
        """Whether a sandbox's memory can be bounded in total."""
        return self.memory is not None or "memory" in self.v2_controllers

    @property
    def has_pids(self) -> bool:
        """Whether a sandbox's tasks can be counted and bounded in total."""
        return self.pids is not None or "pids" in self.v2_controllers

    def create(self, name: str, *, max_pids: int, memory_bytes: int) -> SandboxCgroups:
        """The cgroups of a new sandbox; controllers the kernel refuses are left out."""
        cg = SandboxCgroups()
        if self.v2 is not None:
            path = _mkdir(self.v2 / name)
            if path is not None:
                cg.dirs.append(path)
                files = {"pids": [("pids.max", str(max_pids))],
                         "memory": [("memory.max", str(memory_bytes))]}
                if (path / "memory.swap.max").exists():  # only with swap accounting
                    files["memory"].append(("memory.swap.max", "0"))
                if _join_via(cg, path):
                    for ctl in sorted(self.v2_controllers):
                        if _write_all(path, files[ctl]):
                            cg.controllers.add(ctl)
            return cg
        if self.memory is not None:
            path = _mkdir(self.memory / name)
            if path is not None:
                cg.dirs.append(path)
                # memsw (memory + swap) exists only where swap accounting is on; bound it too.
                limits = [("memory.limit_in_bytes", str(memory_bytes))]
                if (path / "memory.memsw.limit_in_bytes").exists():
                    limits.append(("memory.memsw.limit_in_bytes", str(memory_bytes)))
                if _write_all(path, limits) and _join_via(cg, path):
                    cg.controllers.add("memory")
        if self.pids is not None:
            path = _mkdir(self.pids / name)
            if path is not None:
                cg.dirs.append(path)
                if _write_all(path, [("pids.max", str(max_pids))]) and _join_via(cg, path):
                    cg.controllers.add("pids")
        return cg

    def existing(self, name: str) -> SandboxCgroups:
        """The cgroups named ``name`` that a dead driver left, for the sweep."""
        cg = SandboxCgroups()
        for parent in (self.v2, self.memory, self.pids):
            if parent is not None and (parent / name).is_dir():
                cg.dirs.append(parent / name)
        return cg


def _mkdir(path: Path) -> Path | None:
    try:
        path.mkdir()
    except FileExistsError:  # left by a crashed driver with the same name: reuse it
        return path if path.is_dir() else None
    except OSError:
        return None
    return path


def _write_all(path: Path, settings: list[tuple[str, str]]) -> bool:
    try:
        for fname, value in settings:
            (path / fname).write_text(value)
    except OSError:
        return False
    return True


def _controllers(path: Path) -> set[str]:
    """The controllers a ``cgroup.subtree_control`` (or ``cgroup.controllers``) lists."""
    return {c.lstrip("+") for c in path.read_text().split()}


def _join_via(cg: SandboxCgroups, path: Path) -> bool:
    """Keep ``path/cgroup.procs`` open for the children to join by; False if it cannot be."""
    try:
        cg.procs_fds.append(os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
    except OSError:
        return False
    return True


@dataclass(slots=True)
class SandboxCgroups:
    """A sandbox's cgroups; each child writes its pid to every ``procs_fds`` before exec."""

    dirs: list[Path] = field(default_factory=list)
    procs_fds: list[int] = field(default_factory=list)
    controllers: set[str] = field(default_factory=set)
    """The controllers whose limits were set: ``memory``, ``pids``."""

    def pids(self) -> list[int]:
        """The processes in any of the cgroups now."""
        found: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in (d / "cgroup.procs").read_text().split())
        return sorted(found)

    def kill_all(self, rounds: int = 100) -> bool:
        """SIGKILL every member until none is left; True if the cgroups emptied."""
        for _ in range(rounds):
            pids = self.pids()
            if not pids:
                return True
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.001)
        return not self.pids()

    def remove(self) -> bool:
        """Close the join descriptors and delete the cgroups; True on success."""
        for fd in self.procs_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.procs_fds = []
        ok = True
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # busy while the last killed tasks exit
                    time.sleep(0.002)
            else:
                ok = False
        return ok

    def oom_kills(self) -> int:
        """How many processes the kernel killed so far for reaching the memory limit."""
        for d in self.dirs:
            for fname in ("memory.oom_control", "memory.events"):
                with contextlib.suppress(OSError, ValueError):
                    for line in (d / fname).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
        return 0

    def peak_memory(self) -> int | None:
        """The most memory the sandbox held at once, in bytes, where the kernel reports it."""
        for d in self.dirs:
            for fname in ("memory.max_usage_in_bytes", "memory.peak"):
                with contextlib.suppress(OSError, ValueError):
                    return int((d / fname).read_text())
        return None
