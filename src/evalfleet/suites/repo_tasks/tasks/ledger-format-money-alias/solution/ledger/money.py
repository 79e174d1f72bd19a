"""Amounts of money as integer cents."""

import warnings
from decimal import Decimal, InvalidOperation


def parse_amount(text):
    """Cents from text such as '12.34', '$1,234.50', '-5' or '0.5'; at most two decimals."""
    cleaned = str(text).strip().replace(",", "").replace("$", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"not an amount: {text!r}")
    cents = value * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"more than two decimals: {text!r}")
    return int(cents)


def format_cents(cents, symbol="$"):
    """Text such as '$1,234.50' or '-$5.00'."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{symbol}{whole:,}.{frac:02d}"


def format_money(cents):
    """Deprecated alias of format_cents(), kept for callers of version 1."""
    warnings.warn(
        "format_money() is deprecated; use format_cents()", DeprecationWarning, stacklevel=2
    )
    return format_cents(cents)
