"""Analysis: reports, comparisons, power, exports over the warehouse with evalfleet.stats.

Names are imported on first use: `evalfleet slice` needs the report's and comparison's
statistics, not power analysis or HTML export.
"""

from typing import TYPE_CHECKING

from evalfleet._util.imports import lazy_exports

if TYPE_CHECKING:
    from evalfleet.analysis.compare import Side, compare
    from evalfleet.analysis.export import (
        compare_html,
        compare_markdown,
        report_html,
        report_markdown,
    )
    from evalfleet.analysis.power import PowerInputs, assumed_inputs, estimate_inputs, plan_power
    from evalfleet.analysis.report import build_report

_EXPORTS = {
    "Side": "evalfleet.analysis.compare", "compare": "evalfleet.analysis.compare",
    "compare_html": "evalfleet.analysis.export", "compare_markdown": "evalfleet.analysis.export",
    "report_html": "evalfleet.analysis.export", "report_markdown": "evalfleet.analysis.export",
    "PowerInputs": "evalfleet.analysis.power", "assumed_inputs": "evalfleet.analysis.power",
    "estimate_inputs": "evalfleet.analysis.power", "plan_power": "evalfleet.analysis.power",
    "build_report": "evalfleet.analysis.report",
}

__all__ = ["PowerInputs", "Side", "assumed_inputs", "build_report", "compare", "compare_html",
           "compare_markdown", "estimate_inputs", "plan_power", "report_html",
           "report_markdown"]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
