"""Run as an ordinary user, the providers say what they cannot enforce instead of pretending."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import evalfleet

from .conftest import HAVE_BWRAP, IS_ROOT

NOBODY = 65534
SCRIPT = """
import asyncio, json, sys
from evalfleet.sandbox import BwrapSandboxProvider, LocalSandboxProvider, SandboxLimits

async def main():
    out = {}
    for cls in (LocalSandboxProvider, BwrapSandboxProvider):
        p = cls(sys.argv[1] + "/" + cls.name)
        if not p.available():
            out[cls.name] = {"unavailable": p.unavailable_reason}
            continue
        async with await p.create(SandboxLimits()) as sb:
            out[cls.name] = {"warnings": p.warnings, "isolation": sb.isolation,
                             "isolates_network": p.isolates_network}
    print(json.dumps(out))

asyncio.run(main())
"""


def test_an_ordinary_user_is_told_what_does_not_hold() -> None:
    python, setpriv = "/usr/bin/python3", shutil.which("setpriv")
    if not IS_ROOT or setpriv is None or not os.path.exists(python):
        pytest.skip("needs root (to become an ordinary user), setpriv and a system python3")
    src = str(Path(evalfleet.__file__).resolve().parent.parent)
    base = tempfile.mkdtemp(prefix="evalfleet-unprivileged-")
    os.chown(base, NOBODY, NOBODY)
    try:
        proc = subprocess.run([setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}",
                               "--clear-groups", python, "-c", SCRIPT, base],
                              capture_output=True, text=True, timeout=120, cwd="/",
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": src})
        if proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr:
            pytest.skip(f"the system python3 cannot import evalfleet: {proc.stderr[-200:]}")
        assert proc.returncode == 0, proc.stderr
        seen = json.loads(proc.stdout)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    local = seen["local"]
    assert local["isolates_network"] is False
    assert "network:not-isolated" in local["isolation"]
    assert "memory:rlimit-per-process" in local["isolation"]
    assert "disk:file-size-only" in local["isolation"]
    said = " ".join(local["warnings"])
    assert "network is not isolated" in said and "memory_mb holds per process" in said
    if HAVE_BWRAP and "unavailable" not in seen["bwrap"]:
        assert seen["bwrap"]["isolates_network"] is True
        assert "network:none" in seen["bwrap"]["isolation"]
