"""Format seconds as text."""

from durations.parse import UNITS


def format_duration(seconds):
    """Text such as '1h 30m'; zero is '0s' and negative durations start with '-'."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    remaining = abs(int(seconds))
    parts = []
    for unit, size in UNITS.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + " ".join(parts)
