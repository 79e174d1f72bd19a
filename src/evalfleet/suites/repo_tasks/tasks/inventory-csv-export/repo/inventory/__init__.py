"""A tiny stock-keeping package."""

from inventory.models import Item
from inventory.report import format_table, low_stock
from inventory.store import Inventory, OutOfStockError

__all__ = ["Inventory", "Item", "OutOfStockError", "format_table", "low_stock"]
