"""The price table: a file given in EVALFLEET_PRICES extends the packaged one, and anything that
is not a price table is refused with a message naming the file and the field, never read as
'no prices' (which would show every model as unpriced)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalfleet.cost.prices import load_price_table
from evalfleet.errors import SpecError


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    return str(path)


def test_an_extra_table_adds_and_overrides_prices(tmp_path: Path) -> None:
    extra = _write(tmp_path, "models:\n  my-model: {input_per_mtok: 1.0, output_per_mtok: 4.0}\n"
                             "tiers: {batch: 0.5}\n")
    table = load_price_table(extra)
    assert table.knows("my-model") and table.knows("gpt-4o")  # packaged prices stay
    # 1,000 in and 500 out at $1 / $4 per million, half price in the batch tier
    assert table.cost("my-model", 1000, 500) == pytest.approx(0.003)
    assert table.cost("my-model", 1000, 500, tier="batch") == pytest.approx(0.0015)


@pytest.mark.parametrize(("text", "words"), [
    ("name: demo\nsuite: {builtin: humaneval}\nagents: []\n", "must map 'models'"),  # a plan
    ("models:\n  m: {input_per_mtok: 1, output_per_mtok: 1}\nmodel: {}\n", "unknown keys model"),
    ("models:\n  m: {input_per_mtok: -1, output_per_mtok: 1}\n", "models.m.input_per_mtok"),
    ("models:\n  m: {input_per_mtok: .nan, output_per_mtok: 1}\n", "models.m.input_per_mtok"),
    ("models:\n  m: {input_per_mtok: 1}\n", "models.m"),
    ("models: {}\ntiers: {batch: cheap}\n", "tiers.batch"),
    ("models: {}\ntiers: {batch: 0}\n", "tiers.batch"),
    ("models: [a, b]\n", "must map 'models'"),
    ("models: {a: [unclosed\n", "not a YAML price table"),
    # YAML's syntax allows values Python cannot hold: a ValueError, not a YAML error
    ("as_of: 2026-13-45\nmodels: {}\n", "not a YAML price table: month must be in 1..12"),
])
def test_what_is_not_a_price_table_is_refused(tmp_path: Path, text: str, words: str) -> None:
    extra = _write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_price_table(extra)
    assert words in str(info.value) and extra in str(info.value)
