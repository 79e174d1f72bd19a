"""Price tables: tokens to dollars, and the one place an agent's price is resolved.

Token counts follow OpenAI's usage semantics: ``tokens_in`` is every prompt token, the cached
ones (``usage.prompt_tokens_details.cached_tokens``) included; ``cached`` says how many of them
the provider served from its prompt cache, billed at the cached-input price.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml

from evalfleet._util.parsing import value_error_text
from evalfleet.errors import SpecError
from evalfleet.spec.agent import AgentSpec, InlinePrice


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Dollars per million tokens for one model."""

    input_per_mtok: float
    output_per_mtok: float
    simulated: bool = False
    cached_input_per_mtok: float | None = None
    """Prompt tokens served from the provider's cache; None: the input price."""

    @property
    def cached_rate(self) -> float:
        """Dollars per million cached prompt tokens."""
        return self.input_per_mtok if self.cached_input_per_mtok is None \
            else self.cached_input_per_mtok

    def cost(self, tokens_in: int, tokens_out: int, cached: int = 0) -> float:
        """Dollars for ``tokens_in`` prompt tokens (``cached`` of them from the cache) and
        ``tokens_out`` completion tokens."""
        cached = min(max(cached, 0), tokens_in)
        return ((tokens_in - cached) * self.input_per_mtok + cached * self.cached_rate
                + tokens_out * self.output_per_mtok) / 1e6


PriceSource = Literal["table", "inline", "free", "unpriced", "no-model"]
"""Where an agent's price comes from: the price table, the agent's own ``price`` mapping,
``price: 0`` (explicitly free), nowhere although it names a model (unpriced: its model cost
shows as unknown, not $0), or nowhere because it names no model (it makes no priced calls)."""


@dataclass(frozen=True, slots=True)
class AgentPrice:
    """The price one agent's model calls are charged at."""

    source: PriceSource
    price: ModelPrice | None
    multiplier: float = 1.0
    """The agent's tier multiplier (e.g. batch 0.5), applied to table and inline prices."""

    @property
    def unpriced(self) -> bool:
        """The agent names a model that has no price: its $0 is not a measurement."""
        return self.source == "unpriced"

    def cost(self, tokens_in: int, tokens_out: int, cached: int = 0) -> float:
        """Dollars for one call (0 when free, unpriced or without a model)."""
        if self.price is None:
            return 0.0
        return self.multiplier * self.price.cost(tokens_in, tokens_out, cached)


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Model prices plus tier multipliers."""

    models: dict[str, ModelPrice]
    tiers: dict[str, float]
    as_of: str = ""

    def cost(self, model: str | None, tokens_in: int, tokens_out: int,
             tier: str | None = None, cached: int = 0) -> float:
        """Dollars for one call at the table's price; an unknown model costs 0 (and is reported
        as unpriced). ``tokens_in`` includes the ``cached`` prompt tokens."""
        if model is None or model not in self.models:
            return 0.0
        return self.multiplier(tier) * self.models[model].cost(tokens_in, tokens_out, cached)

    def multiplier(self, tier: str | None) -> float:
        """The price multiplier of ``tier`` (1 for standard or an unknown tier)."""
        return self.tiers.get(tier or "standard", 1.0)

    def knows(self, model: str | None) -> bool:
        """Whether a price exists for ``model``."""
        return model is not None and model in self.models

    def for_agent(self, spec: AgentSpec) -> AgentPrice:
        """The price of ``spec``'s model calls: its own ``price`` first (0 = free, a mapping =
        those prices), then the table's price of its model; a model in neither is unpriced.
        Every caller that prices an agent's tokens or asks whether it is priced uses this."""
        mult = self.multiplier(spec.tier)
        if isinstance(spec.price, InlinePrice):
            p = spec.price
            return AgentPrice("inline", ModelPrice(p.input_per_mtok, p.output_per_mtok,
                                                   cached_input_per_mtok=p.cached_input_per_mtok),
                              mult)
        if spec.price is not None:  # the validator allows only 0 here
            return AgentPrice("free", ModelPrice(0.0, 0.0), mult)
        if spec.model is None:
            return AgentPrice("no-model", None, mult)
        if spec.model in self.models:
            return AgentPrice("table", self.models[spec.model], mult)
        return AgentPrice("unpriced", None, mult)

    def unpriced(self, agents: Iterable[AgentSpec]) -> list[AgentSpec]:
        """The agents whose model has no price (neither in the table nor given ``price``)."""
        return [a for a in agents if self.for_agent(a).unpriced]


