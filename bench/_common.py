"""Helpers shared by the benchmarks: a JSONL suite and a plan of no-op python agents."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def write_noop_plan(dirpath: Path, n_tasks: int, runs_per_task: int = 1, *,
                    max_in_flight: int = 64, write_batch: int = 512, threaded: bool = True,
                    name: str = "bench") -> Path:
    """A plan of ``n_tasks`` x ``runs_per_task`` runs of the no-op python agent."""
    dirpath.mkdir(parents=True, exist_ok=True)
    suite = dirpath / f"{name}-suite.jsonl"
    with suite.open("w") as fh:
        for i in range(n_tasks):
            fh.write(json.dumps({"id": f"t{i:07d}", "input": "noop", "category": f"c{i % 7}",
                                 "difficulty": 1 + i % 5, "target": "ok",
                                 "scorer": {"kind": "exact"}}) + "\n")
    plan = {
        "name": name, "suite": {"path": str(suite)}, "runs_per_task": runs_per_task,
        "agents": [{"name": "noop", "version": "1", "kind": "python",
                    "args": {"callable": "evalfleet.testing.agents:noop",
                             "threaded": threaded}}],
        "execution": {"max_in_flight": max_in_flight, "write_batch": write_batch},
    }
    path = dirpath / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path
