"""Stable hashing of JSON-like values (task hashes, agent fingerprints, run ids)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              default=str)
"""The encoder ``json.dumps`` would build for :func:`stable_json` on every call (hashing a
suite's tasks and run ids calls it twice per run)."""


def stable_json(value: Any) -> str:
    """Serialise ``value`` to canonical JSON: sorted keys, no whitespace, UTF-8 kept."""
    return _CANONICAL.encode(value)


def short_hash(*parts: Any, length: int = 16) -> str:
    """Hex SHA-256 prefix of the canonical JSON of ``parts``."""
    digest = hashlib.sha256(stable_json(list(parts)).encode("utf-8")).hexdigest()
    return digest[:length]
