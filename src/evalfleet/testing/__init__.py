"""Test doubles: a SIMULATED OpenAI-compatible model server and scripted agents.

Nothing here is a real model. The simulator lives in :mod:`evalfleet.testing.simulator`;
scripted agents for tests and benchmarks in :mod:`evalfleet.testing.agents`.
"""

__all__: list[str] = []
