"""A sandboxed command sees an allow-listed environment, never the driver's.

The scrub must be an allow-list: a deny-list of known secret names would pass a test that sets
only ``OPENAI_API_KEY`` and still leak every other credential the operator happens to have.
So the driver's environment here holds several unrelated names, and the test checks that the
command's environment is exactly the documented allow-list plus what the caller passed.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import committed_rows
from evalfleet import api
from evalfleet.sandbox import SandboxLimits, get_provider
from evalfleet.settings import Settings

# The allow-list (src/evalfleet/sandbox/_common.py: sandbox_env, docs/architecture.md
# "an allow-listed environment"), written out here as the reference.
ALLOWED = {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
# bubblewrap itself sets PWD to the directory the command starts in.
SET_BY_BWRAP = {"PWD"}

DRIVER_SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-driver-secret-1",
    "OPENAI_API_KEY": "sk-driver-secret-2",
    "ANTHROPIC_API_KEY": "sk-ant-driver-secret-3",
    "MY_COMPANY_TOKEN_X": "company-driver-secret-4",
    "RANDOM_NAME_12345": "random-driver-secret-5",
    "GITHUB_TOKEN": "ghp-driver-secret-6",
    "lower_case_name": "lower-driver-secret-7",
    # Names that change what programs in the sandbox load or run.
    "LD_PRELOAD": "/driver/evil.so",
    "PYTHONPATH": "/driver/site",
    "PYTHONSTARTUP": "/driver/startup.py",
}

PROVIDERS = [
    pytest.param("local", id="local"),
    pytest.param("bwrap", id="bwrap", marks=[
        pytest.mark.sandbox,
        pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
    ]),
]


def _env_in_sandbox(name: str, extra: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """``/usr/bin/env`` as a command in a fresh sandbox of provider ``name`` sees it."""

    async def main() -> tuple[dict[str, str], str]:
        provider = get_provider(name)
        assert provider.name == name
        async with await provider.create(SandboxLimits()) as sb:
            res = await sb.exec(["/usr/bin/env"], env=extra)
            assert res.exit_code == 0, res
            env = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
            return env, sb.workdir

    return asyncio.run(main())


@pytest.mark.parametrize("name", PROVIDERS)
def test_no_driver_variable_reaches_a_sandboxed_command(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in DRIVER_SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LANG", "xx_DRIVER.UTF-8")

    env, workdir = _env_in_sandbox(name, {"GIVEN_BY_CALLER": "yes", "ANOTHER": "a=b"})

    leaked = sorted(k for k in DRIVER_SECRETS if k in env)
    assert not leaked, f"driver variables visible in the {name} sandbox: {leaked}"
    for value in DRIVER_SECRETS.values():
        assert value not in "\n".join(f"{k}={v}" for k, v in env.items())
    # Exactly the allow-list plus the caller's extras (plus PWD, which bwrap sets).
    extras = {"GIVEN_BY_CALLER", "ANOTHER"}
    allowed = ALLOWED | extras | (SET_BY_BWRAP if name == "bwrap" else set())
    assert set(env) - allowed == set(), f"unexpected variables: {sorted(set(env) - allowed)}"
    assert ALLOWED | extras <= set(env)
    assert env["GIVEN_BY_CALLER"] == "yes" and env["ANOTHER"] == "a=b"
    # Allow-listed names carry the sandbox's values, not the driver's.
    assert env["LANG"] == "C.UTF-8"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].endswith(":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if "PWD" in env:
        assert env["PWD"] == workdir


@pytest.mark.parametrize("name", PROVIDERS)
def test_sandbox_environment_does_not_depend_on_the_drivers(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same names and values whatever the driver's environment holds (HOME and TMPDIR
    and PWD are per-sandbox paths, so only their presence is compared)."""
    per_sandbox = {"HOME", "TMPDIR", "PWD"}
    plain, _ = _env_in_sandbox(name)
    for key, value in DRIVER_SECRETS.items():
        monkeypatch.setenv(key, value)
    for i in range(50):
        monkeypatch.setenv(f"EVALFLEET_GUARD_NOISE_{i}", str(i))
    noisy, _ = _env_in_sandbox(name)
    assert set(noisy) == set(plain)
    assert {k: v for k, v in noisy.items() if k not in per_sandbox} == \
        {k: v for k, v in plain.items() if k not in per_sandbox}


# The same guarantee through a whole eval: the agent's command and the scorer's tests (which
# import the agent's code) both run without the driver's variables.

AGENT = """\
import json, os
leaked = sorted(k for k in os.environ if k.startswith("EVALFLEET_GUARD_"))
print(json.dumps({"answer": "leaked " + " ".join(leaked) if leaked else "clean"}))
"""
HIDDEN_TEST = """\
import os
import unittest


class EnvTest(unittest.TestCase):
    def test_no_driver_variable(self):
        self.assertEqual([k for k in os.environ if k.startswith("EVALFLEET_GUARD_")], [])
"""


@pytest.mark.parametrize("name", PROVIDERS)
def test_agent_and_scorer_commands_of_an_eval_see_no_driver_variable(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALFLEET_GUARD_SECRET", "driver-secret")
    monkeypatch.setenv("EVALFLEET_GUARD_TOKEN_2", "driver-token")
    suite = tmp_path / "env.jsonl"
    agent_files = {"agent.py": AGENT}
    tasks = [
        {"id": "agent-env", "input": "x", "target": "clean", "scorer": {"kind": "exact"}},
        {"id": "scorer-env", "input": "x", "hidden_files": {"test_env.py": HIDDEN_TEST},
         "scorer": {"kind": "tests"}},
    ]
    suite.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "guard-env", "suite": {"path": str(suite)},
        "agents": [{"name": "envprobe", "version": "1", "kind": "command",
                    "args": {"command": ["python3", "agent.py"], "files": agent_files}}],
        "execution": {"sandbox": name},
    }))
    settings = Settings(home=tmp_path / "home")
    summary = api.run(plan, settings=settings)
    assert summary.done == summary.planned == 2
    rows = {r["task_id"]: r for r in committed_rows(settings.home)}
    for task_id in ("agent-env", "scorer-env"):
        assert rows[task_id]["error_kind"] is None, rows[task_id]
        assert rows[task_id]["score"] == 1.0 and rows[task_id]["passed"], rows[task_id]
