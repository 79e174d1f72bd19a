"""Price tables: tokens to dollars."""

from __future__ import annotations

import math
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


_KEYS = {"as_of", "models", "tiers"}


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
        models[str(name)] = ModelPrice(
            _number(row["input_per_mtok"], source, f"{field}.input_per_mtok"),
            _number(row["output_per_mtok"], source, f"{field}.output_per_mtok"),
            bool(row.get("simulated", False)))
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
        more = _parse(data, extra)
        table = PriceTable({**table.models, **more.models}, {**table.tiers, **more.tiers},
                           more.as_of or table.as_of)
    return table
