"""The command line starts lean: ``--help`` and importing the CLI load no heavy dependency.

Each check runs in a fresh interpreter and reads its ``sys.modules``, so a module-level import
anywhere on the CLI's import path is seen. ``ray`` is not a dependency; a stub of it is put on
the path so that importing it would show here even where it is not installed.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

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


# The commands the README and docs/ show: each must exist, with the options shown, and answer
# --help. (A test that only looks for strings in the README would pass with any command in it.)

ROOT = Path(__file__).resolve().parent.parent
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_SPAN = re.compile(r"`(evalfleet [^`]+)`")


def _documented_commands() -> list[tuple[str, str]]:
    """(file, command line) for every ``evalfleet ...`` in a code block or code span."""
    found: list[tuple[str, str]] = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        lines = [line for block in _FENCE.findall(text) for line in block.splitlines()]
        lines += _SPAN.findall(_FENCE.sub("", text))
        for line in lines:
            for m in re.finditer(r"(?:^|&&|\$)\s*(evalfleet(?:\s[^#&]*)?)", line):
                found.append((doc.name, m.group(1).strip()))
    return found


def _resolve(tokens: list[str]) -> tuple[list[str], Any]:
    """The subcommand path the tokens name, and its command object."""
    import typer

    from evalfleet.cli import app

    cmd: Any = typer.main.get_command(app)
    path: list[str] = []
    for tok in tokens:
        sub = getattr(cmd, "commands", {}).get(tok)
        if sub is None:
            break
        cmd, path = sub, [*path, tok]
    return path, cmd


DOCUMENTED = _documented_commands()


def test_the_docs_show_commands() -> None:
    assert len(DOCUMENTED) >= 10, DOCUMENTED


@pytest.mark.parametrize(("doc", "line"), DOCUMENTED, ids=[f"{d}:{c[:40]}" for d, c in DOCUMENTED])
def test_documented_command_exists_with_its_options(doc: str, line: str) -> None:
    from typer.testing import CliRunner

    from evalfleet.cli import app

    tokens = shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " ")
                         .replace("(", " ").replace(")", " "))[1:]
    path, cmd = _resolve(tokens)
    rest = tokens[len(path):]
    if rest and getattr(cmd, "commands", None) and re.fullmatch(r"[a-z][a-z-]*", rest[0]):
        pytest.fail(f"{doc}: `{line}`: {rest[0]!r} is not a command of "
                    f"{' '.join(['evalfleet', *path])}")
    known = {o for p in cmd.params for o in getattr(p, "opts", [])} | {"--help"}
    shown = {t.split("=", 1)[0] for t in tokens if t.startswith("--")}
    assert shown <= known, f"{doc}: `{line}` uses {sorted(shown - known)} unknown to {path}"
    res = CliRunner().invoke(app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output
