"""The home is private: code running under another uid cannot read journals or results."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DoneEval

NOBODY = 65534

PROBE = ("for p; do if [ -d \"$p\" ]; then ls \"$p\" >/dev/null 2>&1 && echo \"$p\"; "
         "else cat \"$p\" >/dev/null 2>&1 && echo \"$p\"; fi; done; exit 0")
"""Prints every path given that it can list (a directory) or read (a file)."""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A world-traversable directory (pytest's own tmp dirs are 0700 and would hide a leak)."""
    with tempfile.TemporaryDirectory(prefix="evalfleet-private-") as d:
        os.chmod(d, 0o755)
        yield Path(d)


def _as_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to run a probe as another uid")
def test_another_uid_cannot_read_the_home(open_dir: Path, done_eval: DoneEval) -> None:
    home = open_dir / "home"
    done_eval.home.rename(home)  # a finished eval's home, moved where a stranger could look
    assert _mode(home) == 0o700
    for sub in ("results", "trajectories"):
        assert _mode(home / sub) == 0o700
        for d in (home / sub).iterdir():
            assert _mode(d) == 0o700, d
    assert _mode(home / "journal.db") & 0o077 == 0
    control = open_dir / "public.txt"  # proves the probe can read what is not private
    control.write_text("public")
    control.chmod(0o644)
    targets = [str(p) for p in (home, *sorted(home.rglob("*")))]
    assert any(t.endswith(".parquet") for t in targets)
    assert any(t.endswith(".jsonl.zst") for t in targets)
    res = subprocess.run(["/bin/sh", "-c", PROBE, "sh", str(control), *targets],
                         capture_output=True,
                         text=True, timeout=60, preexec_fn=_as_nobody)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(control)]


def test_an_existing_journal_is_made_private(tmp_path: Path) -> None:
    from evalfleet.store import Store

    home = tmp_path / "home"
    home.mkdir()
    (home / "journal.db").touch(mode=0o644)
    os.chmod(home / "journal.db", 0o644)  # as an older version left it
    Store(home).close()
    assert _mode(home / "journal.db") == 0o600
