"""Calendar helpers for ISO dates."""

import datetime as dt


def parse_date(text):
    """A date from 'YYYY-MM-DD' text (surrounding spaces allowed)."""
    return dt.date.fromisoformat(text.strip())


def days_between(start, end):
    """Whole days from start to end, negative when end is earlier.

    Both are 'YYYY-MM-DD' strings.
    """
    return (parse_date(end) - parse_date(start)).days


def add_days(start, days):
    """The date `days` days after start ('YYYY-MM-DD')."""
    return parse_date(start) + dt.timedelta(days=days)
