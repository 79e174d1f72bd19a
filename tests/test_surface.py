"""The public surface is what we meant, --help stays light, settings are documented."""

from __future__ import annotations

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


def test_readme_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "python3 -m pip install -e . && evalfleet demo" in readme
    assert "python3 -m pip install -e '.[test]' && python3 -m pytest" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m pytest" in ci and "-m slow" in ci
