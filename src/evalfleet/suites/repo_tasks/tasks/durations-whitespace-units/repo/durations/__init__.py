"""Durations and dates."""

from durations.dates import add_days, days_between, parse_date
from durations.format import format_duration
from durations.parse import UNITS, DurationError, parse_duration

__all__ = [
    "UNITS",
    "DurationError",
    "add_days",
    "days_between",
    "format_duration",
    "parse_date",
    "parse_duration",
]
