"""UTC time helpers."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def utc_now_iso() -> str:
    """The current UTC time as ISO 8601 with seconds precision."""
    return utc_now().isoformat(timespec="seconds")
