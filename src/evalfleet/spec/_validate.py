"""Turn pydantic validation errors into one clear :class:`SpecError`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from evalfleet.errors import SpecError
from evalfleet.spec._yaml import LineMap

M = TypeVar("M", bound=BaseModel)


def _describe(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid value"))
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    value = err.get("input")
    if kind not in ("missing",) and not isinstance(value, dict | list) and value is not None:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return f"{msg} (got {shown})"
    return msg


def validate(model: type[M], data: Any, *, source: str, lines: LineMap | None = None,
             prefix: tuple[str | int, ...] = ()) -> M:
    """Validate ``data`` as ``model``; on failure raise a SpecError naming file, line and field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(x for x in first["loc"]
                    if not (isinstance(x, str) and x.startswith("function-")))
        full = (*prefix, *loc)
        line = lines.line_of(full) if lines is not None else None
        fld = ".".join(str(p) for p in full) or None
        more = len(exc.errors()) - 1
        tail = f" ({more} more problem{'s' if more > 1 else ''} in this file)" if more else ""
        raise SpecError(_describe(first) + tail, source=source, line=line, field=fld) from None
