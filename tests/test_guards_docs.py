"""The documentation stands alone: nothing sends a reader to a file that is not in the repo.

STATISTICS.md, DESIGN.md and STYLE.md belonged to the project's planning and are not shipped,
and ``../shared`` is outside the repository. The source (docstrings, comments, help text), the
README and docs/ must not point at them.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MISSING = re.compile(r"STATISTICS\.md|DESIGN\.md|STYLE\.md|\.\./shared")


def _documented_files() -> list[Path]:
    files = sorted((ROOT / "src" / "evalfleet").rglob("*.py"))
    files += [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [f for f in files if f.is_file()]


def test_the_referenced_files_really_are_absent() -> None:
    """If one of them is added to the repo, references to it become fine: revisit the test."""
    for name in ("STATISTICS.md", "DESIGN.md", "STYLE.md"):
        assert not (ROOT / name).exists() and not (ROOT / "docs" / name).exists(), name


def test_no_reference_to_files_outside_the_repo() -> None:
    offenders = []
    for f in _documented_files():
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if MISSING.search(line):
                offenders.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert len(_documented_files()) > 50  # the scan found the source tree
    assert offenders == [], "\n".join(offenders)
