"""A sandbox provider per kind: ``local`` always, ``bwrap`` wherever it is installed."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalfleet.sandbox import BwrapSandboxProvider, LocalSandboxProvider

HAVE_BWRAP = shutil.which("bwrap") is not None


@pytest.fixture(scope="module", params=[
    pytest.param("local", id="local"),
    pytest.param("bwrap", id="bwrap", marks=[
        pytest.mark.sandbox,
        pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed")])])
def provider(request: pytest.FixtureRequest) -> Iterator[Any]:
    # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700, closed to sandbox uids.
    base = Path(tempfile.mkdtemp(prefix="evalfleet-test-scoring-"))
    cls = LocalSandboxProvider if request.param == "local" else BwrapSandboxProvider
    p = cls(base)
    assert p.available(), p.unavailable_reason
    yield p
    shutil.rmtree(base, ignore_errors=True)
