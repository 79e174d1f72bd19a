"""A sandbox created on first use, shared by the agent and the scorer of one attempt."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from evalfleet.sandbox.base import Sandbox

SandboxFactory = Callable[[], Awaitable[Sandbox]]


class LazySandbox:
    """Creates its sandbox the first time :meth:`get` is awaited; closes it on :meth:`close`."""

    def __init__(self, factory: SandboxFactory) -> None:
        self._factory = factory
        self._sandbox: Sandbox | None = None

    @property
    def created(self) -> Sandbox | None:
        """The sandbox if it was created, else None."""
        return self._sandbox

    async def get(self) -> Sandbox:
        """The attempt's sandbox, creating it (and running task set-up) if needed."""
        if self._sandbox is None:
            self._sandbox = await self._factory()
        return self._sandbox

    async def close(self) -> None:
        """Close the sandbox if one was created."""
        if self._sandbox is not None:
            sb, self._sandbox = self._sandbox, None
            await sb.close()
