"""Usage mistakes exit 2 with one line and where help is; `evalfleet` alone and --version work.

Each case runs the real entry point in a subprocess (`python3 -m evalfleet`), so what is checked
is what a user's shell sees: the exit code and the bytes on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80", "EVALFLEET_HOME": str(cwd / "home")}
    return subprocess.run([sys.executable, "-m", "evalfleet", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=120)


# argv -> words the one error line must contain, and the command its help hint names
MISTAKES: dict[tuple[str, ...], tuple[str, str]] = {
    ("stauts",): ("No such command 'stauts'", "evalfleet"),
    ("report",): ("Missing argument", "evalfleet report"),
    ("status", "--bogus"): ("No such option: --bogus", "evalfleet status"),
    ("run", "plan.yaml", "--workers", "0"): ("--workers", "evalfleet run"),
    ("run", "plan.yaml", "--workers", "many"): ("--workers", "evalfleet run"),
    ("plan", "powr"): ("No such command 'powr'", "evalfleet plan"),
    ("plan", "power", "--delta"): ("'--delta' requires an argument", "evalfleet"),
    ("[bold]x[/bold]",): ("No such command '[bold]x[/bold]'", "evalfleet"),
}


@pytest.mark.parametrize("argv", list(MISTAKES), ids=" ".join)
def test_usage_mistake_is_one_line_and_exit_2(argv: tuple[str, ...], tmp_path: Path) -> None:
    words, command = MISTAKES[argv]
    r = _run(*argv, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 2, r.stderr
    assert lines[0].startswith("error: ") and words in lines[0], r.stderr
    assert lines[1] == f"Try '{command} --help' for help."
    assert r.stdout == ""
    assert not (tmp_path / "home").exists()  # a usage mistake touches nothing


def test_evalfleet_alone_prints_help_and_exits_0(tmp_path: Path) -> None:
    r = _run(cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    for command in ("run", "status", "report", "show", "suites", "tasks", "plan"):
        assert f" {command} " in r.stdout, command


def test_group_alone_prints_its_help_and_exits_0(tmp_path: Path) -> None:
    r = _run("plan", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "error" not in r.stderr
    assert "power" in r.stdout and "check" in r.stdout


def test_version(tmp_path: Path) -> None:
    r = _run("--version", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"evalfleet {version('evalfleet')}\n"
    assert r.stderr == ""
