"""Cost: price tables and budget arithmetic."""

from evalfleet.cost.budget import Budget
from evalfleet.cost.prices import ModelPrice, PriceTable, load_price_table

__all__ = ["Budget", "ModelPrice", "PriceTable", "load_price_table"]
