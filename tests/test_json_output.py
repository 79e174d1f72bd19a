"""``--json`` output (api.dumps): byte for byte what ``json.dumps(indent=2, default=str)`` writes
with NaN and infinities as null, though lists of flat objects (query rows, a report's per-task
rows) go through json's C encoder in one call."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalfleet.api import output


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def reference(obj: Any) -> str:
    """What ``--json`` always wrote."""
    return json.dumps(_clean(obj), indent=2, default=str, allow_nan=False)


class Shown:
    """A value json cannot encode: written as its str()."""

    def __str__(self) -> str:
        return 'shown "as" {text},\n  {'


# strings that look like the separators the fast path relies on
TEXT = st.text() | st.sampled_from(["},\n    {", "}, {", "\n", '"', "{", "}", "", "é☃"])
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | TEXT
           | st.just(Shown()) | st.just(datetime(2026, 1, 2, tzinfo=UTC)) | st.just(Path("a/b")))
KEYS = TEXT | st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False,
                                                                   allow_infinity=False)
FLAT = st.dictionaries(KEYS, SCALARS, min_size=1, max_size=5)
VALUES = st.recursive(
    SCALARS | st.lists(FLAT, min_size=1, max_size=4),
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(KEYS, inner, max_size=4)
                   | st.lists(FLAT, max_size=4)),
    max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_dumps_writes_what_json_writes(obj: Any) -> None:
    assert output.dumps(obj) == reference(obj)


def test_rows_with_nan_and_nested_values() -> None:
    rows: list[Any] = [{"a": 1.5, "b": None, "c": "x"}, {"a": math.nan, "b": -math.inf},
                       {"a": [1, 2]}, {"nested": {"k": math.inf}}, {}]
    for obj in (rows, rows[:2], rows[:1], [rows[0], rows[0]], {"runs": [rows[0]] * 3},
                [[rows[0]]], (rows[0], rows[0])):
        assert output.dumps(obj) == reference(obj)
    with pytest.raises(ValueError):
        output.dumps({math.nan: 1})
    with pytest.raises(TypeError):
        output.dumps({(1, 2): 1})


def test_many_flat_rows_take_one_call_of_the_c_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Query rows and per-task rows are encoded in one call, not row by row in Python."""
    calls: list[int] = []
    real = output._flat_objects_json

    def spy(lst: Any, level: int) -> str:
        calls.append(len(lst))
        return real(lst, level)

    monkeypatch.setattr(output, "_flat_objects_json", spy)
    rows = [{"task_id": f"t{i}", "mean": i / 7, "ci_low": None, "n_runs": i} for i in range(500)]
    rep = {"agents": [{"name": "a", "tasks": rows}, {"name": "b", "tasks": rows}]}
    assert output.dumps(rep) == reference(rep)
    assert calls == [500, 500]
