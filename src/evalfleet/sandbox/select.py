"""Choosing a sandbox provider by name."""

from __future__ import annotations

import functools

from evalfleet.errors import InfraError, SpecError
from evalfleet.sandbox.base import SandboxProvider
from evalfleet.sandbox.bwrap import BwrapSandboxProvider
from evalfleet.sandbox.local import LocalSandboxProvider

__all__ = ["PROVIDER_NAMES", "get_provider"]

PROVIDER_NAMES = ("auto", "local", "bwrap")


@functools.cache
def _local() -> LocalSandboxProvider:
    return LocalSandboxProvider()


@functools.cache
def _bwrap() -> BwrapSandboxProvider:
    return BwrapSandboxProvider()


@functools.cache
def _fallback(reason: str) -> LocalSandboxProvider:
    # Its own instance, so the warning reaches those who asked for auto, not for local.
    p = LocalSandboxProvider()
    p.add_warning(f"sandbox 'auto' fell back to 'local' because bwrap does not work here "
                  f"({reason}); local isolates less (see the warnings below and docs/sandbox.md)")
    return p


def get_provider(name: str = "auto") -> SandboxProvider:
    """The provider called ``name``; ``auto`` is ``bwrap`` where it works, else ``local``.

    Providers are shared per process, so the availability probe runs once. The returned
    provider's ``name`` says which one was chosen; when ``auto`` falls back to ``local``, its
    ``warnings`` start with a sentence saying so (print them once at start).

    Raises:
        SpecError: ``name`` is not one of ``auto``, ``local``, ``bwrap``.
        InfraError: ``bwrap`` was asked for and does not work here.
    """
    if name == "local":
        return _local()
    if name in ("bwrap", "auto"):
        bwrap = _bwrap()
        if bwrap.available():
            return bwrap
        if name == "auto":
            return _fallback(bwrap.unavailable_reason)
        raise InfraError(f"the bwrap sandbox was requested but does not work on this machine: "
                         f"{bwrap.unavailable_reason}; install bubblewrap or choose "
                         f"sandbox 'local' or 'auto'")
    raise SpecError(f"unknown sandbox provider {name!r}; expected one of "
                    f"{', '.join(PROVIDER_NAMES)}", field="sandbox")
