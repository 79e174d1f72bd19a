"""Agents: the interface and the python, command and openai adapters."""

from evalfleet.agents.base import Agent, AgentContext, AgentOutput, ModelGate, NoGate, Usage
from evalfleet.agents.registry import agent_kinds, create_agent

__all__ = ["Agent", "AgentContext", "AgentOutput", "ModelGate", "NoGate", "Usage", "agent_kinds",
           "create_agent"]
