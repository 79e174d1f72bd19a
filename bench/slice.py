"""Benchmark: `evalfleet slice` on the issue's question over a 1M-run home, against pandas.

    python bench/slice.py [--runs-per-task 7] [--batch 10000] [--pandas-repeats 3]

Builds a home through the project's own writer (create_eval, lease, Store.commit with synthetic
RunResults): 5,000 tasks (6 categories, 20 repositories, difficulty 1-5), 30 versions of the
agent ``coder`` in 10 evals of 3 versions each, K runs per task (K = 7: 1.05M rows), one eval
every two days up to two days ago, 1% infrastructure errors. Then asks

    --where category=coding --where 'difficulty>=3' --by repository
    --agent coder@latest --vs 'coder@2 weeks ago'

and prints, each the median of 3: the in-process time of ``api.slice_runs`` (and its DuckDB
query alone), the whole ``evalfleet slice --json`` process, and the same answer computed in pandas
from the same rows as JSON Lines (read, resolve the versions, filter, group per cell, side and
task, then the same statistics), with the ratios. The pandas answer is checked equal to slice's.
10M rows and compaction are bench/warehouse.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from evalfleet import api
from evalfleet.settings import Settings
from evalfleet.spec import RunResult, load_plan
from evalfleet.store import RowContext, Store

N_TASKS = 5_000
CATEGORIES = ("coding", "math", "reasoning", "writing", "retrieval", "tool_use")
N_REPOS = 20
N_EVALS = 10
VERSIONS_PER_EVAL = 3
QUESTION: dict[str, Any] = {
    "where": ["category=coding", "difficulty>=3"], "by": ["repository"],
    "agent": "coder@latest", "vs": "coder@2 weeks ago"}


def _suite(path: Path) -> None:
    with path.open("w") as fh:
        for i in range(N_TASKS):
            fh.write(json.dumps({
                "id": f"t{i:05d}", "input": "x", "target": "ok", "scorer": {"kind": "exact"},
                "category": CATEGORIES[i % len(CATEGORIES)], "difficulty": 1 + (i // 6) % 5,
                "metadata": {"repository": f"repo{(i // 30) % N_REPOS:02d}"}}) + "\n")


def build(base: Path, home: Path, *, k: int, batch: int, now: datetime, seed: int = 0) -> int:
    """The home, written eval by eval through Store.commit; returns the number of rows."""
    suite = base / "suite.jsonl"
    _suite(suite)
    rng = np.random.default_rng(seed)
    p_task = rng.beta(2.0, 1.2, size=N_TASKS)
    store = Store(home)
    rows = 0
    try:
        for e in range(N_EVALS):
            versions = [str(e * VERSIONS_PER_EVAL + j + 1) for j in range(VERSIONS_PER_EVAL)]
            plan_path = base / f"plan{e}.yaml"
            plan_path.write_text(yaml.safe_dump({
                "name": f"nightly{e}", "suite": {"path": str(suite)}, "runs_per_task": k,
                "agents": [{"name": "coder", "version": v, "kind": "python",
                            "args": {"callable": "evalfleet.testing.agents:noop"}}
                           for v in versions]}))
            plan = load_plan(plan_path)
            suite_obj = api.validate_plan(plan)
            eval_id = api.create_eval(store, plan, suite_obj)
            ctx = RowContext(eval_id, plan.name, suite_obj, plan.agents)
            index = {t.id: i for i, t in enumerate(suite_obj.tasks)}
            repo = {t.id: t.repository for t in suite_obj.tasks}
            at = (now - timedelta(days=2 * (N_EVALS - e))).timestamp()
            while True:
                leased = store.journal.lease(eval_id, "bench", batch, 600)
                if not leased:
                    break
                draws = rng.random(len(leased))
                results = []
                for lr, u in zip(leased, draws, strict=True):
                    version = e * VERSIONS_PER_EVAL + lr.agent_index
                    ts = at + 60 * lr.agent_index + lr.repeat
                    if u < 0.01:
                        results.append(RunResult(
                            run_id=lr.run_id, task_id=lr.task_id, agent_index=lr.agent_index,
                            repeat=lr.repeat, status="errored", error_kind="infra_error",
                            started_at=ts, finished_at=ts + 1))
                        continue
                    p = p_task[index[lr.task_id]] + 0.002 * version
                    if e == N_EVALS - 1 and repo[lr.task_id] == "repo07":
                        p -= 0.15  # the latest versions regress on one repository
                    ok = bool(rng.random() < min(max(p, 0.0), 1.0))
                    results.append(RunResult(
                        run_id=lr.run_id, task_id=lr.task_id, agent_index=lr.agent_index,
                        repeat=lr.repeat, status="completed", score=float(ok), passed=ok,
                        cost_usd=float(rng.gamma(2.0, 0.002)),
                        latency_s=float(rng.lognormal(3.0, 0.5)), tokens_in=1000,
                        tokens_out=200, started_at=ts, finished_at=ts + 1, attempts=1))
                store.commit(ctx, results)
                rows += len(results)
    finally:
        store.close()
    return rows


def _median(fn: Any, n: int = 3) -> tuple[float, list[float], Any]:
    times, last = [], None
    for _ in range(n):
        t = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, last


def write_jsonl(home: Path, settings: Settings, out: Path) -> None:
    """Every committed row as JSON Lines (a plain DuckDB connection: this is the bench)."""
    import duckdb

    store = api.open_reader(settings)
    try:
        files = [str(home / p) for p in store.all_results_paths()]
    finally:
        store.close()
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_parquet({files!r}, union_by_name = true)) "
                f"TO '{out}' (FORMAT json)")
    con.close()


def pandas_answer(path: Path, now: datetime) -> dict[str, Any]:
    """The same question in pandas from JSON Lines, then the same per-cell statistics."""
    import pandas as pd

    from evalfleet.api import slices

    df = pd.read_json(path, lines=True, dtype={"agent_version": str, "task_id": str})
    ts = pd.to_datetime(df["finished_at"].fillna(df["started_at"]), utc=True, format="ISO8601")
    coder = df["agent_name"] == "coder"
    order = pd.DataFrame({"ts": ts[coder], "v": df.loc[coder, "agent_version"]})
    order = order.sort_values(["ts", "v"], ascending=False)
    latest = order["v"].iloc[0]
    cutoff = pd.Timestamp(now - timedelta(weeks=2))
    before = order[order["ts"] <= cutoff]["v"].iloc[0]
    sel = df[coder & df["agent_version"].isin([latest, before])
             & (df["category"] == "coding") & (df["difficulty"] >= 3)].copy()
    score = sel["score"]
    sel["ok"] = (sel["status"].isin(["completed", "failed"]) & score.notna()
                 & np.isfinite(score.fillna(np.nan)) & score.between(0, 1))
    passed = sel["passed"].astype("boolean").fillna(score >= 1)
    sel["v"] = np.where(sel["ok"], passed.astype(float), np.nan)
    sel["side"] = np.where(sel["agent_version"] == latest, 0, 1)
    sel["by_0"] = sel["repository"].fillna("")
    sel["cancelled"] = ~sel["ok"] & (sel["status"] == "cancelled")
    sel["errored"] = ~sel["ok"] & (sel["status"] != "cancelled")
    g = sel.groupby(["by_0", "side", "task_id"], sort=True)
    agg = g.agg(n=("ok", "sum"), mean=("v", "mean"), cancelled=("cancelled", "sum"),
                errored=("errored", "sum")).reset_index()
    rows = {c: agg[c].to_numpy() for c in ("by_0", "side", "task_id", "n", "mean",
                                           "cancelled", "errored")}
    rows["binary"] = np.ones(len(agg), dtype=bool)
    cells = slices._cells(rows, ("repository",), "pass_rate", paired=True, alpha=0.05,
                          min_tasks=slices.MIN_TASKS, same=latest == before)
    return {"versions": (latest, before), "cells": cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-per-task", type=int, default=7)
    parser.add_argument("--batch", type=int, default=10_000, help="rows per committed file")
    parser.add_argument("--pandas-repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="build in DIR and keep it; a DIR built before is reused")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        home = base / "home"
        settings = Settings(home=home)
        t0 = time.perf_counter()
        stamp = base / "built-at"
        if stamp.exists():  # --keep: the clock the home was built against
            now = datetime.fromisoformat(stamp.read_text())
            n = int(api.query("SELECT count(*) FROM runs", settings=settings)[1][0][0])
        else:
            now = datetime.now(UTC)
            n = build(base, home, k=args.runs_per_task, batch=args.batch, now=now)
            stamp.write_text(now.isoformat())
        files = len(list((home / "results").rglob("*.parquet")))
        parquet_mb = sum(f.stat().st_size for f in (home / "results").rglob("*.parquet")) / 1e6
        print(f"built {n:,} runs ({N_TASKS:,} tasks, {N_EVALS * VERSIONS_PER_EVAL} versions, "
              f"{N_REPOS} repositories, {len(CATEGORIES)} categories) in "
              f"{time.perf_counter() - t0:.0f}s: {files} Parquet files, {parquet_mb:.1f} MB")

        def run_slice() -> dict[str, Any]:
            return api.slice_runs(settings=settings, now=now, **QUESTION)

        t = time.perf_counter()
        first = run_slice()
        cold = time.perf_counter() - t
        med, times, res = _median(run_slice)
        parts = [run_slice()["timing"] for _ in range(3)]
        query = statistics.median(p["query_s"] for p in parts)
        split = ", ".join(
            f"{k.removesuffix('_s')} {1000 * statistics.median(p[k] for p in parts):.0f}"
            for k in ("resolve_s", "query_s", "stats_s"))
        print(f"question: {' '.join(QUESTION['where'])} by repository, "
              f"{res['agent']['agent_name']}@{res['agent']['agent_version']} vs "
              f"@{res['vs']['agent_version']}; flagged: {', '.join(res['flagged']) or 'none'}")
        print(f"in-process api.slice_runs: median {1000 * med:.0f} ms "
              f"({', '.join(f'{1000 * x:.0f}' for x in times)}); DuckDB query alone "
              f"{1000 * query:.0f} ms ({split} ms); first call (imports) {1000 * cold:.0f} ms")
        del first

        cli = [sys.executable, "-m", "evalfleet", "slice", "--home", str(home), "--json",
               "--agent", QUESTION["agent"], "--vs", QUESTION["vs"], "--by", "repository",
               *[a for w in QUESTION["where"] for a in ("--where", w)]]

        # bytecode caches on, as on a user's machine (shells that set PYTHONDONTWRITEBYTECODE
        # make every process compile evalfleet's modules again)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

        def run_cli() -> float:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(cli, check=True, capture_output=True, env=env)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

        cpu: list[float] = []
        proc, ptimes, _ = _median(lambda: cpu.append(run_cli()))
        floor_cmd = [sys.executable, "-m", "evalfleet", "--help"]
        floor, _, _ = _median(lambda: subprocess.run(floor_cmd, check=True, env=env,
                                                     capture_output=True))
        print(f"whole process `evalfleet slice --json`: median {1000 * proc:.0f} ms wall "
              f"({', '.join(f'{1000 * x:.0f}' for x in ptimes)}), "
              f"{1000 * statistics.median(cpu):.0f} ms CPU; `evalfleet --help` in the same run "
              f"{1000 * floor:.0f} ms (ratio {proc / floor:.1f})")

        jsonl = base / "runs.jsonl"
        write_jsonl(home, settings, jsonl)
        print(f"same rows as JSON Lines: {jsonl.stat().st_size / 1e6:.0f} MB")
        pmed, ptimes2, pans = _median(lambda: pandas_answer(jsonl, now), args.pandas_repeats)
        same = (pans["versions"] == (res["agent"]["agent_version"],
                                     res["vs"]["agent_version"])
                and _strip(pans["cells"]) == _strip(res["cells"]))
        print(f"pandas from JSON Lines (read + resolve + group + the same statistics): median "
              f"{pmed:.1f} s ({', '.join(f'{x:.1f}' for x in ptimes2)}); same answer: {same}")
        print(f"ratio pandas / slice: {pmed / med:.0f}x in-process, {pmed / proc:.1f}x against "
              "the whole slice process")


def _strip(cells: list[dict[str, Any]]) -> str:
    """Cells as JSON with floats rounded (pandas and DuckDB sum in different orders)."""
    def r(x: Any) -> Any:
        if isinstance(x, float):
            return round(x, 9)
        if isinstance(x, dict):
            return {k: r(v) for k, v in x.items()}
        if isinstance(x, list):
            return [r(v) for v in x]
        return x

    return json.dumps(r(cells), sort_keys=True, default=str)


if __name__ == "__main__":
    main()
