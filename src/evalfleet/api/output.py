"""JSON for ``--json`` output."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from functools import cache
from itertools import chain
from typing import Any, Literal

_INDENT = "  "


def dumps(obj: Any) -> str:
    """JSON for ``--json`` output: indented by two spaces, NaN and +-Infinity as null (they are
    not JSON), anything else json cannot encode as its ``str()``.

    Byte for byte ``json.dumps(obj, indent=2, default=str)`` with non-finite floats made None,
    but a list of flat objects (a query's rows, a report's per-task rows) is written by json's
    C encoder in one call: with an indent json encodes in pure Python, which took 1.9 s of CPU
    for the 100,000 per-task rows of a 1M-run report (0.8 s this way).
    """
    return "".join(_encode(obj, 0))


def _encode(o: Any, level: int) -> Iterator[str]:
    """The chunks of ``o`` at nesting ``level``, as json's indenting encoder makes them."""
    if isinstance(o, (list, tuple)):
        yield from _encode_list(o, level)
    elif isinstance(o, dict):
        yield from _encode_dict(o, level)
    else:
        yield _scalar(o)


def _scalar(o: Any) -> str:
    """A value that is neither a list nor an object, in json's order of checks."""
    if isinstance(o, str):
        return json.encoder.encode_basestring_ascii(o)
    if o is None:
        return "null"
    if o is True:
        return "true"
    if o is False:
        return "false"
    if isinstance(o, int):
        return int.__repr__(o)
    if isinstance(o, float):
        return float.__repr__(o) if math.isfinite(o) else "null"
    return _scalar(str(o))  # default=str


def _encode_list(lst: list[Any] | tuple[Any, ...], level: int) -> Iterator[str]:
    if not lst:
        yield "[]"
        return
    if _flat_objects(lst):
        try:
            yield _flat_objects_json(lst, level)
            return
        except ValueError:  # a non-finite float: written as null below
            pass
    inner = "\n" + _INDENT * (level + 1)
    yield "[" + inner
    for i, value in enumerate(lst):
        if i:
            yield "," + inner
        yield from _encode(value, level + 1)
    yield "\n" + _INDENT * level + "]"


def _encode_dict(dct: dict[Any, Any], level: int) -> Iterator[str]:
    if not dct:
        yield "{}"
        return
    inner = "\n" + _INDENT * (level + 1)
    yield "{" + inner
    for i, (key, value) in enumerate(dct.items()):
        if i:
            yield "," + inner
        yield json.encoder.encode_basestring_ascii(_key(key)) + ": "
        yield from _encode(value, level + 1)
    yield "\n" + _INDENT * level + "}"


def _key(key: Any) -> str:
    """An object key as json writes it (a non-finite float key is an error there too)."""
    if isinstance(key, str):
        return key
    if isinstance(key, float):
        if not math.isfinite(key):
            raise ValueError("Out of range float values are not JSON compliant: " + repr(key))
        return float.__repr__(key)
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _flat_objects(lst: list[Any] | tuple[Any, ...]) -> bool:
    """Whether every item is a non-empty dict none of whose values is a list or an object."""
    if set(map(type, lst)) != {dict} or not all(lst):
        return False
    kinds = set(map(type, chain.from_iterable(map(dict.values, lst))))
    return not any(issubclass(k, (list, tuple, dict)) for k in kinds)


def _flat_objects_json(lst: list[Any] | tuple[Any, ...], level: int) -> str:
    """A list of flat objects at ``level`` by json's C encoder, whose one item separator puts
    each field on its line; the objects' own lines are added around them. No encoded string
    holds a newline (json escapes it), so a newline is always a separator's, and one between
    ``}`` and ``{`` always separates two objects.

    Raises:
        ValueError: a non-finite float (json's C encoder writes no null for it).
    """
    fields = _INDENT * (level + 2)
    items = "\n" + _INDENT * (level + 1)
    text: str = _flat_encoder(level).encode(lst)
    body = text[2:-2].replace("},\n" + fields + "{", items + "}," + items + "{\n" + fields)
    return "[" + items + "{\n" + fields + body + items + "}\n" + _INDENT * level + "]"


@cache
def _flat_encoder(level: int) -> json.JSONEncoder:
    return json.JSONEncoder(separators=(",\n" + _INDENT * (level + 2), ": "), allow_nan=False,
                            default=str)


def report_text(rep: dict[str, Any], fmt: Literal["markdown", "html"]) -> str:
    """A report (as :func:`evalfleet.api.report` returns it) as Markdown or self-contained,
    offline HTML."""
    from evalfleet.analysis import export

    return export.report_markdown(rep) if fmt == "markdown" else export.report_html(rep)


def compare_text(cmp: dict[str, Any], fmt: Literal["markdown", "html"]) -> str:
    """A comparison (as :func:`evalfleet.api.compare` returns it) as Markdown or HTML."""
    from evalfleet.analysis import export

    return export.compare_markdown(cmp) if fmt == "markdown" else export.compare_html(cmp)
