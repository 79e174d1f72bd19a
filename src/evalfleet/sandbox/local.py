"""The ``local`` provider: a directory, limits, a scrubbed environment and, as root, a uid.

Commands run on the host file system. As root, each sandbox runs as a uid of its own (see
``_host``), which keeps root's and other sandboxes' files out of reach, and each command's child
enters namespaces of its own before dropping to that uid: a mount namespace in which the
interpreter's site-packages, the evalfleet package and the provider's ``hidden_paths`` are covered
by an empty read-only tmpfs, ``/tmp``, ``/var/tmp`` and ``/run/lock`` are the sandbox's own tmp
(inside its disk total) and ``/dev/shm`` is private; an IPC namespace, so System V shared memory
dies with the command; and, unless ``limits.network``, a network namespace with only a loopback
device. As an ordinary
user none of this is possible: commands run as that user, can read what it can and reach the
network, and the provider's ``warnings`` say so.
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

    Takes the arguments of :class:`~evalfleet.sandbox._common.DirSandboxProvider`.
    """

    name = "local"
    child_namespaces = True

    @property
    def isolates_network(self) -> bool:
        """True as root (a network namespace per command), False otherwise."""
        return self._host.switch_uid

    def _own_warnings(self) -> list[str]:
        if self._host.switch_uid:
            return []
        return ["the network is not isolated (a task with network: false can reach it), "
                "System V IPC is shared with the host, and sandboxed code can read every file "
                "the driver's user can (including site-packages and the evalfleet package); "
                "run as root or use bwrap"]

    def _wrap(self, alloc: Allocation, limits: SandboxLimits) -> DirSandbox:
        own = alloc.uid is not None
        isolation = [
            "network:open" if limits.network else
            ("network:none" if own else "network:not-isolated"),
            "ipc:namespace" if own else "ipc:shared",
            "fs:host-hidden" if own else "fs:host-shared",
            "privileges:no-new-privs",
        ]
        return LocalSandbox(provider=self.name, host=self._host, alloc=alloc, limits=limits,
                            workdir=str(alloc.work), home=str(alloc.home), tmpdir=str(alloc.tmp),
                            outdir=str(alloc.out), isolation=isolation)
