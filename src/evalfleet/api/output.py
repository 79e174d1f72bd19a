"""JSON for ``--json`` output."""

from __future__ import annotations

import json
import math
from typing import Any, Literal


def dumps(obj: Any) -> str:
    """JSON for ``--json`` output: NaN and +-Infinity become null (they are not JSON)."""
    return json.dumps(_clean(obj), indent=2, default=str, allow_nan=False)


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def report_text(rep: dict[str, Any], fmt: Literal["markdown", "html"]) -> str:
    """A report (as :func:`evalfleet.api.report` returns it) as Markdown or self-contained,
    offline HTML."""
    from evalfleet.analysis import export

    return export.report_markdown(rep) if fmt == "markdown" else export.report_html(rep)


def compare_text(cmp: dict[str, Any], fmt: Literal["markdown", "html"]) -> str:
    """A comparison (as :func:`evalfleet.api.compare` returns it) as Markdown or HTML."""
    from evalfleet.analysis import export

    return export.compare_markdown(cmp) if fmt == "markdown" else export.compare_html(cmp)
