"""Analysis: reports over the warehouse with the statistics of evalfleet.stats."""

from evalfleet.analysis.report import build_report

__all__ = ["build_report"]
