"""The ``local`` provider: a directory, rlimits, a scrubbed environment and, as root, a uid.

Commands run on the host file system. As root, each sandbox runs as a uid of its own (see
``_host``), which makes RLIMIT_NPROC effective and keeps root's and other sandboxes' files out of
reach; as an ordinary user, commands run as that user and can read what it can. The network is not
isolated (``SandboxLimits.network`` is not enforced here); use ``bwrap`` for that.
"""

from __future__ import annotations

from evalfleet.sandbox._common import DirSandbox, DirSandboxProvider
from evalfleet.sandbox._host import Allocation
from evalfleet.sandbox.base import SandboxLimits

__all__ = ["LocalSandbox", "LocalSandboxProvider"]


class LocalSandbox(DirSandbox):
    """A sandbox whose ``workdir`` is its host directory."""


class LocalSandboxProvider(DirSandboxProvider):
    """Creates :class:`LocalSandbox` es under ``base_dir``.

    Args:
        base_dir: Parent of the sandbox directories (default ``$TMPDIR/evalfleet-sandboxes``).
        uid_range: ``(first, count)`` of the uids given to sandboxes when running as root.
        use_cgroups: Also put each sandbox in a pids cgroup of its own where the host lets us.
            Off by default: moving each command into a cgroup v1 costs 5-25 ms (the kernel
            waits for an RCU grace period), and as root the per-sandbox uid already makes
            RLIMIT_NPROC an exact per-sandbox bound.
    """

    name = "local"

    def _wrap(self, alloc: Allocation, limits: SandboxLimits) -> DirSandbox:
        return LocalSandbox(provider=self.name, host=self._host, alloc=alloc, limits=limits,
                            workdir=str(alloc.work), home=str(alloc.home), tmpdir=str(alloc.tmp),
                            outdir=str(alloc.out))
