"""Benchmark: a 1M- or 10M-run warehouse built through the writer and compaction, its bytes per
run, and the issue's question timed in-process against pandas on the same rows.

    python bench/warehouse.py --runs 1000000            # about 2 minutes
    python bench/warehouse.py --runs 10000000           # the issue's size: many minutes
    python bench/warehouse.py --runs 1000000 --keep DIR # keep the home in DIR

The home is written the way a driver writes it: 10 evals (each created with ``create_eval``, its
runs leased from the journal and committed with ``Store.commit`` in batches of ``--batch``
synthetic RunResults with trajectories), each eval claimed and compacted as it runs
(``Store.auto_compact``: size-tiered merges every 64 commits) and when it ends
(``Store.maintain(final=True)``), then superseded files purged past their grace. Cardinalities:
5,000 tasks in 6 categories over 20 repositories (difficulty 1-5), 30 versions of the agent
``coder`` (3 per eval), K runs per task and version so that runs ~ ``--runs``.

It prints rows' bytes per run in Parquet (in the committed small files and after compaction),
trajectories' bytes per run on disk and their zstd ratio, the journal's bytes per run (file size
after a checkpoint, and after VACUUM, by table where SQLite has ``dbstat``), and then the
question

    pass rate of coding tasks at difficulty >= 3 on the latest agent version against an older
    one, by repository

as one DuckDB query over the committed files through the readers' confined connection
(``warehouse.connect``, opening it included; median of 3), and in pandas from JSON Lines of the
same rows' question columns (read in 1M-line chunks, filtered, grouped; median of
``--pandas-repeats``), with the ratio; the two answers are checked equal.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml
import zstandard

from evalfleet import api
from evalfleet.spec import RunResult, load_plan
from evalfleet.store import RowContext, Store, driver_name
from evalfleet.store import compaction as comp
from evalfleet.store.results import ORPHAN_GRACE_S, ResultsWriter
from evalfleet.store.warehouse import connect

N_TASKS = 5_000
JOURNAL_GOAL = 100
"""Journal bytes per run of complete evals the issue allows."""
CATEGORIES = ("coding", "math", "reasoning", "writing", "retrieval", "tool_use")
N_REPOS = 20
N_EVALS = 10
VERSIONS_PER_EVAL = 3
WORDS = ("the", "test", "fails", "because", "function", "returns", "None", "instead", "of",
         "list", "fix", "edit", "file", "line", "import", "patch", "apply", "run", "pytest",
         "assert", "error", "value", "expected", "got", "check", "module", "class", "def",
         "self", "return", "raise", "ok", "passed", "failed", "diff", "src", "tests", "main")
QUESTION_SQL = """
SELECT repository, agent_version,
       avg(CASE WHEN passed THEN 1.0 ELSE 0.0 END) AS pass_rate, count(*) AS n
FROM runs
WHERE agent_name = 'coder' AND agent_version IN ($latest, $older)
  AND category = 'coding' AND difficulty >= 3 AND status IN ('completed', 'failed')
GROUP BY repository, agent_version ORDER BY repository, agent_version
"""


def version(i: int) -> str:
    return f"1.{i:02d}"


def _suite(path: Path) -> None:
    with path.open("w") as fh:
        for i in range(N_TASKS):
            fh.write(json.dumps({
                "id": f"t{i:05d}", "input": "x", "target": "ok", "scorer": {"kind": "exact"},
                "category": CATEGORIES[i % len(CATEGORIES)], "difficulty": 1 + (i // 6) % 5,
                "metadata": {"repository": f"repo{(i // 30) % N_REPOS:02d}"}}) + "\n")


def _trajectory(rng: np.random.Generator, ok: bool, tokens_out: int) -> dict[str, Any]:
    """A small agent trajectory: model turns with text, tool calls, the scorer's report."""
    events: list[dict[str, Any]] = []
    for turn in range(int(rng.integers(2, 6))):
        words = rng.integers(0, len(WORDS), size=int(rng.integers(8, 40)))
        events.append({"kind": "model", "turn": turn, "tokens_out": tokens_out // 4,
                       "text": " ".join(WORDS[w] for w in words)})
        events.append({"kind": "tool", "name": "bash",
                       "cmd": f"pytest -q tests/test_{WORDS[int(words[0])]}.py",
                       "exit": 0 if ok else 1})
    events.append({"kind": "scorer", "passed": ok, "tests": {"passed": 3 if ok else 1,
                                                               "failed": 0 if ok else 2}})
    return {"events": events}


