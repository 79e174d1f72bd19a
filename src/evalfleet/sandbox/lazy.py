"""A sandbox created on first use, shared by the agent and the scorer of one attempt."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from evalfleet.errors import AgentError
from evalfleet.sandbox.base import Sandbox

SandboxFactory = Callable[[], Awaitable[Sandbox]]


_ENDED = ("the attempt's sandbox was asked for after the attempt ended (an agent still running "
          "after its time limit?); it is not given out")


async def _closed() -> Sandbox:
    raise AgentError(_ENDED)


class LazySandbox:
    """Creates its sandbox the first time :meth:`get` is awaited; closes it on :meth:`close`.

    One sandbox at most, however many callers ask at once (an agent's parallel tool calls), and
    none left open: a sandbox whose making outlasted :meth:`close` is closed, not handed out.
    """

    def __init__(self, factory: SandboxFactory) -> None:
        self._factory = factory
        self._sandbox: Sandbox | None = None
        self._making = asyncio.Lock()

    @property
    def created(self) -> Sandbox | None:
        """The sandbox if it was created, else None."""
        return self._sandbox

    async def get(self) -> Sandbox:
        """The attempt's sandbox, creating it (and running task set-up) if needed."""
        if self._sandbox is None:
            async with self._making:  # a second caller waits for the first one's sandbox
                if self._sandbox is None:
                    sandbox = await self._factory()
                    if self._factory is _closed:  # the attempt ended while it was being made
                        await sandbox.close()
                        raise AgentError(_ENDED)
                    self._sandbox = sandbox
        return self._sandbox

    async def close(self) -> None:
        """Close the sandbox if one was created. From now on :meth:`get` raises AgentError:
        a sandbox made after its attempt ended would never be closed.

        Dropping the factory also ends the reference cycle of an attempt's stages and their
        lazy sandboxes (the factory is a method of the stages), so an attempt's objects are
        freed when it ends instead of waiting for the garbage collector (nine objects an
        attempt, 90,000 of 10,000 runs)."""
        self._factory = _closed
        if self._sandbox is not None:
            sb, self._sandbox = self._sandbox, None
            await sb.close()
