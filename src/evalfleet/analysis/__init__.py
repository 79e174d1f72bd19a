"""Analysis: reports, comparisons, power, exports over the warehouse with evalfleet.stats."""

from evalfleet.analysis.compare import Side, compare
from evalfleet.analysis.export import compare_html, compare_markdown, report_html, report_markdown
from evalfleet.analysis.power import PowerInputs, assumed_inputs, estimate_inputs, plan_power
from evalfleet.analysis.report import build_report

__all__ = ["PowerInputs", "Side", "assumed_inputs", "build_report", "compare", "compare_html",
           "compare_markdown", "estimate_inputs", "plan_power", "report_html",
           "report_markdown"]
