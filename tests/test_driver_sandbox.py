"""What the driver asks of its sandbox: the home stays hidden, network promises hold, and what a
sandbox cannot enforce on this machine is said before the run goes on."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalfleet import api
from evalfleet.cli import main
from evalfleet.errors import SpecError
from evalfleet.settings import Settings

READER = r'''
import json, sys
json.load(sys.stdin)
try:
    with open(SECRET) as fh:
        print(json.dumps({"answer": "read:" + fh.read()}))
except OSError as exc:
    print(json.dumps({"answer": "refused:" + type(exc).__name__}))
'''


def _plan(tmp_path: Path, secret: Path, suite_dir: Path | None = None,
          **execution: Any) -> Path:
    suite = (suite_dir or tmp_path) / "suite.jsonl"
    suite.write_text(json.dumps({"id": "peek", "input": "read it", "target": "x",
                                 "metadata": {"note": "the-suite-secret"},
                                 "scorer": {"kind": "exact"}}) + "\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "peek", "suite": {"path": str(suite)},
        "agents": [{"name": "reader", "kind": "command", "args": {
            "command": ["python3", "agent.py"],
            "files": {"agent.py": f"SECRET = {str(secret)!r}\n" + READER}}}],
        "execution": {"max_in_flight": 1, **execution}}))
    return plan


def _answer(settings: Settings) -> str:

    _, found = api.query("SELECT trajectory_uri, run_id FROM runs", settings=settings)
    ((traj_uri, run_id),) = found
    from evalfleet.store import read_trajectory

    traj = read_trajectory(settings.home, traj_uri, run_id)
    assert traj is not None
    return json.dumps(traj)


@pytest.mark.skipif(os.geteuid() != 0, reason="hiding paths from local sandboxes needs root")
@pytest.mark.parametrize("sandbox", ["local", "bwrap"])
def test_the_home_is_hidden_from_sandboxed_code(tmp_path: Path, sandbox: str) -> None:
    # A home made by an older release (0755) with a world-readable file, where every other uid
    # can reach it (not under /tmp, which sandboxes replace with their own): only the driver's
    # hiding of its home keeps it from the agent, whatever the modes say.
    home = Path(tempfile.mkdtemp(prefix="evalfleet-test-home-", dir="/var/lib"))
    try:
        home.chmod(0o755)
        secret = home / "secret.txt"
        secret.write_text("the-home-secret")
        secret.chmod(0o644)
        settings = Settings(home=home, sandbox=sandbox)
        summary = api.run(_plan(tmp_path, secret), settings=settings)
        assert summary.done == 1
        seen = _answer(settings)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert "the-home-secret" not in seen
    assert "refused:" in seen


@pytest.mark.skipif(os.geteuid() != 0, reason="hiding paths from local sandboxes needs root")
@pytest.mark.parametrize("sandbox", ["local", "bwrap"])
def test_a_user_suite_is_hidden_from_sandboxed_code(tmp_path: Path, sandbox: str) -> None:
    # A suite of the user's in a world-readable folder (not under /tmp, which sandboxes replace
    # with their own): its JSONL holds the hidden tests and targets, so the agent must not read it.
    folder = Path(tempfile.mkdtemp(prefix="evalfleet-test-suite-", dir="/var/lib"))
    try:
        folder.chmod(0o755)
        plan = _plan(tmp_path, folder / "suite.jsonl", suite_dir=folder)
        (folder / "suite.jsonl").chmod(0o644)
        settings = Settings(home=tmp_path / "home", sandbox=sandbox)
        summary = api.run(plan, settings=settings)
        assert summary.done == 1
        seen = _answer(settings)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert "the-suite-secret" not in seen
    assert "refused:" in seen


class _Open:
    """A provider that says it cannot cut the network and has a warning to give."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.name = inner.name
        self.isolates_network = False
        self.warnings = ["this sandbox leaves the network open"]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_task_that_forbids_the_network_never_runs_where_it_is_open(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from evalfleet.api import driver, validation

    real = driver.get_provider
    for module in (driver, validation):
        monkeypatch.setattr(module, "get_provider", lambda *a, **k: _Open(real(*a, **k)))
    secret = tmp_path / "nothing.txt"
    with pytest.raises(SpecError, match="allow_open_network"):
        api.run(_plan(tmp_path, secret), settings=settings)
    with pytest.raises(SpecError, match="allow_open_network"):
        api.check_plan(_plan(tmp_path, secret), settings=settings)
    # the plan accepts it: the run goes on, and the warning is said
    plan = _plan(tmp_path, secret, allow_open_network=True)
    monkeypatch.setattr(sys, "argv", ["evalfleet", "run", str(plan), "--home",
                                      str(settings.home), "--quiet"])
    main()  # returns: the eval completed
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: this sandbox leaves the network open" in err
