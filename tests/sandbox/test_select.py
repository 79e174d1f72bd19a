"""Choosing a provider by name, and the package's public surface."""

from __future__ import annotations

import pytest

import evalfleet.sandbox as sandbox_pkg
from evalfleet.errors import InfraError, SpecError
from evalfleet.sandbox import (
    BwrapSandboxProvider,
    LocalSandboxProvider,
    Sandbox,
    SandboxLimits,
    get_provider,
)
from evalfleet.sandbox import select as select_mod

from .conftest import HAVE_BWRAP


def test_public_surface() -> None:
    assert sorted(sandbox_pkg.__all__) == sorted([
        "Sandbox", "SandboxLimits", "ExecResult", "SandboxProvider",
        "LocalSandboxProvider", "BwrapSandboxProvider", "get_provider"])


def test_local_is_local() -> None:
    p = get_provider("local")
    assert isinstance(p, LocalSandboxProvider) and p.name == "local"


def test_auto_prefers_bwrap_where_it_works() -> None:
    p = get_provider("auto")
    assert p.name == ("bwrap" if HAVE_BWRAP else "local")
    assert get_provider("auto") is p  # probed once, shared


def test_auto_falls_back_and_explicit_bwrap_fails_clearly(
        monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    broken = BwrapSandboxProvider(bwrap="/nonexistent/bwrap")
    monkeypatch.setattr(select_mod, "_bwrap", lambda hidden=(): broken)
    chosen = get_provider("auto")
    assert chosen.name == "local"
    # Said once, first, where the CLI prints the provider's warnings at start.
    assert "fell back to 'local'" in chosen.warnings[0]
    assert get_provider("auto") is chosen
    assert not any("fell back" in w for w in get_provider("local").warnings)
    with pytest.raises(InfraError, match="bwrap sandbox was requested"):
        get_provider("bwrap")
    assert not broken.available() and broken.unavailable_reason


def test_unknown_name_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="unknown sandbox provider 'docker'"):
        get_provider("docker")


def test_created_sandboxes_satisfy_the_protocol(provider: LocalSandboxProvider) -> None:
    import asyncio

    async def main() -> None:
        async with await provider.create(SandboxLimits()) as sb:
            assert isinstance(sb, Sandbox)
            assert sb.provider == provider.name
            assert sb.host_dir.is_dir()
            mech = sb.process_limit_mechanism
            assert "rlimit-nproc" in mech

    asyncio.run(main())
