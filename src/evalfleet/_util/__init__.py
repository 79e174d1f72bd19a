"""Small helpers with no dependency on the rest of evalfleet."""

from evalfleet._util.hashing import short_hash, stable_json
from evalfleet._util.paths import PathEscapeError, safe_join
from evalfleet._util.timeutil import utc_now, utc_now_iso

__all__ = ["PathEscapeError", "safe_join", "short_hash", "stable_json", "utc_now", "utc_now_iso"]
