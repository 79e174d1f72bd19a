"""The public surface is what we meant, --help stays light, settings are documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import evalfleet.agents
import evalfleet.execution
import evalfleet.scoring
import evalfleet.spec
import evalfleet.store
from evalfleet.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

EXPECTED = {
    evalfleet.spec: {"AgentSpec", "ExecutionSettings", "FaultSpec", "Limits", "Plan",
                     "RateLimit", "RunResult", "RunStatus", "ScorerSpec", "SimulatedModel",
                     "SimulatorSpec", "Suite", "SuiteRef", "Task", "load_plan", "load_suite",
                     "load_suite_ref"},
    evalfleet.agents: {"Agent", "AgentContext", "AgentOutput", "ModelGate", "NoGate", "Usage",
                       "agent_kinds", "create_agent"},
    evalfleet.scoring: {"Score", "ScoreContext", "Scorer", "create_scorer", "extract_code",
                        "scorer_kinds"},
    evalfleet.execution: {"ERROR_POLICY", "AttemptOutcome", "DispatchOutcome", "DispatchStats",
                          "Dispatcher", "ErrorPolicy", "RateLimiter", "ResourcePool",
                          "RunJournal", "backoff_delay", "run_attempt"},
    evalfleet.store: {"RESULTS_SCHEMA", "CommitReport", "CommitRow", "Journal", "LeasedRun",
                      "ResultsWriter", "RowContext", "Store", "driver_name", "read_trajectory",
                      "remove_orphans"},
}


def test_exported_members() -> None:
    for module, names in EXPECTED.items():
        assert set(module.__all__) == names, module.__name__
        for name in names:
            assert hasattr(module, name), (module.__name__, name)


def test_help_does_not_import_heavy_modules() -> None:
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom evalfleet.cli import app\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
            "heavy = [m for m in ('duckdb', 'pyarrow', 'ray', 'scipy', 'openai') "
            "if m in sys.modules]\nprint(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"EVALFLEET_{name.upper()}" in text, name
        assert field.description, name


def test_every_results_column_has_a_description() -> None:
    from evalfleet.store.results import RESULTS_SCHEMA

    for field in RESULTS_SCHEMA:
        assert field.metadata and field.metadata.get(b"doc"), field.name


MISSING_DOCS = ("STATISTICS.md", "DESIGN.md", "STYLE.md", "../shared")
"""Files the docs once sent readers to that are not part of the project."""


def test_help_and_docs_send_readers_nowhere_missing() -> None:
    import typer.main
    from typer.testing import CliRunner

    from evalfleet.cli import app

    texts: dict[str, str] = {}
    for name in ("README.md", "docs/cli.md", "docs/getting-started.md", "docs/configuration.md",
                 "docs/plan-format.md"):
        texts[name] = (ROOT / name).read_text()
    group = typer.main.get_command(app)
    paths = [[]] + [[n] for n in group.commands]  # type: ignore[attr-defined]
    paths += [["plan", n] for n in group.commands["plan"].commands]  # type: ignore[attr-defined]
    assert ["show"] in paths and ["plan", "check"] in paths
    for argv in paths:
        r = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": "300"})
        assert r.exit_code == 0, (argv, r.output)
        texts[" ".join(["evalfleet", *argv, "--help"])] = r.output
    for where, text in texts.items():
        for missing in MISSING_DOCS:
            assert missing not in text, (where, missing)
    for link in re.findall(r"\]\(([^)#]+)\)", texts["README.md"]):
        assert (ROOT / link).exists(), link


def test_dependency_ranges_hold_what_is_tested() -> None:
    """Every dependency has an upper bound, and the versions installed (the ones the tests
    ran against) are inside the ranges pyproject.toml declares."""
    import tomllib
    from importlib.metadata import version

    from packaging.requirements import Requirement

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in meta["dependencies"] + meta["optional-dependencies"]["test"]:
        req = Requirement(line)
        if req.name == "types-PyYAML":  # stubs: any version
            continue
        assert any(s.operator in ("<", "<=", "~=", "==") for s in req.specifier), line
        assert req.specifier.contains(version(req.name), prereleases=True), \
            (line, version(req.name))


def test_ci_script_is_valid_bash_and_uses_a_fresh_venv() -> None:
    ci = ROOT / ".ci" / "run"
    subprocess.run(["bash", "-n", str(ci)], check=True)
    text = ci.read_text()
    assert text.index("python3 -m venv --clear .venv") < text.index(". .venv/bin/activate") \
        < text.index("python3 -m pip install -e '.[test]'") < text.index("python3 -m pytest")
