"""`evalfleet slice`: the issue's question on a synthetic history with a planted regression.

The home holds four evals written through the project's own store (create_eval, lease,
Store.commit), at known times before an injected clock:

* coder@8 40 days ago, coder@9 20 days ago, coder@10 2 days ago (plus other@1): one binary run
  per task. Versions are named so that their text order is not their time order ("9" > "10").
* coder@10 equals coder@9 except: in repository r2, every coding task of difficulty >= 3 that
  coder@9 passed fails (the planted regression); in r0, r1 and r3 two such tasks flip each way;
  three of its r1 runs are infrastructure errors (excluded, not failures).
* helper@1 / helper@2 (5 days ago): two runs per task with partial credit, for the t-interval
  and paired-t paths.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import cli_in_process
from evalfleet import api, stats
from evalfleet.analysis.report import rate_dict
from evalfleet.cli.main import main
from evalfleet.errors import SpecError, UnknownEvalError
from evalfleet.settings import Settings
from evalfleet.spec import RunResult, load_plan
from evalfleet.store import RowContext, Store

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
N_TASKS = 400
REPOS = ("r0", "r1", "r2", "r3")
ISSUE = {"where": ["category=coding", "difficulty>=3"], "by": ["repository"],
         "agent": "coder@latest", "vs": "coder@2 weeks ago"}


def _task(i: int) -> dict[str, Any]:
    return {"id": f"t{i:04d}", "input": "x", "target": "ok", "scorer": {"kind": "exact"},
            "category": "coding" if i % 2 == 0 else "math", "difficulty": 1 + (i // 2) % 5,
            "metadata": {"repository": REPOS[(i // 10) % 4]}}


TASKS = [_task(i) for i in range(N_TASKS)]


def _in_question(t: dict[str, Any]) -> bool:
    return bool(t["category"] == "coding" and t["difficulty"] >= 3)


def _h(*parts: object) -> int:
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16)


def _v9(t: dict[str, Any]) -> float:
    return 0.0 if _h("v9", t["id"]) % 3 == 0 else 1.0


def _v10(t: dict[str, Any]) -> float:
    base = _v9(t)
    repo = t["metadata"]["repository"]
    if not _in_question(t):
        return base
    if repo == "r2":
        return 0.0  # planted: every r2 question task coder@9 passed now fails
    ids = [u["id"] for u in TASKS if _in_question(u) and u["metadata"]["repository"] == repo]
    passed = [u for u in ids if _v9(next(x for x in TASKS if x["id"] == u)) == 1.0]
    failed = [u for u in ids if u not in passed]
    if t["id"] in passed[:2]:
        return 0.0
    if t["id"] in failed[:2]:
        return 1.0
    return base


def _errored_v10(t: dict[str, Any]) -> bool:
    r1 = [u["id"] for u in TASKS if _in_question(u) and u["metadata"]["repository"] == "r1"]
    return t["id"] in r1[-3:]


def _helper(version: str, t: dict[str, Any], k: int) -> float:
    return (_h(version, t["id"], k) % 5) / 4.0  # 0, .25, .5, .75, 1


@dataclass(frozen=True)
class History:
    settings: Settings
    evals: dict[str, str]
    """label -> eval id"""


def _eval(tmp: Path, store: Store, name: str, agents: list[tuple[str, str]], k: int,
          score: Any, at: datetime) -> str:
    suite = tmp / "suite.jsonl"
    if not suite.exists():
        suite.write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    plan_path = tmp / f"{name}.yaml"
    plan_path.write_text(yaml.safe_dump({
        "name": name, "suite": {"path": str(suite)}, "runs_per_task": k,
        "agents": [{"name": a, "version": v, "kind": "python",
                    "args": {"callable": "evalfleet.testing.agents:noop"}} for a, v in agents]}))
    plan = load_plan(plan_path)
    suite_obj = api.validate_plan(plan)
    eval_id = api.create_eval(store, plan, suite_obj)
    ctx = RowContext(eval_id, plan.name, suite_obj, plan.agents)
    by_id = {t["id"]: t for t in TASKS}
    leased = store.journal.lease(eval_id, "test", 100_000, 600)
    results = []
    for lr in leased:
        a_name, a_version = agents[lr.agent_index]
        t = by_id[lr.task_id]
        ts = at.timestamp() - 60 + lr.repeat
        value = score(a_name, a_version, t, lr.repeat)
        if value is None:
            results.append(RunResult(
                run_id=lr.run_id, task_id=lr.task_id, agent_index=lr.agent_index,
                repeat=lr.repeat, status="errored", error_kind="infra_error",
                started_at=ts, finished_at=ts + 1))
            continue
        results.append(RunResult(
            run_id=lr.run_id, task_id=lr.task_id, agent_index=lr.agent_index,
            repeat=lr.repeat, status="completed", score=value, passed=value == 1.0,
            cost_usd=0.01 + 0.001 * (_h(t["id"]) % 7), latency_s=1.0 + _h(t["id"], 1) % 5,
            started_at=ts, finished_at=ts + 1, attempts=1))
    store.commit(ctx, results)
    return eval_id


def _score(name: str, version: str, t: dict[str, Any], k: int) -> float | None:
    if name == "coder":
        if version == "10":
            return None if _errored_v10(t) else _v10(t)
        return _v9(t) if version == "9" else 1.0 - _v9(t)
    if name == "helper":
        return _helper(version, t, k)
    return 1.0


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    tmp = tmp_path_factory.mktemp("slice")
    settings = Settings(home=tmp / "home")
    store = Store(settings.home)
    try:
        evals = {
            "v8": _eval(tmp, store, "old", [("coder", "8")], 1, _score,
                        NOW - timedelta(days=40)),
            "v9": _eval(tmp, store, "mid", [("coder", "9")], 1, _score,
                        NOW - timedelta(days=20)),
            "helper": _eval(tmp, store, "helper", [("helper", "1"), ("helper", "2")], 2,
                            _score, NOW - timedelta(days=5)),
            "v10": _eval(tmp, store, "new", [("coder", "10"), ("other", "1")], 1, _score,
                         NOW - timedelta(days=2)),
        }
    finally:
        store.close()
    return History(settings, evals)


def _slice(h: History, **kw: Any) -> dict[str, Any]:
    return api.slice_runs(settings=h.settings, now=NOW, **kw)


def _fingerprint(home: Path) -> dict[str, tuple[int, str]]:
    return {f.relative_to(home).as_posix(): (f.stat().st_mode,
                                             hashlib.sha256(f.read_bytes()).hexdigest())
            for f in sorted(home.rglob("*"))
            if f.is_file() and not f.name.endswith(("-shm", "-wal"))}


# --- the issue's question ---------------------------------------------------------------------


def test_the_issues_question_flags_the_planted_repository_only(history: History) -> None:
    res = _slice(history, **ISSUE)
    assert (res["agent"]["agent_version"], res["vs"]["agent_version"]) == ("10", "9")
    assert [e["eval_id"] for e in res["agent"]["evals"]] == [history.evals["v10"]]
    assert [e["eval_id"] for e in res["vs"]["evals"]] == [history.evals["v9"]]
    assert "newest version run, last at 2026-06-13" in res["agent"]["chosen_by"]
    assert "at or before 2026-06-01T12:00:00+00:00" in res["vs"]["chosen_by"]
    cells = {c["cell"]["repository"]: c for c in res["cells"]}
    assert sorted(cells) == list(REPOS)
    assert res["flagged"] == ["repository=r2"]
    r2 = cells["r2"]["paired"]
    assert r2["flagged"] and r2["direction"] == "down" and r2["estimate"] < -0.3
    assert r2["test"] == "mcnemar-midp" and r2["p_holm"] < 0.001
    for repo in ("r0", "r1", "r3"):
        p = cells[repo]["paired"]
        assert not p["flagged"] and p["estimate"] == 0.0 and p["p_holm"] == 1.0, repo
        assert p["mcnemar"]["b_new_only"] == 2 and p["mcnemar"]["c_base_only"] == 2
    # the unadjusted p is kept beside Holm's, which multiplies the smallest by 4 cells
    assert r2["p_holm"] == pytest.approx(min(1.0, 4 * r2["p_value"]))


def test_excluded_runs_are_counted_per_cell_and_never_scored(history: History) -> None:
    cells = {c["cell"]["repository"]: c for c in _slice(history, **ISSUE)["cells"]}
    in_r1 = [t for t in TASKS if _in_question(t) and t["metadata"]["repository"] == "r1"]
    r1 = cells["r1"]
    assert r1["agent"]["excluded"] == {"errored": 3, "cancelled": 0}
    assert r1["agent"]["n_tasks"] == len(in_r1) - 3  # not 3 failures: 3 missing tasks
    assert r1["vs"]["n_tasks"] == len(in_r1) and r1["vs"]["excluded"]["errored"] == 0
    assert r1["paired"]["n_tasks"] == len(in_r1) - 3
    scored = [t for t in in_r1 if not _errored_v10(t)]
    assert r1["agent"]["mean"] == pytest.approx(np.mean([_v10(t) for t in scored]))
    assert all(c["agent"]["excluded"]["errored"] == 0 for k, c in cells.items() if k != "r1")


@pytest.mark.parametrize(("selector", "version"), [
    ("coder@latest", "10"), ("coder@1 day ago", "10"), ("coder@2 days ago", "10"),
    ("coder@3 days ago", "9"), ("coder@2 weeks ago", "9"), ("coder@1 week ago", "9"),
    ("coder@30 days ago", "8"), ("coder@9", "9"), ("helper@latest", "2")])
def test_agent_selectors_resolve_by_time_not_by_name(history: History, selector: str,
                                                     version: str) -> None:
    assert _slice(history, agent=selector)["agent"]["agent_version"] == version


def test_before_the_first_run_is_an_error_naming_the_time(history: History) -> None:
    with pytest.raises(SpecError, match=r"'--vs': no run of agent 'coder' finished at or "
                                        r"before 2026-04-16.*60 days ago"):
        _slice(history, agent="coder@latest", vs="coder@60 days ago")


# --- the same numbers as report and compare ---------------------------------------------------


@pytest.mark.parametrize(("label", "agent"), [("v10", "coder@10"), ("helper", "helper@2")])
def test_intervals_equal_the_reports(history: History, label: str, agent: str) -> None:
    eval_id = history.evals[label]
    rep = api.report(eval_id, settings=history.settings)
    name, version = agent.split("@")
    a = next(x for x in rep["agents"] if (x["agent_name"], x["agent_version"]) == (name, version))
    keys = ("mean", "se", "ci_low", "ci_high", "method")
    for metric in ("score", "pass_rate") if label == "v10" else ("score",):
        (whole,) = _slice(history, agent=agent, evals=[eval_id], metric=metric)["cells"]
        assert {k: whole["agent"][k] for k in keys} == {k: a["overall"][k] for k in keys}
        assert whole["agent"]["n_tasks"] == a["overall"]["n_tasks"]
        by_cat = _slice(history, agent=agent, evals=[eval_id], by=["category"],
                        metric=metric)["cells"]
        assert [{k: c["agent"][k] for k in keys} for c in by_cat] == \
            [{k: g[k] for k in keys} for g in a["by_category"]]
        by_diff = _slice(history, agent=agent, evals=[eval_id], by=["difficulty"],
                         metric=metric)["cells"]
        assert [{k: c["agent"][k] for k in keys} for c in by_diff] == \
            [{k: g[k] for k in keys} for g in a["by_difficulty"]]
    if label == "helper":
        assert "t" in whole["agent"]["method"] and "Wilson" not in whole["agent"]["method"]
    else:
        assert "Wilson" in whole["agent"]["method"]


@pytest.mark.parametrize(("base", "new", "evals"), [
    ("helper@1", "helper@2", ["helper"]), ("coder@9", "coder@10", ["v9", "v10"])])
def test_paired_differences_equal_compares(history: History, base: str, new: str,
                                           evals: list[str]) -> None:
    ids = [history.evals[e] for e in evals]
    refs = [f"{ids[0]}/{base}", f"{ids[-1]}/{new}"]
    cmp = api.compare(refs, settings=history.settings, margin=0.0)
    res = _slice(history, agent=new, vs=base, by=["category"], metric="score", evals=ids)
    keys = ("estimate", "se", "ci_low", "ci_high", "p_value", "test", "n_tasks")
    assert [{k: c["paired"][k] for k in keys} for c in res["cells"]] == \
        [{k: g[k] for k in keys} for g in cmp["by_category"]]
    assert [c["paired"]["p_holm"] for c in res["cells"]] == \
        [g["p_holm"] for g in cmp["by_category"]]
    (whole,) = _slice(history, agent=new, vs=base, metric="score", evals=ids)["cells"]
    assert {k: whole["paired"][k] for k in keys} == {k: cmp["diff"][k] for k in keys}


def test_a_small_cell_uses_the_exact_permutation_test_on_per_task_means(
        history: History) -> None:
    ids = [t["id"] for t in TASKS[:12]]
    res = _slice(history, agent="helper@2", vs="helper@1", metric="score",
                 where=[f"task_id in {','.join(ids)}"])
    (cell,) = res["cells"]
    new = np.array([np.mean([_helper("2", t, k) for k in (0, 1)]) for t in TASKS[:12]])
    old = np.array([np.mean([_helper("1", t, k) for k in (0, 1)]) for t in TASKS[:12]])
    perm = stats.paired_permutation_test(new, old, n_resamples=float("inf"))
    diff = stats.paired_difference(new, old)
    assert cell["paired"]["test"] == "permutation-exact"
    assert cell["paired"]["p_value"] == pytest.approx(perm.p_value)
    assert cell["paired"]["estimate"] == pytest.approx(diff.estimate)
    assert cell["paired"]["ci_low"] == pytest.approx(diff.ci_low)
    own = rate_dict(new, np.full(12, 2), np.zeros(12, dtype=bool))
    assert cell["agent"]["ci_low"] == pytest.approx(own["ci_low"])
    assert cell["agent"]["ci_high"] == pytest.approx(own["ci_high"])


def test_cost_and_latency_are_means_over_tasks_with_t_intervals(history: History) -> None:
    (cell,) = _slice(history, agent="coder@9", metric="cost_per_run")["cells"]
    costs = np.array([0.01 + 0.001 * (_h(t["id"]) % 7) for t in TASKS])
    est = stats.mean_with_se(costs)
    assert cell["agent"]["mean"] == pytest.approx(est.estimate)
    assert cell["agent"]["ci_low"] == pytest.approx(est.ci_low)
    (lat,) = _slice(history, agent="coder@9", vs="coder@8", metric="latency")["cells"]
    assert lat["paired"]["test"] == "paired-t" and lat["paired"]["estimate"] == 0.0
    assert lat["paired"]["ci_low"] is None  # SE 0: no point interval


def test_too_few_tasks_say_so_instead_of_a_number(history: History) -> None:
    ids = ",".join(t["id"] for t in TASKS[:4])
    (cell,) = _slice(history, agent="coder@10", vs="coder@9",
                     where=[f"task_id in ({ids})"])["cells"]
    assert cell["agent"]["mean"] is None and "too few tasks: 4" in cell["agent"]["method"]
    assert cell["paired"]["estimate"] is None and cell["paired"]["p_value"] is None
    assert "too few paired tasks" in cell["paired"]["method"]
    (ok,) = _slice(history, agent="coder@10", where=[f"task_id in ({ids})"],
                   min_tasks=2)["cells"]
    assert ok["agent"]["mean"] is not None


# --- confinement and read-only ----------------------------------------------------------------


def test_where_values_are_bound_never_interpolated(history: History, tmp_path: Path) -> None:
    before = _fingerprint(history.settings.home)
    res = _slice(history, agent="coder@latest", where=["category=x' OR 1=1 --"])
    assert res["cells"] == [] and res["notes"]
    target = tmp_path / "stolen.csv"
    for attack in (f"category=coding'; COPY runs TO '{target}'; --",
                   "category in x') OR (1=1",
                   'repository="r2" OR 1=1'):
        assert _slice(history, agent="coder@latest", where=[attack])["cells"] == []
    assert not target.exists()
    quoted = _slice(history, agent="coder@9", where=["category='coding'"])["cells"]
    assert quoted[0]["agent"]["n_tasks"] == N_TASKS // 2
    assert _fingerprint(history.settings.home) == before


def test_in_lists_and_not_in(history: History) -> None:
    both = _slice(history, agent="coder@9", by=["repository"],
                  where=["repository in (r0, r2)"])["cells"]
    assert [c["label"] for c in both] == ["repository=r0", "repository=r2"]
    rest = _slice(history, agent="coder@9", by=["repository"],
                  where=["repository not in r0,r2", "difficulty!=1"])["cells"]
    assert [c["label"] for c in rest] == ["repository=r1", "repository=r3"]
    two = _slice(history, agent="coder@9", by=["category", "difficulty"])["cells"]
    assert len(two) == 10 and two[0]["cell"] == {"category": "coding", "difficulty": 1}


def test_a_reader_creates_nothing(history: History, tmp_path: Path) -> None:
    before = _fingerprint(history.settings.home)
    _slice(history, **ISSUE)
    assert _fingerprint(history.settings.home) == before
    missing = tmp_path / "nohome"
    with pytest.raises(UnknownEvalError):
        api.slice_runs(agent="coder@latest", settings=Settings(home=missing))
    assert not missing.exists()


@pytest.mark.parametrize(("argv", "flag"), [
    (["--where", "category"], "--where"),
    (["--where", "bogus=1"], "--where"),
    (["--where", "difficulty>=hard"], "--where"),
    (["--where", "category>coding"], "--where"),
    (["--where", "repository in ,"], "--where"),
    (["--by", "category", "--by", "difficulty", "--by", "repository"], "--by"),
    (["--by", "colour"], "--by"),
    (["--metric", "speed"], "--metric"),
    (["--vs", "coder"], "--vs"),
    (["--vs", "coder@3 months ago"], "--vs"),
    (["--agent", "nobody@latest"], "nobody"),
    (["--agent", "coder@77"], "coder@77"),
    (["--eval", "no-such-eval"], "no-such-eval"),
])
def test_bad_flags_exit_2_with_one_line(history: History, argv: list[str], flag: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    args = ["slice", "--home", str(history.settings.home)]
    if "--agent" not in argv:
        args += ["--agent", "coder@latest"]
    with pytest.raises(SystemExit) as info:
        main([*args, *argv])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and flag in err, err
    assert "Traceback" not in err


def test_cli_json_csv_and_table(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["slice", "--home", str(history.settings.home), "--where", "category=coding",
            "--where", "difficulty>=3", "--by", "repository", "--agent", "coder@10",
            "--vs", "coder@9"]
    main([*args, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["flagged"] == ["repository=r2"]
    main([*args, "--csv", "--timing"])
    cap = capsys.readouterr()
    lines = cap.out.strip().splitlines()
    assert lines[0].startswith("repository,agent_n_tasks,agent_mean") and len(lines) == 5
    assert lines[3].startswith("r2,") and lines[3].endswith(",mcnemar-midp,True")
    assert "query" in cap.err and "ms" in cap.err
    main(args)
    table = capsys.readouterr().out
    assert "coder@10" in table and "McNemar" in table and "r2" in table and "*" in table


def test_both_sides_on_one_version_say_so(history: History) -> None:
    res = _slice(history, agent="coder@latest", vs="coder@1 day ago", by=["repository"])
    assert res["vs"]["agent_version"] == res["agent"]["agent_version"] == "10"
    assert any("both sides are coder@10" in n for n in res["notes"])
    assert res["flagged"] == [] and all(c["paired"]["estimate"] == 0.0 for c in res["cells"])


def test_latest_is_the_newest_version_not_the_last_rerun() -> None:
    # a base and a candidate first run in one eval, then the base re-run alone later as a
    # baseline: @latest is still the candidate; versions compare in natural order
    from evalfleet.api.slices import AgentSelector, _choose, _natural

    assert _natural("10") > _natural("9") > _natural("2") and _natural("1.10") > _natural("1.9")
    now = datetime(2026, 6, 15, tzinfo=UTC)
    t0 = now.timestamp() - 10 * 86400
    groups = [("coder", "9", "ab", 10, t0, t0 + 60, None),
              ("coder", "10", "ab", 10, t0 + 1, t0 + 50, None),
              ("coder", "9", "rerun", 10, t0 + 86400, t0 + 86400 + 60, None)]
    sel = AgentSelector(text="coder@latest", name="coder", version=None, ago=None)
    chosen = _choose(None, sel, "--agent", 0, groups, [], now)  # type: ignore[arg-type]
    assert chosen["agent_version"] == "10"


def _through_the_store(h: History) -> Settings:
    """The same home read through the store (SQLAlchemy), as a journal URL makes it."""
    url = f"sqlite:///{(h.settings.home / 'journal.db').absolute()}"
    return h.settings.model_copy(update={"journal_url": url})


def test_the_sqlite_snapshot_and_the_store_give_the_same_slices_and_queries(
        history: History) -> None:
    """A slice or query in the default layout reads the journal with sqlite3; through the
    store (a journal URL, a warehouse elsewhere) the answers are the same, eval prefixes
    included."""
    store_settings = _through_the_store(history)
    prefix = history.evals["v10"][:-3]
    for kw in (ISSUE, {"agent": "helper@2", "vs": "helper@1", "by": ["category"]},
               {"agent": "coder@latest", "evals": [prefix, history.evals["v9"]]}):
        a = api.slice_runs(settings=history.settings, now=NOW, **kw)  # type: ignore[arg-type]
        b = api.slice_runs(settings=store_settings, now=NOW, **kw)  # type: ignore[arg-type]
        a.pop("timing"), b.pop("timing")
        assert a == b and a["cells"]
    for sql, eval_ref in (("SELECT agent_version, count(*) FROM runs GROUP BY 1 ORDER BY 1",
                           None),
                          ("SELECT count(*) FROM runs", prefix),
                          ("SELECT agent_version, sum(runs) FROM rollups GROUP BY 1 ORDER BY 1",
                           None),
                          ("SELECT count(*) FROM EVALS", None)):
        assert api.query(sql, eval_id=eval_ref, settings=history.settings) == api.query(
            sql, eval_id=eval_ref, settings=store_settings)
    with pytest.raises(UnknownEvalError, match="no eval 'zz-none'"):
        api.slice_runs(agent="coder@latest", evals=["zz-none"], settings=history.settings)


def test_slice_and_query_processes_never_import_sqlalchemy_or_statsmodels(
        history: History) -> None:
    """`evalfleet slice` and `evalfleet query` over `runs` answer as whole processes without
    SQLAlchemy (a quarter of a second), statsmodels, pandas or scipy.stats (about a second):
    the journal is read with sqlite3, McNemar and t p-values with scipy.special. A query that
    names `rollups` reads them from the journal through the store."""
    home = str(history.settings.home)
    cases = [
        (["slice", "--home", home, "--json", "--agent", "coder@10", "--vs", "coder@9",
          "--by", "repository", "--where", "category=coding", "--where", "difficulty>=3"],
         {"sqlalchemy", "statsmodels", "pandas"}, True),
        (["slice", "--home", home, "--json", "--agent", "helper@2", "--vs", "helper@1"],
         {"sqlalchemy", "statsmodels", "pandas"}, True),
        (["query", "SELECT count(*) AS n FROM runs", "--home", home, "--json"],
         {"sqlalchemy", "statsmodels", "pandas", "scipy"}, True),
        (["query", "SELECT count(*) AS n FROM rollups", "--home", home, "--json"],
         {"statsmodels", "scipy"}, False),
    ]
    for argv, banned, no_sqlalchemy in cases:
        out, loaded, err = cli_in_process(argv)
        assert json.loads(out), err[-2000:]
        tops = {m.split(".")[0] for m in loaded}
        assert "duckdb" in tops and not tops & banned, (argv, tops & banned)
        assert "scipy.stats" not in loaded, argv
        assert ("sqlalchemy" not in tops) == no_sqlalchemy, argv


def _resolutions(home: Path, selectors: list[tuple[str, str | None]], now: datetime
                 ) -> list[tuple[Any, Any, set[str] | None]]:
    """Each selector pair resolved by scanning every row and by the rollups' narrowing, with
    the evals the narrowing scanned."""
    from evalfleet.api.slices import _resolve_all, narrow, parse_agent
    from evalfleet.api.sources import version_spans
    from evalfleet.store.snapshot import JournalSnapshot
    from evalfleet.store.warehouse import connect

    snap = JournalSnapshot(home)
    try:
        paths = snap.all_results_paths()
        out = []
        for a, b in selectors:
            sels = [(parse_agent(a, "--agent"), "--agent")] + (
                [(parse_agent(b, "--vs"), "--vs")] if b else [])
            spans = version_spans(snap, sorted({s.name for s, _ in sels}), paths)
            assert spans is not None
            narrowed = narrow(sels, spans, now)
            con = connect(home, paths)
            try:
                full = _call_or_error(_resolve_all, con, sels, [], now)
                fast = _call_or_error(_resolve_all, con, sels, [], now, spans)
            finally:
                con.close()
            out.append((full, fast, None if narrowed is None else narrowed[1]))
        return out
    finally:
        snap.close()


def _call_or_error(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except SpecError as exc:
        return f"SpecError: {exc}"


def test_rollup_narrowing_resolves_exactly_as_a_full_scan(history: History) -> None:
    """`@latest`, `@N days ago` and named versions resolve to the same versions, evals, counts
    and times whether every row is scanned or only the evals the rollups' days leave; and for
    `coder@latest` only the newest eval is scanned."""
    selectors: list[tuple[str, str | None]] = [
        ("coder@latest", "coder@2 weeks ago"), ("coder@10", "coder@9"), ("other@latest", None),
        ("helper@latest", "helper@1"), ("coder@latest", "helper@latest"), ("coder@77", None),
        ("nobody@latest", None)]
    selectors += [(f"coder@{d} days ago", f"helper@{d} days ago") for d in range(0, 45, 3)]
    results = _resolutions(history.settings.home, selectors, NOW)
    for (a, b), (full, fast, _) in zip(selectors, results, strict=True):
        assert fast == full, (a, b)
    # latest: the newest eval; two weeks ago: coder@9's (coder@8's days are earlier)
    assert results[0][2] == {history.evals["v10"], history.evals["v9"]}
    latest_only = _resolutions(history.settings.home, [("coder@latest", None)], NOW)[0][2]
    assert latest_only == {history.evals["v10"]}


def test_rollup_narrowing_on_one_day_falls_back_to_the_rows(tmp_path: Path) -> None:
    """Versions first run on the same UTC day, and cutoffs inside that day: the days cannot
    order them, so the narrowing keeps every candidate and the rows decide, exactly as a full
    scan does."""
    day = datetime(2026, 6, 10, tzinfo=UTC)
    settings = Settings(home=tmp_path / "home")
    store = Store(settings.home)
    try:
        for name, agents, hour in (("a", [("coder", "a")], 8), ("c", [("coder", "c")], 9),
                                   ("b", [("coder", "b"), ("coder", "b2")], 10),
                                   ("old", [("coder", "z")], -30),
                                   ("rerun", [("coder", "n"), ("coder", "z")], 50)):
            _eval(tmp_path, store, name, agents, 1, lambda *_: 1.0,
                  day + timedelta(hours=hour))
    finally:
        store.close()
    # the newest version is n, although z (first run 80 hours earlier, re-run beside n as a
    # baseline) sorts after it: only n's eval is scanned, and z's runs there do not make z new
    latest = _resolutions(settings.home, [("coder@latest", None)], day + timedelta(days=3))[0]
    assert latest[0] == latest[1] and latest[0][0]["agent_version"] == "n"
    assert latest[2] is not None and [e.split("-")[0] for e in latest[2]] == ["rerun"]
    # a, c and b first ran on the same day: the rows of those three decide (natural order in
    # b's eval), not z's (a day earlier)
    earlier = _resolutions(settings.home, [("coder@1 days ago", None)],
                           day + timedelta(days=2))[0]
    assert earlier[0] == earlier[1] and earlier[0][0]["agent_version"] == "b2"
    assert earlier[2] is not None and sorted(e.split("-")[0] for e in earlier[2]) == [
        "a", "b", "c"]
    # "1 days ago" with the clock at hours of the next day: cutoffs inside the runs' day
    for hour in (7, 8, 9, 10, 11, 23, 30, 60):
        now = day + timedelta(days=1, hours=hour)
        (full, fast, scanned), = _resolutions(settings.home, [("coder@1 days ago", None)], now)
        assert fast == full, hour
        if hour == 9:  # 09:00 that day: c's runs (08:59) are the newest by then, a's older
            assert full[0]["agent_version"] == "c" and scanned is not None \
                and len(scanned) >= 2
    # rollups that do not sum the files' rows (here: one eval's deleted) are not used: the
    # slice scans every row and still finds n
    import sqlite3

    from evalfleet.api.sources import version_spans
    from evalfleet.store.snapshot import JournalSnapshot

    con = sqlite3.connect(settings.home / "journal.db")
    with con:
        con.execute("DELETE FROM rollups WHERE eval_id LIKE 'rerun-%'")
    con.close()
    snap = JournalSnapshot(settings.home)
    try:
        assert version_spans(snap, ["coder"], snap.all_results_paths()) is None
    finally:
        snap.close()
    res = api.slice_runs(agent="coder@latest", settings=settings, now=day + timedelta(days=3))
    assert res["agent"]["agent_version"] == "n"
