"""Choosing a sandbox provider by name."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

from evalfleet.errors import InfraError, SpecError
from evalfleet.sandbox.base import SandboxProvider
from evalfleet.sandbox.bwrap import BwrapSandboxProvider
from evalfleet.sandbox.local import LocalSandboxProvider

__all__ = ["PROVIDER_NAMES", "get_provider"]

PROVIDER_NAMES = ("auto", "local", "bwrap")


@functools.cache
def _local(hidden: tuple[str, ...] = ()) -> LocalSandboxProvider:
    return LocalSandboxProvider(hidden_paths=hidden)


@functools.cache
def _bwrap(hidden: tuple[str, ...] = ()) -> BwrapSandboxProvider:
    return BwrapSandboxProvider(hidden_paths=hidden)


@functools.cache
def _fallback(reason: str, hidden: tuple[str, ...] = ()) -> LocalSandboxProvider:
    # Its own instance, so the warning reaches those who asked for auto, not for local.
    p = LocalSandboxProvider(hidden_paths=hidden)
    p.add_warning(f"sandbox 'auto' fell back to 'local' because bwrap does not work here "
                  f"({reason}); local isolates less (see the warnings below and docs/sandbox.md)")
    return p


def get_provider(name: str = "auto", *,
                 hidden_paths: Sequence[str | os.PathLike[str]] = ()) -> SandboxProvider:
    """The provider called ``name``; ``auto`` is ``bwrap`` where it works, else ``local``.

    Providers are shared per process (and per ``hidden_paths``), so the availability probe runs
    once. The returned provider's ``name`` says which one was chosen; when ``auto`` falls back to
    ``local``, its ``warnings`` start with a sentence saying so (print them once at start).

    Args:
        name: ``auto``, ``local`` or ``bwrap``.
        hidden_paths: Directories sandboxed code must not read beyond those always hidden
            (site-packages, the evalfleet package): pass the evalfleet home.

    Raises:
        SpecError: ``name`` is not one of ``auto``, ``local``, ``bwrap``.
        InfraError: ``bwrap`` was asked for and does not work here.
    """
    hidden = tuple(sorted({os.path.abspath(p) for p in hidden_paths}))
    if name == "local":
        return _local(hidden)
    if name in ("bwrap", "auto"):
        bwrap = _bwrap(hidden)
        if bwrap.available():
            return bwrap
        if name == "auto":
            return _fallback(bwrap.unavailable_reason, hidden)
        raise InfraError(f"the bwrap sandbox was requested but does not work on this machine: "
                         f"{bwrap.unavailable_reason}; install bubblewrap or choose "
                         f"sandbox 'local' or 'auto'")
    raise SpecError(f"unknown sandbox provider {name!r}; expected one of "
                    f"{', '.join(PROVIDER_NAMES)}", field="sandbox")
