"""Calendar helpers for ISO dates."""

import datetime as dt


def parse_date(text):
    """A date from 'YYYY-MM-DD' text (surrounding spaces allowed)."""
    return dt.date.fromisoformat(text.strip())


def _as_date(value):
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return parse_date(value)


def days_between(start, end):
    """Whole days from start to end, negative when end is earlier.

    Both may be 'YYYY-MM-DD' strings, dates or datetimes (a datetime counts as its date).
    """
    return (_as_date(end) - _as_date(start)).days


def add_days(start, days):
    """The date `days` days after start (a string, date or datetime)."""
    return _as_date(start) + dt.timedelta(days=days)
