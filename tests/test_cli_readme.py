"""Every command the README and the getting-started guide show actually runs.

The code blocks are parsed, not copied into this file: a command added to the docs is run here
too. Placeholders (EVAL_ID, RUN_ID, ...) are filled from a tiny home that the README's own
first command, `evalfleet demo`, makes (with `--limit 2 --runs 1` so it takes seconds); each
optional `[...]` part is run once without and once with each of its alternatives.
"""

from __future__ import annotations

import re
import shlex
import stat
import sys
from pathlib import Path

import pytest
import yaml

from evalfleet.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "docs" / "getting-started.md"]
FAST_DEMO = ["--limit", "2", "--runs", "1", "--quiet"]


def _code_lines(path: Path) -> list[str]:
    """The command lines of a Markdown file's ```bash blocks, comments removed."""
    lines: list[str] = []
    inside = False
    for raw in path.read_text().splitlines():
        if raw.startswith("```"):
            inside = raw.strip() == "```bash" and not inside
            continue
        if inside and raw.strip():
            lines.append(re.sub(r"\s+#\s.*$", "", raw).strip())
    return lines


def _segments(line: str) -> list[str]:
    return [s.strip() for s in line.split("&&")]


def _variants(command: str) -> list[str]:
    """The command without its optional parts, then once per optional part and alternative."""
    groups = list(re.finditer(r"\s*\[([^\]]+)\]", command))
    bare = re.sub(r"\s*\[[^\]]+\]", "", command)
    out = [bare]
    for g in groups:
        for alt in g.group(1).split(" | "):
            out.append(re.sub(r"\s*\[[^\]]+\]", "", command[:g.start()]) + " " +
                       alt.strip() + re.sub(r"\s*\[[^\]]+\]", "", command[g.end():]))
    return out


def _doc_commands() -> list[str]:
    commands: list[str] = []
    for path in DOCS:
        for line in _code_lines(path):
            commands += [s for s in _segments(line) if s.startswith("evalfleet ")]
    return commands


def test_docs_show_commands() -> None:
    """The parser finds the commands (a README test that runs nothing could not fail)."""
    names = {shlex.split(c)[1] for c in _doc_commands()}
    assert {"demo", "run", "status", "report", "show", "resume", "compare", "plan", "query",
            "suites", "tasks"} <= names, names


def test_install_and_test_commands_are_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    other = [s for line in _code_lines(ROOT / "README.md") for s in _segments(line)
             if not s.startswith("evalfleet ")]
    assert "python3 -m pip install -e ." in other
    for step in ("python3 -m venv .venv", ". .venv/bin/activate",
                 "python3 -m pip install -e '.[test]'", "python3 -m pytest"):
        assert step in other, (step, other)
        assert step.split(" .venv")[0] in ci, step
    assert "-m slow" in ci


def _fill(command: str, values: dict[str, str]) -> list[str]:
    argv = shlex.split(command)[1:]
    out = [values.get(a, a) for a in argv]
    unknown = [a for a in out if re.fullmatch(r"[A-Z][A-Z_]*(@[A-Z]+)?", a)]
    assert not unknown, f"the docs use a placeholder this test cannot fill: {unknown} in {command}"
    return out


def _main(argv: list[str], monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["evalfleet", *argv])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def test_every_documented_command_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from evalfleet import api
    from evalfleet.settings import Settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVALFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EVALFLEET_SANDBOX", "local")  # seconds, not minutes, on any machine
    monkeypatch.setenv("COLUMNS", "120")
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({
        "name": "readme", "suite": {"builtin": "repo-tasks", "limit": 1},
        "agents": [{"name": "noop", "kind": "python",
                    "args": {"callable": "evalfleet.testing.agents:noop"}}]}))
    commands = _doc_commands()
    demos = [c for c in commands if c.split()[:2] == ["evalfleet", "demo"]]
    assert demos, "the docs should start with the demo"
    code, text = _main(_fill(demos[0], {}) + FAST_DEMO, monkeypatch, capsys)
    assert code == 0, text
    # the demo makes the home; sandboxed code (other uids) must not be able to read it
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700
    settings = Settings(home=tmp_path / "home")
    (eval_id,) = [e["eval_id"] for e in api.status(settings=settings)["evals"]]
    _, rows = api.query("SELECT run_id FROM runs ORDER BY passed, run_id", settings=settings)
    values = {"EVAL_ID": eval_id, "RUN_ID": rows[0][0], "SUITE": "repo-tasks", "C": "bugfix",
              "FILE": str(tmp_path / "out.txt"), "BASE": f"{eval_id}/demo-agent@1",
              "NEW": f"{eval_id}/demo-agent@2", "AGENT@VERSION": "demo-agent@1",
              "DAYS": "7", "NAME": "demo-agent"}
    ran: list[str] = []
    for command in commands:
        if command in demos:
            continue
        for variant in _variants(command):
            argv = _fill(variant, values)
            code, text = _main(argv, monkeypatch, capsys)
            assert code == 0, (variant, text)
            assert text.strip(), variant
            ran.append(variant)
    assert len(ran) >= 20, ran
    assert (tmp_path / "out.txt").exists()  # report --markdown FILE / --html FILE wrote it
