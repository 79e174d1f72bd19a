"""Agent specifications."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evalfleet._util import short_hash


class AgentSpec(BaseModel):
    """What to run as the agent. Rebuilt from this description on any worker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", description="Agent name.")
    version: str = Field("0", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$",
                         description="Agent version.")
    kind: str = Field(description="Adapter: python, command, openai or a plugin name.")
    args: dict[str, Any] = Field(default_factory=dict, description="Adapter arguments.")
    model: str | None = Field(None, description="Model name, for pricing and reports.")
    tier: str | None = Field(None, description="Price tier of the model, e.g. standard or batch.")
    provider: str | None = Field(None, description="Rate-limit key; defaults to the model name.")

    @cached_property
    def fingerprint(self) -> str:
        """Hash of everything that affects behaviour."""
        return short_hash(self.model_dump(mode="json"))

    @property
    def label(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def rate_limit_key(self) -> str:
        """The provider whose rate limits this agent's model calls count against."""
        return self.provider or self.model or self.name
