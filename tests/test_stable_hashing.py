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


def test_scorer_hashes_are_remembered_by_content_and_grading_version(
        monkeypatch: Any) -> None:
    """The writer's scorer_hash column: what the spec's content and the grading version give,
    remembered across spec objects of equal content and never across different ones."""
    from evalfleet.spec.task import ScorerSpec
    from evalfleet.store import results

    def plain(spec: ScorerSpec) -> str:
        return short_hash(results.GRADING_VERSION, spec.model_dump(mode="json"))

    specs = [ScorerSpec(kind="exact"), ScorerSpec(kind="includes"),
             ScorerSpec(kind="tests", args={"timeout_s": 30}),
             ScorerSpec(kind="tests", args={"timeout_s": 31}), ScorerSpec(kind="exact")]
    got = [results.scorer_hash(s) for s in specs]
    assert got == [plain(s) for s in specs]
    assert len(set(got)) == 4 and got[0] == got[4]
    monkeypatch.setattr(results, "GRADING_VERSION", "next")
    assert results.scorer_hash(specs[0]) == plain(specs[0]) != got[0]
