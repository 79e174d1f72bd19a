"""Number formatting shared by the terminal, Markdown and HTML renderings."""

from __future__ import annotations

import math
from typing import Any


def missing(x: float | None) -> bool:
    """True for None or NaN."""
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(mean: float | None, lo: float | None = None, hi: float | None = None) -> str:
    """``71.3% ± 2.1`` (half-width of the 95% interval in points), or ``-``.

    An interval leaving [0, 100] is shown clipped, ``75.0% [0.0-100.0]``, and an asymmetric one
    (Wilson near 0% or 100%) with its limits, ``100.0% [97.7-100.0]``: a ``±`` would claim
    the same distance on both sides.
    """
    if mean is None or missing(mean):
        return "-"
    if lo is None or hi is None or missing(lo) or missing(hi):
        return f"{100 * mean:.1f}%"
    asymmetric = abs((mean - lo) - (hi - mean)) > 5e-4
    if lo < 0 or hi > 1 or asymmetric:
        return f"{100 * mean:.1f}% [{100 * max(lo, 0.0):.1f}-{100 * min(hi, 1.0):.1f}]"
    return f"{100 * mean:.1f}% ± {100 * (hi - lo) / 2:.1f}"


def interval(lo: float | None, hi: float | None) -> str:
    """A 95% interval of a rate in percent, clipped to [0, 100]."""
    if lo is None or hi is None or missing(lo) or missing(hi):
        return "-"
    return f"{100 * max(lo, 0.0):.1f}-{100 * min(hi, 1.0):.1f}%"


def pts(x: float | None, signed: bool = True) -> str:
    """A difference in percentage points."""
    if x is None or missing(x):
        return "-"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def pval(p: float | None) -> str:
    """A p-value, ``<0.0001`` when tiny."""
    if p is None or missing(p):
        return "-"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def money(x: float | None) -> str:
    """Dollars: cents from $1, else 4 decimals, or 3 significant digits below a cent."""
    if x is None or missing(x):
        return "-"
    sign, v = ("-" if x < 0 else ""), abs(x)
    if v >= 1 or v == 0:
        return f"{sign}${v:,.2f}"
    if v >= 0.01:
        return f"{sign}${v:.4f}"
    return f"{sign}${v:.{2 - math.floor(math.log10(v))}f}"


def money_delta(x: float | None) -> str:
    """A signed dollar difference."""
    if x is None or missing(x):
        return "-"
    return ("+" if x >= 0 else "") + money(x)


def secs(x: float | None, signed: bool = False) -> str:
    """Seconds, short."""
    if x is None or missing(x):
        return "-"
    return f"{x:+.2f}s" if signed else f"{x:.2f}s"


def count(x: float | None) -> str:
    """A whole number with thousands separators."""
    return "-" if x is None or missing(x) else f"{x:,.0f}"


TEST_NAMES = {"mcnemar-midp": "McNemar mid-p", "permutation-exact": "exact permutation",
              "paired-t": "paired t"}
"""Short names of the tests compare chooses between, printed beside every p."""


def method_label(d: dict[str, Any]) -> str:
    """The short name of the test whose p-value ``d`` carries."""
    return TEST_NAMES.get(str(d.get("test")), str(d.get("test") or "-"))


def mde_text(note: dict[str, Any] | None) -> str:
    """What a comparison could have detected, or why that is not known; never '0.0 pts'."""
    note = note or {}
    mde = note.get("mde")
    if mde is None or not mde > 0:
        return f"detectable change unknown: {note.get('why', 'not computed')}"
    return (f"this comparison can detect about {100 * mde:.1f} pts (two-sided, power "
            f"{note.get('power', 0.8):g}); smaller changes are not ruled out")


def excluded_text(ex: dict[str, Any] | None) -> str | None:
    """The flag raised when NEW lost a larger share of runs to infra/scorer errors than BASE."""
    if not ex or not ex.get("flagged"):
        return None
    b, n = ex["base"], ex["new"]
    return (f"NEW lost a larger share of its runs to infra/scorer errors than BASE: "
            f"{n['errored']}/{n['errored'] + n['scored']} ({100 * (n['rate'] or 0):.1f}%) vs "
            f"{b['errored']}/{b['errored'] + b['scored']} ({100 * (b['rate'] or 0):.1f}%); "
            "excluded runs are not in the score, so NEW's may flatter it")
