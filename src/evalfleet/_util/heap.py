"""Keep a driver's long-lived objects out of the cyclic garbage collector's full passes.

Python's cyclic garbage collector runs a full pass (generation 2) whenever the objects that
survived earlier passes have grown by a quarter, and a full pass visits every tracked object:
the imported modules, the plan, the suite's tasks, the store. A driver creates a few objects
per run (results, trajectories, asyncio tasks), so while it dispatches, full passes come back
every few hundred milliseconds and each one walks the whole heap again to find the few
thousand short-lived cycles among them. Measured with 10,000 no-op runs of a 10,000-task JSON
Lines suite: five or six full passes of 60-100 ms each, 0.3-0.5 s of a 2.4 s process.

:func:`frozen_heap` moves the objects alive when it starts to the collector's permanent
generation (``gc.freeze``): they are still freed by reference counting as usual, only no pass
looks at them. Objects created inside the block are collected as before, so the cycles the runs
leave behind are still found, in passes that visit the young objects only. At the end the heap
goes back to how it was found: unfrozen if it was (``gc.unfreeze``), still frozen if the caller
had frozen it (a command-line process that ends with the eval, see :func:`freeze_for_process`).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["freeze_for_process", "frozen_heap"]


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Within the block, the cyclic collector skips the objects alive at its start.

    The cost: a reference cycle among those objects that becomes garbage during the block is
    freed only after it (or never, if the caller keeps the heap frozen); objects merely no
    longer referenced are freed at once, as always.
    """
    was_frozen = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not was_frozen:
            gc.unfreeze()


def freeze_for_process() -> None:
    """Leave every object alive now out of the cyclic collector's passes for good.

    For a process that ends with its command (``evalfleet run``): what it imported and set up
    lives until the exit anyway, and the interpreter's own passes at exit skip it too.
    :func:`frozen_heap` blocks inside keep the heap frozen when they end.
    """
    gc.freeze()