def unpriced_warning(spec: AgentSpec) -> str:
    """The one-line warning for an unpriced agent, saying how to fix it."""
    return (f"agent {spec.label}: model {spec.model!r} has no price, so its model cost will "
            "show as unpriced, not $0; give the agent 'price: 0' if it is free (a local "
            "model), a price mapping (input_per_mtok, output_per_mtok), or a price file in "
            "EVALFLEET_PRICES")


_KEYS = {"as_of", "models", "tiers"}
_MODEL_KEYS = {"input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "simulated"}


def _number(value: object, source: str, field: str, *, positive: bool = False) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or x < 0 or (positive and x == 0):
        raise SpecError(f"needs a finite {'positive' if positive else 'non-negative'} number, "
                        f"not {value!r}", source=source, field=field)
    return x


def _parse(data: object, source: str) -> PriceTable:
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise SpecError("a price table must map 'models' to prices (and may have 'tiers' and "
                        "'as_of')", source=source)
    unknown = sorted(str(k) for k in data if k not in _KEYS)
    if unknown:
        raise SpecError(f"unknown keys {', '.join(unknown)} (a price table has models, tiers "
                        "and as_of)", source=source)
    models: dict[str, ModelPrice] = {}
    for name, row in data["models"].items():
        field = f"models.{name}"
        if not isinstance(row, dict) or not {"input_per_mtok", "output_per_mtok"} <= set(row):
            raise SpecError("needs numeric input_per_mtok and output_per_mtok", source=source,
                            field=field)
        unknown_fields = sorted(str(k) for k in row if k not in _MODEL_KEYS)
        if unknown_fields:
            raise SpecError(f"unknown keys {', '.join(unknown_fields)} (a model price has "
                            f"{', '.join(sorted(_MODEL_KEYS))})", source=source, field=field)
        cached = row.get("cached_input_per_mtok")
        models[str(name)] = ModelPrice(
            _number(row["input_per_mtok"], source, f"{field}.input_per_mtok"),
            _number(row["output_per_mtok"], source, f"{field}.output_per_mtok"),
            bool(row.get("simulated", False)),
            None if cached is None
            else _number(cached, source, f"{field}.cached_input_per_mtok"))
    tiers_raw = data.get("tiers") or {}
    if not isinstance(tiers_raw, dict):
        raise SpecError("'tiers' must map tier names to multipliers", source=source,
                        field="tiers")
    tiers = {str(k): _number(v, source, f"tiers.{k}", positive=True)
             for k, v in tiers_raw.items()}
    return PriceTable(models, tiers, str(data.get("as_of", "")))


@lru_cache(maxsize=4)
def load_price_table(extra: str | None = None) -> PriceTable:
    """The packaged price table, extended by the YAML file ``extra`` (or $EVALFLEET_PRICES)."""
    base_path = Path(__file__).with_name("prices.yaml")
    table = _parse(yaml.safe_load(base_path.read_text(encoding="utf-8")), str(base_path))
    extra = extra or os.environ.get("EVALFLEET_PRICES")
    if extra:
        try:
            data = yaml.safe_load(Path(extra).read_text(encoding="utf-8"))
        except OSError as exc:
            raise SpecError(f"cannot read price table: {exc.strerror}", source=extra) from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise SpecError(f"not a YAML price table: {str(exc).splitlines()[0]}",
                            source=extra) from None
        except ValueError as exc:  # a date such as 2021-13-45, an integer of 5,000 digits
            raise SpecError(f"not a YAML price table: {value_error_text(exc)}",
                            source=extra) from None
        more = _parse(data, extra)
        table = PriceTable({**table.models, **more.models}, {**table.tiers, **more.tiers},
                           more.as_of or table.as_of)
    return table
