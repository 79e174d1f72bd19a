"""The event log of one attempt: model calls, tool calls, outputs, scorer output."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

MAX_TEXT = 20_000
"""Longest string kept in an event; longer text is cut and marked."""
MAX_EVENTS = 500
"""Events kept per attempt; later ones are counted but dropped."""


def clip(value: Any, limit: int = MAX_TEXT) -> Any:
    """Cut long strings (recursively) so a hostile agent cannot bloat the store."""
    if isinstance(value, str):
        if len(value) > limit:
            return value[:limit] + f"... [truncated {len(value) - limit} chars]"
        return value
    if isinstance(value, bytes):
        return clip(value.decode("utf-8", errors="replace"), limit)
    if isinstance(value, dict):
        return {str(k): clip(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clip(v, limit) for v in value]
    return value


@dataclass(slots=True)
class Trajectory:
    """Append-only, size-bounded list of events."""

    events: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0

    def add(self, event: str, /, **data: Any) -> None:
        """Record an event of kind ``event`` with its data (long strings clipped)."""
        if len(self.events) >= MAX_EVENTS:
            self.dropped += 1
            return
        self.events.append({"t": round(time.time(), 4), **clip(data), "kind": event})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in the trajectory blob."""
        out: dict[str, Any] = {"events": self.events}
        if self.dropped:
            out["dropped_events"] = self.dropped
        return out
