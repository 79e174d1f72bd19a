"""The error-class table: what each class of failure means for retries and for the numbers."""

from __future__ import annotations

from dataclasses import dataclass

from evalfleet.spec.result import RunStatus


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    """How one error class is handled."""

    retried: bool
    """Another attempt is made (with backoff) while attempts remain."""
    counts_in_pass_rate: bool
    """The run counts in the pass rate (as a failure) rather than as missing data."""
    status: RunStatus
    """Status of the committed row."""


ERROR_POLICY: dict[str, ErrorPolicy] = {
    "agent_error": ErrorPolicy(retried=False, counts_in_pass_rate=True, status="failed"),
    "task_timeout": ErrorPolicy(retried=False, counts_in_pass_rate=True, status="failed"),
    "infra_error": ErrorPolicy(retried=True, counts_in_pass_rate=False, status="errored"),
    "scorer_error": ErrorPolicy(retried=False, counts_in_pass_rate=False, status="errored"),
    "config_error": ErrorPolicy(retried=False, counts_in_pass_rate=False, status="errored"),
    "cancelled": ErrorPolicy(retried=False, counts_in_pass_rate=False, status="cancelled"),
}
"""Agent failures are results; infrastructure and scorer failures are missing data; a
configuration error stops the eval. The dispatcher takes every retry decision from here."""


def backoff_delay(attempt: int, base_s: float, max_s: float, rand: float) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(max, base * 2**(attempt-1))].

    ``rand`` is a uniform draw in [0, 1) supplied by the caller (testable, no global RNG).
    """
    return float(rand * min(max_s, base_s * 2.0 ** max(attempt - 1, 0)))
