"""Find a named factory among built-ins and installed entry-point plugins."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TypeVar

F = TypeVar("F")


def plugin_kinds(builtin: Mapping[str, F], group: str) -> dict[str, F]:
    """Built-ins plus the plugins of entry-point ``group`` (a built-in wins a name clash)."""
    kinds = dict(builtin)
    for ep in entry_points(group=group):
        kinds.setdefault(ep.name, ep.load())
    return kinds


def find_kind(builtin: Mapping[str, F], group: str, kind: str) -> tuple[F | None, list[str]]:
    """The factory called ``kind`` (plugins are only loaded when it is not built in), and the
    known names for an error message."""
    if kind in builtin:
        return builtin[kind], sorted(builtin)
    kinds = plugin_kinds(builtin, group)
    return kinds.get(kind), sorted(kinds)
