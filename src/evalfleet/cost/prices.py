"""Price tables: tokens to dollars."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from evalfleet.errors import SpecError


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Dollars per million tokens for one model."""

    input_per_mtok: float
    output_per_mtok: float
    simulated: bool = False


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Model prices plus tier multipliers."""

    models: dict[str, ModelPrice]
    tiers: dict[str, float]
    as_of: str = ""

    def cost(self, model: str | None, tokens_in: int, tokens_out: int,
             tier: str | None = None) -> float:
        """Dollars for one call; an unknown model costs 0 (and is reported as unpriced)."""
        if model is None or model not in self.models:
            return 0.0
        p = self.models[model]
        mult = self.tiers.get(tier or "standard", 1.0)
        return mult * (tokens_in * p.input_per_mtok + tokens_out * p.output_per_mtok) / 1e6

    def knows(self, model: str | None) -> bool:
        """Whether a price exists for ``model``."""
        return model is not None and model in self.models


def _parse(data: object, source: str) -> PriceTable:
    if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict):
        raise SpecError("a price table must map 'models' to prices", source=source)
    models: dict[str, ModelPrice] = {}
    for name, row in data.get("models", {}).items():
        try:
            models[str(name)] = ModelPrice(float(row["input_per_mtok"]),
                                           float(row["output_per_mtok"]),
                                           bool(row.get("simulated", False)))
        except (KeyError, TypeError, ValueError):
            raise SpecError("needs numeric input_per_mtok and output_per_mtok", source=source,
                            field=f"models.{name}") from None
    tiers = {str(k): float(v) for k, v in (data.get("tiers") or {}).items()}
    return PriceTable(models, tiers, str(data.get("as_of", "")))


@lru_cache(maxsize=4)
def load_price_table(extra: str | None = None) -> PriceTable:
    """The packaged price table, extended by the YAML file ``extra`` (or $EVALFLEET_PRICES)."""
    base_path = Path(__file__).with_name("prices.yaml")
    table = _parse(yaml.safe_load(base_path.read_text(encoding="utf-8")), str(base_path))
    extra = extra or os.environ.get("EVALFLEET_PRICES")
    if extra:
        try:
            more = _parse(yaml.safe_load(Path(extra).read_text(encoding="utf-8")), extra)
        except OSError as exc:
            raise SpecError(f"cannot read price table: {exc.strerror}", source=extra) from None
        table = PriceTable({**table.models, **more.models}, {**table.tiers, **more.tiers},
                           more.as_of or table.as_of)
    return table
