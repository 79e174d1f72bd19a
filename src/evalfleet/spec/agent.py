"""Agent specifications."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evalfleet._util import short_hash

NOT_BEHAVIOUR = frozenset({"budget_usd", "price"})
"""Agent fields that change what a run costs or may spend, not what it does: left out of the
fingerprint, so run ids and reuse do not depend on them."""


class InlinePrice(BaseModel):
    """Dollars per million tokens for this agent's model, instead of the price table's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: float = Field(ge=0, le=1e6, description="Prompt tokens.")
    output_per_mtok: float = Field(ge=0, le=1e6, description="Completion tokens.")
    cached_input_per_mtok: float | None = Field(
        None, ge=0, le=1e6, description="Prompt tokens served from the provider's cache "
                                        "(default: the input price).")


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
    price: InlinePrice | float | None = Field(
        None, description="This agent's model price: 0 says it is free (a local model), a "
                          "mapping gives per-million-token prices; none takes the price table's. "
                          "A model in neither is unpriced, and is warned about.")
    budget_usd: float | None = Field(None, gt=0, le=10_000_000,
                                     description="Stop scheduling this agent's runs once it "
                                                 "has spent this much (the eval goes on).")

    @field_validator("price")
    @classmethod
    def _zero_or_prices(cls, v: InlinePrice | float | None) -> InlinePrice | float | None:
        if isinstance(v, float | int) and not isinstance(v, InlinePrice) and v != 0:
            raise ValueError("price is 0 (free) or a mapping with input_per_mtok and "
                             "output_per_mtok")
        return v

    @cached_property
    def fingerprint(self) -> str:
        """Hash of everything that affects behaviour (not its price or budget)."""
        return short_hash(self.model_dump(mode="json", exclude=set(NOT_BEHAVIOUR)))

    @property
    def label(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def rate_limit_key(self) -> str:
        """The provider whose rate limits this agent's model calls count against."""
        return self.provider or self.model or self.name
