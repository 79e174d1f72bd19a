"""A hostile or broken agent is contained, truncated where stored, and recorded as a failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from evalfleet import api
from evalfleet.settings import Settings
from evalfleet.store import read_trajectory

AGENT = r'''
import json, os, sys, time, signal
task = json.load(sys.stdin)
kind = task["id"]
if kind == "flood":
    chunk = "x" * (1 << 20)
    for _ in range(256):           # 256 MiB of text, far past the 100 kB kept
        sys.stdout.write(chunk)
elif kind == "badutf8":
    sys.stdout.buffer.write(b'{"answer": "\xff\xfe\xc3\x28 broken"}')
elif kind == "forkbomb":
    for _ in range(5000):
        try:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
        except OSError:
            break
    print(json.dumps({"answer": "forked"}))
elif kind == "sigterm":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork() == 0:
        time.sleep(600)
    time.sleep(600)
elif kind == "escape":
    for target in ("../../escaped.txt", "/tmp/evalfleet-escaped.txt", OUTSIDE):
        try:
            with open(target, "w") as fh:
                fh.write("escaped")
        except OSError:
            pass
    print(json.dumps({"answer": "tried"}))
else:
    print(json.dumps({"answer": "ok"}))
'''


@pytest.fixture
def hostile_plan(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside-target.txt"
    suite = tmp_path / "hostile.jsonl"
    with suite.open("w") as fh:
        for tid in ("flood", "badutf8", "forkbomb", "sigterm", "escape", "ok"):
            fh.write(json.dumps({
                "id": tid, "input": "misbehave", "target": "ok", "scorer": {"kind": "exact"},
                "files": {"README.md": "hello"},
                "limits": {"timeout_s": 4, "max_processes": 64, "max_output_bytes": 100_000,
                           "memory_mb": 512},
            }) + "\n")
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "name": "hostile", "suite": {"path": str(suite)},
        "agents": [{"name": "evil", "kind": "command", "args": {
            "command": ["python3", "agent.py"],
            "files": {"agent.py": f"OUTSIDE = {str(outside)!r}\n" + AGENT}}}],
        "execution": {"max_in_flight": 3},
    }))
    return plan, outside


def test_hostile_agent_is_contained(hostile_plan: tuple[Path, Path], settings: Settings) -> None:
    plan, outside = hostile_plan
    for leftover in ("/tmp/evalfleet-escaped.txt", "/tmp/escaped.txt"):
        Path(leftover).unlink(missing_ok=True)
    summary = api.run(plan, settings=settings)
    assert summary.status == "completed" and summary.done == 6
    # the committed rows (after compaction, files on disk also hold superseded copies whose
    # trajectory links no longer resolve, until the grace period removes them)
    _, found = api.query("SELECT task_id, status, error_kind, passed, error, trajectory_uri, "
                         "run_id FROM runs", settings=settings)
    rows = {r[0]: tuple(r[1:]) for r in found}
    assert rows["ok"][:3] == ("completed", None, True)
    assert rows["flood"][:2] == ("failed", "agent_error")
    assert "truncated" in rows["flood"][3]
    assert rows["badutf8"][0] == "completed" and rows["badutf8"][2] is False  # decoded, graded
    bad = read_trajectory(settings.home, rows["badutf8"][4], rows["badutf8"][5])
    assert bad is not None and "\ufffd" in json.dumps(bad, ensure_ascii=False)
    assert rows["sigterm"][:2] == ("failed", "task_timeout")
    assert rows["escape"][0] == "completed" and rows["escape"][2] is False
    assert rows["forkbomb"][0] in ("completed", "failed")
    assert not outside.exists()  # a root-owned private directory: closed to both providers
    if summary.sandbox == "bwrap":  # bwrap also hides world-writable host directories
        assert not Path("/tmp/evalfleet-escaped.txt").exists()
        assert not Path("/tmp/escaped.txt").exists()
    traj = read_trajectory(settings.home, rows["flood"][4], rows["flood"][5])
    assert traj is not None
    assert len(json.dumps(traj)) < 200_000  # stored output is bounded
    traj_files = list((settings.home / "trajectories").rglob("*.zst"))
    assert sum(f.stat().st_size for f in traj_files) < 1_000_000
