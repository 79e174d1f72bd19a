"""Shared fixtures: a temporary home, small suites and plans written to disk."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalfleet.sandbox import BwrapSandboxProvider, LocalSandboxProvider
from evalfleet.settings import Settings

HAVE_BWRAP = shutil.which("bwrap") is not None


@pytest.fixture(scope="module", params=[
    pytest.param("local", id="local"),
    pytest.param("bwrap", id="bwrap", marks=[
        pytest.mark.sandbox,
        pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed")])])
def provider(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each sandbox provider in turn (local, bwrap), with a base directory of its own; the
    tests under tests/sandbox/ have their own ``provider`` fixture."""
    # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700, closed to sandbox uids.
    base = Path(tempfile.mkdtemp(prefix="evalfleet-test-provider-"))
    cls = LocalSandboxProvider if request.param == "local" else BwrapSandboxProvider
    p = cls(base)
    assert p.available(), p.unavailable_reason
    yield p
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home)


def write_jsonl_suite(path: Path, n: int, *, categories: int = 3, target: str = "ok",
                      timeout_s: float = 30, extra: dict[str, Any] | None = None) -> Path:
    """A JSONL suite of ``n`` tasks scored by ``exact`` against ``target``."""
    with path.open("w") as fh:
        for i in range(n):
            task = {"id": f"t{i:05d}", "input": f"say {target}", "category": f"c{i % categories}",
                    "difficulty": 1 + i % 5, "target": target,
                    "scorer": {"kind": "exact"}, "limits": {"timeout_s": timeout_s},
                    **(extra or {})}
            fh.write(json.dumps(task) + "\n")
    return path


def write_plan(path: Path, **fields: Any) -> Path:
    path.write_text(yaml.safe_dump(fields, sort_keys=False))
    return path


@pytest.fixture
def make_plan(tmp_path: Path) -> Callable[..., Path]:
    """Write a plan over a JSONL suite of python agents; keyword overrides go into the plan."""

    def make(n_tasks: int = 6, agents: list[dict[str, Any]] | None = None,
             name: str = "t", suite_extra: dict[str, Any] | None = None,
             **fields: Any) -> Path:
        suite = write_jsonl_suite(tmp_path / f"{name}-suite.jsonl", n_tasks, extra=suite_extra)
        plan = {"name": name, "suite": {"path": str(suite)},
                "agents": agents or [{"name": "noop", "version": "1", "kind": "python",
                                      "args": {"callable": "evalfleet.testing.agents:noop"}}],
                **fields}
        return write_plan(tmp_path / f"{name}.yaml", **plan)

    return make


def committed_rows(home: Path) -> list[dict[str, Any]]:
    """Every committed results row of a home, as dicts, read through the ``runs`` view.

    Never glob the Parquet files for this: after compaction the superseded files stay on disk
    (and hold copies of the rows) until their grace period ends.
    """
    from evalfleet import api

    cols, rows = api.query("SELECT * FROM runs", settings=Settings(home=home))
    return [dict(zip(cols, r, strict=True)) for r in rows]


def cli_in_process(argv: list[str]) -> tuple[str, set[str], str]:
    """Run ``evalfleet ARGV`` in a fresh interpreter; its stdout, the modules it loaded (full
    names) and its stderr. Tests use it to check what a command imports."""
    probe = ("import json, sys\n"
             "from evalfleet.cli import main\n"
             f"sys.argv = ['evalfleet', *{argv!r}]\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print('\\nMODULES:' + json.dumps(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=False)
    out, _, mods = proc.stdout.rpartition("\nMODULES:")
    return out, set(json.loads(mods)) if mods else set(), proc.stderr
