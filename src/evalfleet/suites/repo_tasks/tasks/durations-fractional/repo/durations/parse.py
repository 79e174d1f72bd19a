"""Parse durations such as '1h30m', '2d 4h' into seconds."""

import re

UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)\s*([wdhms])")


class DurationError(ValueError):
    """The text is not a valid duration."""


def parse_duration(text):
    """Whole seconds in a duration made of number-unit pairs (units w, d, h, m, s).

    Units are case-insensitive, spaces are allowed anywhere between the parts, each unit may
    appear once.
    """
    compact = text.strip().lower()
    if not compact:
        raise DurationError("empty duration")
    total = 0
    seen = set()
    pos = 0
    for match in _PART.finditer(compact):
        if compact[pos : match.start()].strip():
            raise DurationError(f"unexpected text in {text!r}")
        unit = match.group(2)
        if unit in seen:
            raise DurationError(f"unit {unit!r} repeated in {text!r}")
        seen.add(unit)
        total += int(match.group(1)) * UNITS[unit]
        pos = match.end()
    if pos == 0 or compact[pos:].strip():
        raise DurationError(f"unexpected text in {text!r}")
    return total
