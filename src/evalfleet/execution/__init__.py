"""Execution: attempts, the dispatcher, rate limits, resources and the error policy."""

from evalfleet.execution.attempt import AttemptOutcome, run_attempt
from evalfleet.execution.dispatcher import Dispatcher, DispatchOutcome, DispatchStats
from evalfleet.execution.policy import ERROR_POLICY, ErrorPolicy, backoff_delay
from evalfleet.execution.ports import RunJournal
from evalfleet.execution.ratelimit import RateLimiter
from evalfleet.execution.resources import ResourcePool

__all__ = ["ERROR_POLICY", "AttemptOutcome", "DispatchOutcome", "DispatchStats", "Dispatcher",
           "ErrorPolicy", "RateLimiter", "ResourcePool", "RunJournal", "backoff_delay",
           "run_attempt"]
