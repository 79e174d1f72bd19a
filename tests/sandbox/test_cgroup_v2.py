"""cgroup v2, where a host delegates it: detected and used (on a stand-in directory tree, since
this code must also work on hosts that only have v1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from evalfleet.sandbox import _cgroup


def test_a_delegated_v2_hierarchy_bounds_memory_and_pids(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    mine = tmp_path / "me"
    mine.mkdir()
    (mine / "cgroup.subtree_control").write_text("memory pids\n")
    monkeypatch.setattr(_cgroup, "_ROOT", tmp_path)
    monkeypatch.setattr(_cgroup, "_own_cgroups", lambda: {"": "/me"})

    roots = _cgroup.CgroupRoots.detect()
    assert roots.version == "v2" and roots.has_memory and roots.has_pids
    sandbox = mine / "evalfleet" / "u1"
    sandbox.mkdir()
    (sandbox / "cgroup.procs").write_text("")
    (sandbox / "memory.swap.max").write_text("max")
    cg = roots.create("u1", max_pids=70, memory_bytes=256 * 2**20)
    try:
        assert cg.controllers == {"memory", "pids"}
        assert (sandbox / "memory.max").read_text() == str(256 * 2**20)
        assert (sandbox / "memory.swap.max").read_text() == "0"
        assert (sandbox / "pids.max").read_text() == "70"
        assert len(cg.procs_fds) == 1
    finally:
        for fd in cg.procs_fds:
            os.close(fd)


def test_an_undelegated_v2_hierarchy_is_not_claimed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "me").mkdir()
    (tmp_path / "me" / "cgroup.subtree_control").write_text("")
    monkeypatch.setattr(_cgroup, "_ROOT", tmp_path)
    monkeypatch.setattr(_cgroup, "_own_cgroups", lambda: {"": "/me"})
    roots = _cgroup.CgroupRoots.detect()
    assert not roots.has_memory and not roots.has_pids and roots.version == ""
