"""One pids cgroup (v1) per sandbox, where the host lets us create them.

A pids cgroup bounds every process and thread the sandbox holds, whatever uid they run as, and
lists them all for the final kill, including those that left their process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

_PIDS_MOUNT = Path("/sys/fs/cgroup/pids")


def _own_pids_cgroup() -> str | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            return path
    return None


class PidsCgroupRoot:
    """The directory under which sandbox cgroups are created."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def detect(cls) -> PidsCgroupRoot | None:
        """The writable parent for sandbox cgroups, or None when pids cgroups cannot be used."""
        own = _own_pids_cgroup()
        if own is None or not (_PIDS_MOUNT / "cgroup.procs").exists():
            return None
        parent = _PIDS_MOUNT / own.lstrip("/") / "evalfleet"
        try:
            parent.mkdir(exist_ok=True)
        except OSError:
            return None
        if not os.access(parent, os.W_OK):
            return None
        return cls(parent)

    def create(self, name: str, max_pids: int) -> PidsCgroup | None:
        """A new cgroup limited to ``max_pids`` tasks, or None if the kernel refused."""
        path = self.path / name
        try:
            path.mkdir()
        except OSError:
            return None
        try:
            (path / "pids.max").write_text(str(max_pids))
            fd = os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return None
        return PidsCgroup(path, fd)


class PidsCgroup:
    """A sandbox's cgroup; ``procs_fd`` is written by each child to join it before exec."""

    def __init__(self, path: Path, procs_fd: int) -> None:
        self.path = path
        self.procs_fd = procs_fd

    def pids(self) -> list[int]:
        """The processes in the cgroup now."""
        try:
            return [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill_all(self, rounds: int = 100) -> bool:
        """SIGKILL every member until none is left; True if the cgroup emptied."""
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
        """Close the join descriptor and delete the cgroup; True on success."""
        if self.procs_fd >= 0:
            os.close(self.procs_fd)
            self.procs_fd = -1
        for _ in range(50):
            try:
                self.path.rmdir()
                return True
            except FileNotFoundError:
                return True
            except OSError:  # busy while the last killed tasks exit
                time.sleep(0.002)
        return False
