"""Specifications: tasks, suites, agents, plans and run results, with their loaders."""

from evalfleet.spec.agent import AgentSpec
from evalfleet.spec.loaders import load_plan, load_suite, load_suite_ref
from evalfleet.spec.plan import (
    ExecutionSettings,
    FaultSpec,
    Plan,
    RateLimit,
    SimulatedModel,
    SimulatorSpec,
    SuiteRef,
)
from evalfleet.spec.result import RunResult, RunStatus
from evalfleet.spec.task import Limits, ScorerSpec, Suite, Task

__all__ = [
    "AgentSpec",
    "ExecutionSettings",
    "FaultSpec",
    "Limits",
    "Plan",
    "RateLimit",
    "RunResult",
    "RunStatus",
    "ScorerSpec",
    "SimulatedModel",
    "SimulatorSpec",
    "Suite",
    "SuiteRef",
    "Task",
    "load_plan",
    "load_suite",
    "load_suite_ref",
]
