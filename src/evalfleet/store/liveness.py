"""Whether an eval's driver still runs, decided without SQLAlchemy.

A driver names itself ``host:pid`` in the journal and beats every few seconds. Readers
(``status``, ``report``, retention) call :func:`driver_alive` to tell a running eval from one
whose driver crashed; the journal calls :func:`process_alive` before taking an eval over. This
module imports only the standard library, so a read that needs the answer (a running eval's
report) does not pay for importing the journal's SQLAlchemy tables.
"""

from __future__ import annotations

import os
import socket
import time

__all__ = ["driver_alive", "process_alive"]


def driver_alive(driver: str | None, heartbeat: float | None,
                 stale_after_s: float = 300.0) -> bool:
    """Whether an eval's driver still runs: its process exists (same host) and it beat lately."""
    if not driver or not heartbeat:
        return False
    return process_alive(driver) and time.time() - heartbeat < stale_after_s


def process_alive(driver: str | None) -> bool:
    """Whether the ``host:pid`` driver's process exists; ``True`` for another machine's driver.

    Another host's process cannot be looked for, so its heartbeat alone decides there.
    """
    if not driver:
        return False
    host, _, pid = driver.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine: trust the heartbeat
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    return True
