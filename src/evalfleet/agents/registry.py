"""Build agents from their specs: built-in adapters plus the ``evalfleet.agents`` entry points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from evalfleet._util.plugins import find_kind, plugin_kinds
from evalfleet.agents.base import Agent
from evalfleet.errors import SpecError
from evalfleet.spec._validate import validate
from evalfleet.spec.agent import AgentSpec

AgentFactory = Callable[[AgentSpec], Agent]


# Adapters are imported when first used: the openai client alone costs ~40 MB and 0.3 s,
# which a plan of python agents should not pay.


def _python(spec: AgentSpec) -> Agent:
    from evalfleet.agents.python_agent import PythonAgent, PythonAgentArgs

    return PythonAgent(_args(PythonAgentArgs, spec))


def _command(spec: AgentSpec) -> Agent:
    from evalfleet.agents.command import CommandAgent, CommandAgentArgs

    return CommandAgent(_args(CommandAgentArgs, spec))


def _openai(spec: AgentSpec) -> Agent:
    from evalfleet.agents.openai_agent import OpenAIAgent, OpenAIAgentArgs

    return OpenAIAgent(_args(OpenAIAgentArgs, spec), spec.model)


BUILTIN: dict[str, AgentFactory] = {"python": _python, "command": _command, "openai": _openai}


def _args(model: type[BaseModel], spec: AgentSpec) -> Any:
    return validate(model, spec.args, source=f"agent {spec.label}", prefix=("args",))


def agent_kinds() -> dict[str, AgentFactory]:
    """Built-in adapters plus installed plugins (entry-point group ``evalfleet.agents``)."""
    return plugin_kinds(BUILTIN, "evalfleet.agents")


def create_agent(spec: AgentSpec) -> Agent:
    """Build the agent a spec describes.

    Raises:
        SpecError: unknown kind or invalid arguments.
    """
    factory, known = find_kind(BUILTIN, "evalfleet.agents", spec.kind)
    if factory is None:
        raise SpecError(f"unknown agent kind '{spec.kind}' (known: {', '.join(known)})",
                        field="kind")
    return factory(spec)
