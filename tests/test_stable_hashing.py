"""Task hashes, run ids and fingerprints are stored and compared across releases: the
canonical JSON behind them must stay byte for byte what ``json.dumps`` gives."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from evalfleet._util.hashing import short_hash, stable_json

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_stable_json_is_json_dumps_canonical(value: Any) -> None:
    want = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    assert stable_json(value) == want


def test_values_json_cannot_encode_go_through_str_and_hashes_are_pinned() -> None:
    when = dt.datetime(2026, 12, 2, 15, 0, tzinfo=dt.UTC)
    assert stable_json({"b": when, "a": "é"}) == '{"a":"é","b":"2026-12-02 15:00:00+00:00"}'
    # a change here changes every stored task hash and run id: reuse would find nothing
    assert short_hash("task", {"id": "t1", "input": "x"}, 3) == "b189fdf62c3edfa0"
