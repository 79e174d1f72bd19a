"""YAML loading that remembers the line of every value, for file:line error messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evalfleet._util.parsing import value_error_text
from evalfleet.errors import SpecError

Loc = tuple[str | int, ...]

MAX_NODES = 200_000
"""Most values a document may expand to, counting every repetition an alias makes."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences a document may have."""
MAX_BYTES = 8 * 1024 * 1024
"""Largest YAML file read."""


@dataclass
class LineMap:
    """Maps a path of keys / indexes inside a document to a 1-based line number."""

    source: str
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of ``loc``, or of its nearest ancestor that has one."""
        key = tuple(loc)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)


UNPAIRED_SURROGATE = ("an unpaired surrogate escape such as \\ud800, which is not a character "
                      "(no text, file or hash can hold it)")
"""Why a value decoded from a ``\\uD800``-``\\uDFFF`` escape is refused: YAML's and JSON's
parsers accept such an escape alone, and the string it makes fails every UTF-8 encode later
(a task's hash, the journal, a result file), far from the file that held it."""


def is_text(value: str) -> bool:
    """Whether ``value`` can be encoded as UTF-8 (holds no unpaired surrogate)."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _check_size(root: yaml.Node, source: str) -> None:
    """Refuse a document that would expand too far or nest too deep, before building it.

    Aliases let a few lines stand for an exponential number of values (a "billion laughs"
    document), and an alias inside its own anchor makes a cycle; both would hang or exhaust the
    stack when the value is built. The sizes are computed on the node graph, each node once.

    Raises:
        SpecError: naming the file and the line of the offending node.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    # iterative post-order walk: (node, children visited?)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            line = node.start_mark.line + 1
            if size[key] > MAX_NODES:
                raise SpecError(f"the YAML expands to more than {MAX_NODES:,} values (aliases "
                                "repeating anchors?)", source=source, line=line)
            if depth[key] > MAX_DEPTH:
                raise SpecError(f"the YAML nests deeper than {MAX_DEPTH} levels",
                                source=source, line=line)
            continue
        if key in size:
            continue
        if key in on_path:
            raise SpecError("the YAML refers to itself (an alias inside its own anchor)",
                            source=source, line=node.start_mark.line + 1)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
        if len(on_path) > MAX_DEPTH:
            raise SpecError(f"the YAML nests deeper than {MAX_DEPTH} levels", source=source,
                            line=node.start_mark.line + 1)


def _construct(node: yaml.Node, loc: Loc, lmap: LineMap, loader: yaml.SafeLoader) -> Any:
    lmap.lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, lmap, loader)
            if not isinstance(key, str | int | float | bool) or key is None:
                raise SpecError(f"mapping key {key!r} is not a plain value",
                                source=lmap.source, line=key_node.start_mark.line + 1)
            if key in out:
                raise SpecError(f"duplicate key '{key}'", source=lmap.source,
                                line=key_node.start_mark.line + 1, field=str(key))
            skey = key if isinstance(key, str) else str(key)
            lmap.lines[(*loc, skey)] = key_node.start_mark.line + 1
            out[skey] = _construct(value_node, (*loc, skey), lmap, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*loc, i), lmap, loader) for i, item in enumerate(node.value)]
    return _scalar(node, lmap, loader)


def _scalar(node: yaml.Node, lmap: LineMap, loader: yaml.SafeLoader) -> Any:
    """The value of a key or of a leaf node; a string must be text."""
    try:
        value = loader.construct_object(node, deep=True)
    except ValueError as exc:  # a date such as 2021-13-45, an integer of 5,000 digits
        raise SpecError(f"cannot read this value: {value_error_text(exc)}", source=lmap.source,
                        line=node.start_mark.line + 1) from None
    if isinstance(value, str) and not is_text(value):
        raise SpecError(f"the value holds {UNPAIRED_SURROGATE}", source=lmap.source,
                        line=node.start_mark.line + 1)
    return value


def load_yaml(text: str, source: str) -> tuple[Any, LineMap]:
    """Parse one YAML document; return the value and its line map.

    Raises:
        SpecError: with the file and line of the syntax error.
    """
    lmap = LineMap(source)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lmap
        _check_size(node, source)
        return _construct(node, (), lmap, loader), lmap
    except RecursionError:
        # composing the node graph recurses once per level, before _check_size can look
        raise SpecError(f"the YAML nests deeper than {MAX_DEPTH} levels", source=source) \
            from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if mark is not None and exc.context_mark is not None \
                and mark.line >= len(text.splitlines()):
            mark = exc.context_mark  # "unexpected end": point at what was left open
        line = mark.line + 1 if mark is not None else None
        raise SpecError(f"invalid YAML: {exc.problem or exc.context}", source=source,
                        line=line) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", source=source) from None
    finally:
        loader.dispose()


def load_yaml_file(path: Path) -> tuple[Any, LineMap]:
    """Read and parse a YAML file; a missing or unreadable file is a :class:`SpecError`."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise SpecError(f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB",
                            source=str(path))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("file does not exist", source=str(path)) from None
    except UnicodeDecodeError:
        raise SpecError("file is not valid UTF-8", source=str(path)) from None
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", source=str(path)) from None
    return load_yaml(text, str(path))
