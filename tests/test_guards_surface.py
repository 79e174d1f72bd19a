"""The command line starts lean: ``--help`` and importing the CLI load no heavy dependency.

Each check runs in a fresh interpreter and reads its ``sys.modules``, so a module-level import
anywhere on the CLI's import path is seen. ``ray`` is not a dependency; a stub of it is put on
the path so that importing it would show here even where it is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = ("ray", "duckdb", "pyarrow", "scipy", "statsmodels")


def _loaded_heavy(code: str, tmp_path: Path) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    stub = tmp_path / "stubs" / "ray"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "__init__.py").write_text('"""A stand-in: importing it must not happen."""\n')
    probe = "\n".join([
        "import json, sys",
        f"sys.path.append({str(stub.parent)!r})",
        "try:",
        textwrap.indent(code, "    "),
        "except SystemExit:",
        "    pass",
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})",
        "print('\\nHEAVY-MODULES:' + json.dumps(heavy))",
    ])
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=False)
    last = proc.stdout.rstrip().splitlines()[-1] if proc.stdout.strip() else ""
    assert last.startswith("HEAVY-MODULES:"), (proc.stdout[-2000:], proc.stderr[-2000:])
    return json.loads(last.removeprefix("HEAVY-MODULES:")), proc


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["report", "--help"]],
                         ids=lambda a: " ".join(a))
def test_help_loads_no_heavy_dependency(argv: list[str], tmp_path: Path) -> None:
    heavy, proc = _loaded_heavy(
        f"sys.argv = ['evalfleet', *{argv!r}]\nfrom evalfleet.cli import main\nmain()",
        tmp_path)
    # The help really was printed (else the check above would be vacuous).
    assert "Usage" in proc.stdout, proc.stdout + proc.stderr
    assert heavy == [], f"evalfleet {' '.join(argv)} imported {heavy}"


def test_importing_the_cli_loads_no_heavy_dependency(tmp_path: Path) -> None:
    heavy, _ = _loaded_heavy("import evalfleet.cli.main", tmp_path)
    assert heavy == []


def test_the_probe_sees_a_heavy_import(tmp_path: Path) -> None:
    """The check itself works: an import of the stubbed ``ray`` and of scipy is reported."""
    heavy, _ = _loaded_heavy("import ray\nimport scipy.stats", tmp_path)
    assert "ray" in heavy and "scipy" in heavy and "scipy.stats" in heavy
