"""Convert INI string values to Python values."""

_TRUE = frozenset({"1", "yes", "true", "on"})
_FALSE = frozenset({"0", "no", "false", "off"})


def to_bool(value):
    """True for 1/yes/true/on and False for 0/no/false/off, in any case; else ValueError."""
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def to_int(value):
    """An int; underscores between digits are allowed ('10_000')."""
    return int(value.strip())


def to_list(value, sep=","):
    """Items split on `sep`, stripped, empty items dropped."""
    return [item.strip() for item in value.split(sep) if item.strip()]
