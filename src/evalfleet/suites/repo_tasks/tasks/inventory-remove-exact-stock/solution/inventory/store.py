"""The inventory: items keyed by SKU."""

from inventory.models import Item


class OutOfStockError(Exception):
    """Raised when removing more units than are in stock."""


def normalize_sku(sku):
    """The canonical spelling of a SKU: surrounding spaces removed, upper case."""
    return sku.strip().upper()


class Inventory:
    """Items keyed by SKU; SKUs are case-insensitive."""

    def __init__(self):
        self._items = {}

    def add(self, sku, name, unit_price, quantity=0, reorder_level=5):
        """Add a new item, or add units to an existing one; returns the item."""
        if quantity < 0:
            raise ValueError("quantity must not be negative")
        sku = normalize_sku(sku)
        if sku in self._items:
            self._items[sku].quantity += quantity
        else:
            self._items[sku] = Item(sku, name, unit_price, quantity, reorder_level)
        return self._items[sku]

    def remove(self, sku, quantity):
        """Take units out of stock; returns the quantity left."""
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        item = self.get(sku)
        if quantity > item.quantity:
            raise OutOfStockError(f"only {item.quantity} of {item.sku} in stock")
        item.quantity -= quantity
        return item.quantity

    def get(self, sku):
        """The item with this SKU; KeyError if unknown."""
        sku = normalize_sku(sku)
        try:
            return self._items[sku]
        except KeyError:
            raise KeyError(f"unknown SKU {sku}") from None

    def quantity(self, sku):
        """Units in stock of one SKU."""
        return self.get(sku).quantity

    def total_value(self):
        """Value of all stock, rounded to cents."""
        return round(sum(item.value() for item in self._items.values()), 2)

    def items(self):
        """All items sorted by SKU."""
        return sorted(self._items.values(), key=lambda item: item.sku)

    def __len__(self):
        return len(self._items)

    def __contains__(self, sku):
        return normalize_sku(sku) in self._items