class Meter:
    """Bytes the writer committed and seconds compaction took."""

    def __init__(self) -> None:
        self.small_parquet = 0
        self.small_traj = 0
        self.batches = 0
        self.compact_s = 0.0
        self.merges = 0

    def install(self, home: Path) -> None:
        write = ResultsWriter.write
        compact = comp.compact_eval
        meter = self

        def metered_write(self: ResultsWriter, *a: Any, **k: Any) -> Any:
            b = write(self, *a, **k)
            meter.batches += 1
            meter.small_parquet += (home / b.results_path).stat().st_size
            if b.trajectories_path:
                meter.small_traj += (home / b.trajectories_path).stat().st_size
            return b

        def timed_compact(*a: Any, **k: Any) -> comp.CompactionReport:
            t = time.perf_counter()
            rep = compact(*a, **k)
            meter.compact_s += time.perf_counter() - t
            meter.merges += len(rep.merges)
            return rep

        ResultsWriter.write = metered_write  # type: ignore[method-assign]
        comp.compact_eval = timed_compact  # type: ignore[assignment]


def build(base: Path, home: Path, *, k: int, batch: int, now: datetime,
          seed: int = 0) -> tuple[int, Meter]:
    """The home, eval by eval, as a driver writes it; returns the rows and the meter."""
    suite = base / "suite.jsonl"
    _suite(suite)
    rng = np.random.default_rng(seed)
    p_task = rng.beta(2.0, 1.2, size=N_TASKS)
    meter = Meter()
    meter.install(home)
    store = Store(home)
    driver = driver_name()
    rows = 0
    try:
        for e in range(N_EVALS):
            versions = [version(e * VERSIONS_PER_EVAL + j + 1) for j in range(VERSIONS_PER_EVAL)]
            plan_path = base / f"plan{e}.yaml"
            plan_path.write_text(yaml.safe_dump({
                "name": f"nightly{e}", "suite": {"path": str(suite)}, "runs_per_task": k,
                "agents": [{"name": "coder", "version": v, "kind": "python",
                            "args": {"callable": "evalfleet.testing.agents:noop"}}
                           for v in versions]}))
            plan = load_plan(plan_path)
            suite_obj = api.validate_plan(plan)
            eval_id = api.create_eval(store, plan, suite_obj)
            store.journal.claim_driver(eval_id, driver, 3600)
            store.auto_compact(eval_id, driver)
            ctx = RowContext(eval_id, plan.name, suite_obj, plan.agents)
            index = {t.id: i for i, t in enumerate(suite_obj.tasks)}
            at = (now - timedelta(days=2 * (N_EVALS - e))).timestamp()
            while True:
                leased = store.journal.lease(eval_id, driver, batch, 3600)
                if not leased:
                    break
                n = len(leased)
                draws = rng.random(n)
                tok_in = rng.integers(2_000, 60_000, size=n)
                tok_out = rng.integers(100, 4_000, size=n)
                lat = rng.lognormal(4.5, 0.6, size=n)
                results = []
                for j, lr in enumerate(leased):
                    ts = at + 3.0 * (rows + j) / VERSIONS_PER_EVAL
                    if draws[j] < 0.01:
                        results.append(RunResult(
                            run_id=lr.run_id, task_id=lr.task_id, agent_index=lr.agent_index,
                            repeat=lr.repeat, status="errored", error_kind="infra_error",
                            error="sandbox did not start", attempts=3, worker=f"w{j % 100:02d}",
                            sandbox="bwrap", started_at=ts, finished_at=ts + 5))
                        continue
                    v = e * VERSIONS_PER_EVAL + lr.agent_index
                    p = min(max(p_task[index[lr.task_id]] + 0.003 * v, 0.0), 1.0)
                    ok = bool(rng.random() < p)
                    ti, to = int(tok_in[j]), int(tok_out[j])
                    results.append(RunResult(
                        run_id=lr.run_id, task_id=lr.task_id, agent_index=lr.agent_index,
                        repeat=lr.repeat, status="completed" if ok or draws[j] > 0.1 else "failed",
                        error_kind=None if ok or draws[j] > 0.1 else "task_timeout",
                        score=float(ok), passed=ok, tokens_in=ti, tokens_cached=ti // 2,
                        tokens_out=to, cost_usd=ti * 3e-6 + to * 15e-6,
                        infra_cost_usd=float(lat[j]) * 0.05 / 3600, latency_s=float(lat[j]),
                        attempts=1, worker=f"w{j % 100:02d}", sandbox="bwrap",
                        started_at=ts, finished_at=ts + float(lat[j]),
                        trajectory=_trajectory(rng, ok, to)))
                store.commit(ctx, results)
                rows += n
            store.maintain(eval_id, driver, final=True)
            store.journal.set_status(eval_id, "completed", finished=True)
            store.journal.release_driver(eval_id, driver)
            print(f"  eval {e + 1}/{N_EVALS}: {rows:,} runs so far", file=sys.stderr)
        # the grace period over: superseded files and their journal rows go
        store.purge_retired(now=time.time() + ORPHAN_GRACE_S + 1)
    finally:
        store.close()
    return rows, meter


