"""Item records."""

from dataclasses import dataclass


@dataclass
class Item:
    """One stock-keeping unit."""

    sku: str
    name: str
    unit_price: float
    quantity: int = 0
    reorder_level: int = 5

    def value(self):
        """Stock value of this item, rounded to cents."""
        return round(self.unit_price * self.quantity, 2)
