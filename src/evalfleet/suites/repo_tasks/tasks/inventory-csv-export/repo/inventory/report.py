"""Text reports over an inventory."""


def low_stock(inventory):
    """Items at or below their reorder level, lowest quantity first (ties by SKU)."""
    items = [item for item in inventory.items() if item.quantity <= item.reorder_level]
    return sorted(items, key=lambda item: (item.quantity, item.sku))


def format_table(inventory):
    """A fixed-width table of SKU, name, quantity and value, with a total line."""
    lines = [f"{'SKU':<8} {'NAME':<20} {'QTY':>5} {'VALUE':>10}"]
    for item in inventory.items():
        lines.append(
            f"{item.sku:<8} {item.name[:20]:<20} {item.quantity:>5} {item.value():>10.2f}"
        )
    lines.append(f"{'TOTAL':<8} {'':<20} {'':>5} {inventory.total_value():>10.2f}")
    return "\n".join(lines)
