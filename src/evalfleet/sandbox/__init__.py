"""Sandboxes: a private directory in which commands run under limits.

``local`` uses a directory, rlimits, a scrubbed environment and (as root) a uid per sandbox;
``bwrap`` adds bubblewrap namespaces (no network, a private read-only file system). Use
:func:`get_provider` to pick one by name.
"""

from evalfleet.sandbox.base import ExecResult, Sandbox, SandboxLimits, SandboxProvider
from evalfleet.sandbox.bwrap import BwrapSandboxProvider
from evalfleet.sandbox.local import LocalSandboxProvider
from evalfleet.sandbox.select import get_provider

__all__ = [
    "BwrapSandboxProvider",
    "ExecResult",
    "LocalSandboxProvider",
    "Sandbox",
    "SandboxLimits",
    "SandboxProvider",
    "get_provider",
]
