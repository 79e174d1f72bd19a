"""Every test here runs once per provider: ``local`` always, ``bwrap`` wherever it is installed."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalfleet.sandbox import BwrapSandboxProvider, LocalSandboxProvider
from evalfleet.sandbox._common import DirSandboxProvider

HAVE_BWRAP = shutil.which("bwrap") is not None
IS_ROOT = os.geteuid() == 0

PROVIDERS = [
    pytest.param("local", id="local"),
    pytest.param("bwrap", id="bwrap", marks=[
        pytest.mark.sandbox,
        pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed"),
    ]),
]


@pytest.fixture(scope="session")
def base_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: /tmp/pytest-of-root is mode 0700, which sandbox uids cannot
    # traverse.
    d = Path(tempfile.mkdtemp(prefix="evalfleet-test-sandboxes-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def providers(base_dir: Path) -> dict[str, DirSandboxProvider]:
    """One provider per kind for the session, so the availability probe runs once."""
    return {"local": LocalSandboxProvider(base_dir), "bwrap": BwrapSandboxProvider(base_dir)}


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest,
             providers: dict[str, DirSandboxProvider]) -> DirSandboxProvider:
    p = providers[request.param]
    # bwrap is installed (else skipped): it must work, a failing probe is a failure, not a skip.
    assert p.available(), p.unavailable_reason
    return p


@pytest.fixture
def isolated(provider: DirSandboxProvider) -> DirSandboxProvider:
    """A provider that isolates files: bwrap, or local when running as root (a uid per sandbox)."""
    if provider.name == "local" and not IS_ROOT:
        pytest.skip("the local provider runs code as the driver's own user when not root, "
                    "so it can read what that user can")
    return provider


@pytest.fixture
def bwrap(providers: dict[str, DirSandboxProvider]) -> DirSandboxProvider:
    """The bwrap provider alone, for what local by design does not contain (network, file
    system). Tests using it carry the ``sandbox`` marker."""
    if not HAVE_BWRAP:
        pytest.skip("bubblewrap is not installed")
    p = providers["bwrap"]
    assert p.available(), p.unavailable_reason
    return p


@pytest.fixture
def tcp_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that answers every connection with ``hello``."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"hello")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


CONNECT = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
print(s.recv(5).decode())
"""
"""A script that connects to ``argv[1]`` on 127.0.0.1 and prints what it reads."""