def _median(fn: Callable[[], Any], n: int = 3) -> tuple[float, list[float], Any]:
    times, last = [], None
    for _ in range(n):
        t = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, last


def journal_sizes(path: Path) -> tuple[int, int, dict[str, int]]:
    """(bytes after a checkpoint, bytes after VACUUM, bytes by table and index)."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = path.stat().st_size
        con.execute("VACUUM")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        after = path.stat().st_size
        try:
            by = dict(con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name "
                                  "ORDER BY 2 DESC").fetchall())
        except sqlite3.OperationalError:  # SQLite built without dbstat
            by = {}
    finally:
        con.close()
    return before, after, by


def trajectory_sizes(home: Path, files: list[str]) -> tuple[int, int]:
    """(bytes on disk, bytes uncompressed) of the live trajectory files."""
    disk = raw = 0
    for rel in files:
        data = (home / rel).read_bytes()
        disk += len(data)
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data),
                                                            read_across_frames=True)
        while chunk := reader.read(16 * 2**20):
            raw += len(chunk)
    return disk, raw


def write_jsonl(home: Path, paths: list[str], out: Path) -> None:
    """The question's columns of every committed row as JSON Lines (a plain DuckDB
    connection: this is the bench, not a reader)."""
    import duckdb

    files = [str(home / p) for p in paths]
    con = duckdb.connect()
    con.execute("COPY (SELECT run_id, agent_name, agent_version, category, difficulty, "
                f"repository, status, passed FROM read_parquet({files!r}, union_by_name = true))"
                f" TO '{out}' (FORMAT json)")
    con.close()


def pandas_answer(path: Path, latest: str, older: str) -> list[tuple[Any, ...]]:
    import pandas as pd

    parts = []
    for chunk in pd.read_json(path, lines=True, chunksize=1_000_000,
                              dtype={"agent_version": str, "repository": str}):
        sel = chunk[(chunk["agent_name"] == "coder")
                    & chunk["agent_version"].isin([latest, older])
                    & (chunk["category"] == "coding") & (chunk["difficulty"] >= 3)
                    & chunk["status"].isin(["completed", "failed"])]
        parts.append(sel[["repository", "agent_version", "passed"]])
    df = pd.concat(parts)
    df["ok"] = df["passed"].fillna(False).astype(float)
    g = df.groupby(["repository", "agent_version"], sort=True)["ok"].agg(["mean", "count"])
    return [(r, v, float(m), int(c)) for (r, v), (m, c) in g.iterrows()]


def slice_args(latest: str, older: str) -> dict[str, Any]:
    """The question as `evalfleet slice` flags: the latest version is resolved, not named."""
    del latest
    return {"agent": "coder@latest", "vs": f"coder@{older}", "by": ["repository"],
            "where": ["category=coding", "difficulty>=3"]}


def time_slice(home: Path, now: datetime, latest: str, older: str) -> float:
    """``api.slice_runs`` in-process (median of 3 after a first call); returns the median."""
    from evalfleet.settings import Settings

    settings = Settings(home=home)
    question = slice_args(latest, older)
    t = time.perf_counter()
    res = api.slice_runs(settings=settings, now=now, **question)
    first = time.perf_counter() - t
    assert res["agent"]["agent_version"] == latest, res["agent"]
    med, times, res = _median(lambda: api.slice_runs(settings=settings, now=now, **question))
    split = ", ".join(f"{k.removesuffix('_s')} {1000 * v:.0f}" for k, v in res["timing"].items()
                      if k.endswith("_s"))
    print(f"in-process api.slice_runs (coder@latest vs coder@{older}, intervals and paired tests "
          f"per cell): median {1000 * med:.0f} ms ({', '.join(f'{1000 * x:.0f}' for x in times)};"
          f" last: {split} ms); first call {1000 * first:.0f} ms; goal 300 ms")
    return med


def time_processes(home: Path, latest: str, older: str, params: dict[str, str]) -> None:
    """Whole `evalfleet slice --json` and `evalfleet query --json` processes (median of 3),
    beside `evalfleet --help` in the same run."""
    question = slice_args(latest, older)
    evalfleet = [sys.executable, "-m", "evalfleet"]
    slice_cmd = [*evalfleet, "slice", "--home", str(home), "--json", "--agent",
                 question["agent"], "--vs", question["vs"], "--by", "repository",
                 *[a for w in question["where"] for a in ("--where", w)]]
    sql = QUESTION_SQL.replace("$latest", f"'{params['latest']}'").replace(
        "$older", f"'{params['older']}'")
    query_cmd = [*evalfleet, "query", sql, "--home", str(home), "--json"]
    # bytecode caches on, as on a user's machine
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([*evalfleet, "--help"], check=True, capture_output=True, env=env)
    for name, cmd in (("evalfleet --help", [*evalfleet, "--help"]),
                      ("evalfleet slice --json", slice_cmd),
                      ("evalfleet query --json", query_cmd)):
        med, times, _ = _median(lambda cmd=cmd: subprocess.run(  # type: ignore[misc]
            cmd, check=True, capture_output=True, env=env))
        print(f"whole process `{name}`: median {1000 * med:.0f} ms "
              f"({', '.join(f'{1000 * x:.0f}' for x in times)})"
              + ("" if name.endswith("help") else "; goal 1000 ms"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000_000,
                        help="about this many runs in all (10 evals)")
    parser.add_argument("--batch", type=int, default=1_000, help="rows per committed batch")
    parser.add_argument("--pandas-repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the home in this directory and keep it")
    args = parser.parse_args()
    k = max(1, round(args.runs / (N_EVALS * N_TASKS * VERSIONS_PER_EVAL)))
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        home = base / "home"
        stamp = base / "built.json"
        if stamp.exists():  # --keep DIR built before: reuse it, with its clock and figures
            built = json.loads(stamp.read_text())
            now = datetime.fromisoformat(built["now"])
            print(f"reusing the home built in {base} at {built['now']}")
        else:
            t0 = time.perf_counter()
            n, meter = build(base, home, k=k, batch=args.batch, now=now)
            built = {"now": now.isoformat(), "rows": n, "k": k, "batch": args.batch,
                     "build_s": time.perf_counter() - t0, **vars(meter)}
            if args.keep:
                stamp.write_text(json.dumps(built))
        n, k, build_s = built["rows"], built["k"], built["build_s"]
        meter = Meter()
        vars(meter).update({key: built[key] for key in vars(meter)})
        store = Store.open_readonly(home)
        paths = store.all_results_paths()
        traj = sorted({b["trajectories_path"] for e in store.journal.list_evals()
                       for b in store.journal.iter_batches(e["eval_id"])
                       if b["trajectories_path"]})
        store.close()
        parquet = sum((home / p).stat().st_size for p in paths)
        print(f"built {n:,} runs ({N_TASKS:,} tasks x {N_EVALS * VERSIONS_PER_EVAL} versions x "
              f"{k} runs; {N_REPOS} repositories, {len(CATEGORIES)} categories, {N_EVALS} "
              f"evals) in {build_s:.0f} s, of which compaction {meter.compact_s:.0f} s "
              f"({meter.merges} merges)")
        print(f"files: {meter.batches:,} committed batches (batch {built['batch']:,}) -> "
              f"{len(paths)} Parquet + {len(traj)} trajectory files after compaction")
        print(f"rows (Parquet): {parquet / n:.1f} B/run compacted ({parquet / 1e6:.0f} MB); "
              f"{meter.small_parquet / n:.1f} B/run in the committed batch files")
        disk, raw = trajectory_sizes(home, traj)
        print(f"trajectories: {disk / n:.1f} B/run on disk compacted (zstd ratio "
              f"{raw / disk:.1f}x of {raw / n:.0f} B/run JSON); {meter.small_traj / n:.1f} "
              "B/run in the committed batch files")
        jb, ja, by = journal_sizes(home / "journal.db")
        print(f"journal: {jb / n:.0f} B/run ({jb / 1e6:.0f} MB) after a checkpoint, "
              f"{ja / n:.0f} B/run after VACUUM (goal: at most {JOURNAL_GOAL} B/run for "
              f"complete evals: {'OK' if max(jb, ja) / n <= JOURNAL_GOAL else 'EXCEEDED'})")
        if by:
            print("  by table/index after VACUUM: " + ", ".join(
                f"{name} {size / n:.0f}" for name, size in by.items() if size / n >= 0.5)
                  + " B/run")

        latest, older = version(N_EVALS * VERSIONS_PER_EVAL), version(
            N_EVALS * VERSIONS_PER_EVAL - 6)
        params = {"latest": latest, "older": older}

        def ask() -> list[tuple[Any, ...]]:
            con = connect(home, paths)
            try:
                return con.execute(QUESTION_SQL, params).fetchall()
            finally:
                con.close()

        first = time.perf_counter()
        ask()
        first_s = time.perf_counter() - first
        med, times, answer = _median(ask)
        print(f"question: pass rate, coding, difficulty >= 3, coder@{latest} vs coder@{older}, "
              f"by repository ({len(answer)} cells over {len(paths)} files)")
        print(f"in-process DuckDB (open the confined connection + query): median "
              f"{1000 * med:.0f} ms ({', '.join(f'{1000 * x:.0f}' for x in times)}); first "
              f"{1000 * first_s:.0f} ms")

        slice_med = time_slice(home, now, latest, older)
        time_processes(home, latest, older, params)

        jsonl = base / "runs.jsonl"
        write_jsonl(home, paths, jsonl)
        print(f"the same rows' question columns as JSON Lines: {jsonl.stat().st_size / 1e6:.0f} "
              "MB")
        pmed, ptimes, pans = _median(lambda: pandas_answer(jsonl, latest, older),
                                     args.pandas_repeats)
        same = len(pans) == len(answer) and all(
            a[:2] == b[:2] and a[3] == b[3] and math.isclose(a[2], b[2], abs_tol=1e-9)
            for a, b in zip(pans, answer, strict=True))
        print(f"pandas from JSON Lines (chunked read, filter, group): median {pmed:.1f} s "
              f"({', '.join(f'{x:.1f}' for x in ptimes)}); same answer: {same}")
        print(f"ratio pandas / DuckDB in-process: {pmed / med:.0f}x; pandas / api.slice_runs "
              f"in-process: {pmed / slice_med:.0f}x")
        jsonl.unlink()


if __name__ == "__main__":
    main()
