"""Terminal rendering of status and reports."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evalfleet._util.formatting import (
    excluded_text,
    mde_text,
    method_label,
    money,
    pct,
    pts,
    pval,
    secs,
)


def render_report(console: Console, rep: dict[str, Any]) -> None:
    """The summary table of a report, per agent and per category."""
    cov = rep["coverage"]
    scored = cov.get("scored", cov["done"])
    state = "[yellow]PARTIAL[/yellow]" if cov["partial"] else "complete"
    # user data (suite, categories, models, messages) is escaped: Rich must not read it as markup
    console.print(f"[bold]{escape(rep['eval_id'])}[/bold]  suite {escape(str(rep['suite']))}  "
                  f"status {escape(str(rep['status']))}  "
                  f"coverage {scored}/{cov['planned']} scored ({state}); "
                  f"{cov['errored']} errored (infra, scorer or configuration), "
                  f"{cov['cancelled']} cancelled and {cov.get('missing', 0)} not run are "
                  "missing data, not failures")
    for q in rep.get("quarantined_tasks") or ():  # poison tasks (docs/scale.md)
        console.print(f"[yellow]quarantined task {escape(q['task_id'])}: {q['failures']} "
                      f"infrastructure failures, {q['runs_quarantined']} run(s) not run; its "
                      f"errors: evalfleet status {escape(rep['eval_id'])}[/yellow]")
    if scored == 0:
        console.print("[red]no run was scored: there is no score to report[/red]")
    if rep.get("simulated"):
        console.print("[yellow]model: SIMULATED (evalfleet.testing.simulator), not a real "
                      "model[/yellow]")
    t = Table(title=escape("mean score over tasks, 95% CI (± half-width, or [low-high]); "
                           "excl. = runs not in the score"),
              box=box.SIMPLE_HEAD, pad_edge=False)
    # runs and latency are in the notes below: the table must fit 80 columns with long agent
    # names and asymmetric (Wilson) intervals
    for col in ("agent", "score", "tasks", "excl.", "cost", "$/success"):
        t.add_column(col, justify="left" if col == "agent" else "right", no_wrap=True)
    notes = []
    for a in rep["agents"]:
        o = a.get("overall")
        if not o:
            t.add_row(escape(f"{a['agent_name']}@{a['agent_version']}"), "no results yet",
                      *[""] * 4)
            continue
        lat = a["latency"]
        label = f"{a['agent_name']}@{a['agent_version']}"
        ex = a.get("excluded") or {}
        notes.append(f"{label}: {o['n_runs']} scored runs, latency p50 {secs(lat['p50'])}; "
                     f"interval: {o.get('method', '-')}")
        if a.get("full_suite"):
            notes.append(_full_suite_note(label, a["full_suite"]))
        if ex.get("total"):
            notes.append(f"{label}: excluded from the score: " + ", ".join(
                f"{k} {ex.get(k, 0)}" for k in ("infra_error", "scorer_error", "config_error",
                                                "cancelled")))
        if a["errors"]:
            notes.append(f"{label} errors: " + ", ".join(
                f"{k} {v}" for k, v in a["errors"].items()))
        fr = a.get("failing_runs") or {}
        if fr.get("count"):
            ids = [r["run_id"] for r in fr.get("runs", [])]
            more = fr["count"] - len(ids)
            notes.append(f"{label}: {fr['count']} failing runs (see one with: evalfleet show "
                         f"RUN_ID): {' '.join(ids)}" + (f" ... and {more} more" if more else ""))
        if (a.get("reuse") or {}).get("runs"):
            notes.append(f"{label}: {a['reuse']['runs']} runs reused from earlier evals "
                         f"({pct(a['reuse']['share'])}, not executed), "
                         f"{money(a['reuse']['saved_usd'])} saved")
        t.add_row(escape(label),
                  pct(o["mean"], o["ci_low"], o["ci_high"]),
                  str(o["n_tasks"]), str(ex.get("total", 0)) if ex else "-",
                  "unpriced" if _unpriced(a) else money(a["cost"]["total_usd"]),
                  "-" if _unpriced(a) else money(a["cost"]["per_success"]))
    console.print(t)
    for a in rep["agents"]:
        if a.get("overall") and _unpriced(a):
            notes.append(f"{a['agent_name']}@{a['agent_version']}: UNPRICED: model "
                         f"{a.get('model')!r} has no price, so its model cost is unknown, not "
                         "$0 (give the agent 'price: 0' if it is free, or a price mapping, or "
                         "a price file in EVALFLEET_PRICES)")
    for note in notes:
        console.print(note, markup=False)
    cats = sorted({c["category"] for a in rep["agents"] for c in a.get("by_category", [])})
    if cats:
        ct = Table(title="by category", box=box.SIMPLE_HEAD)
        ct.add_column("category")
        for a in rep["agents"]:
            ct.add_column(escape(f"{a['agent_name']}@{a['agent_version']}"), justify="right")
        for cat in cats:
            cells = []
            for a in rep["agents"]:
                c = next((x for x in a.get("by_category", []) if x["category"] == cat), None)
                cells.append(pct(c["mean"], c["ci_low"], c["ci_high"]) + f" (n={c['n_tasks']})"
                             if c else "-")
            ct.add_row(escape(cat), *cells)
        console.print(ct)
    for a in rep["agents"]:
        if a.get("tasks"):
            render_tasks(console, a)
    render_cost(console, rep)


def render_tasks(console: Console, a: dict[str, Any]) -> None:
    """An agent's per-task rows (``report --tasks``), worst first."""
    rows = a["tasks"]
    n_tasks = (a.get("overall") or {}).get("n_tasks", len(rows))
    tt = Table(title=escape(f"{a['agent_name']}@{a['agent_version']}: worst {len(rows)} of "
                            f"{n_tasks} tasks (mean, passed/runs, 95% CI of the pass rate)"),
               box=box.SIMPLE_HEAD)
    for col in ("task", "category", "diff.", "mean", "passed", "95% CI"):
        tt.add_column(col, justify="left" if col in ("task", "category") else "right")
    for r in rows:
        ci = ("-" if r.get("ci_low") is None else
              f"{100 * r['ci_low']:.0f}-{100 * r['ci_high']:.0f}%")
        tt.add_row(escape(str(r["task_id"])), escape(str(r["category"])), str(r["difficulty"]),
                   f"{r['mean']:.3f}", f"{r['passed']}/{r['n_runs']}", ci)
    console.print(tt)


def _unpriced(a: dict[str, Any]) -> bool:
    return bool((a.get("cost") or {}).get("unpriced"))


def _spend_cells(d: dict[str, Any], unpriced: bool = False) -> list[str]:
    """model, infra, total, expected review: an unpriced model's dollars are unknown."""
    return ["unpriced" if unpriced else money(d["model_usd"]), money(d["infra_usd"]),
            ("≥" if unpriced else "") + money(d["total_usd"]),
            money(d["review_usd_expected"])]


def render_cost(console: Console, rep: dict[str, Any]) -> None:
    """Where the money went: per agent, by model tier and by task category."""
    cost = rep.get("cost")
    agents = [a for a in rep["agents"] if a.get("cost")]
    if not cost or not agents:
        return
    rates = cost["rates"]
    t = Table(title=escape(f"cost of this {cost['eval_type']} eval: total = model + infra "
                           f"({money(rates['infra_usd_per_hour'])}/sandbox hour, "
                           f"{rates['capacity']}); review* = expected"),
              box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("agent", "model", "infra", "total", "review*", "per run", "per success"):
        t.add_column(col, justify="left" if col == "agent" else "right", no_wrap=True)
    for a in agents:
        c, unpriced = a["cost"], _unpriced(a)
        t.add_row(escape(f"{a['agent_name']}@{a['agent_version']}"), *_spend_cells(c, unpriced),
                  money(c["mean_per_run"]), "-" if unpriced else money(c["per_success"]))
    console.print(t)
    for a in agents:
        tok = a["tokens"]
        console.print(f"{a['agent_name']}@{a['agent_version']}: tokens {tok['in']:,} in "
                      f"({tok['cached']:,} cached), {tok['out']:,} out; model tier "
                      f"{a['cost']['model_tier']}, price from {a['cost']['price_source']}",
                      markup=False)
    for key, title in (("by_tier", "model tier"), ("by_category", "category")):
        rows = cost.get(key) or []
        if len(rows) < 2:
            continue
        bt = Table(title=f"cost by {title}", box=box.SIMPLE_HEAD, pad_edge=False)
        for col in (title, "runs", "model", "infra", "total", "review*"):
            bt.add_column(col, justify="left" if col == title else "right", no_wrap=True)
        for r in rows:
            bt.add_row(escape(str(r["model_tier" if key == "by_tier" else "category"])),
                       f"{r['runs']:,}", *_spend_cells(r, bool(cost["unpriced"]) if
                                                       key == "by_category" else any(
                           _unpriced(a) and a["cost"]["model_tier"] == r["model_tier"]
                           for a in agents)))
        console.print(bt)
    if not rates["review_fraction"] or not rates["review_usd_per_run"]:
        return  # no review configured: nothing to explain
    console.print(f"review* is expected, not metered: review_fraction "
                  f"{rates['review_fraction']:g} x {cost['scored_runs']:,} scored runs x "
                  f"{money(rates['review_usd_per_run'])}; total with review "
                  f"{money(cost['total_with_review_usd'])}", markup=False)


def _full_suite_note(label: str, fs: dict[str, Any]) -> str:
    """One line: a sampled eval's estimate of the whole suite's score, and how it was made."""
    if fs.get("estimate") is None:
        return f"{label}: no full-suite estimate: {fs.get('note')}"
    share = f"{100 * fs['fraction']:g}% {fs['tier']} sample, {fs['n']} of {fs['population']} tasks"
    b = fs.get("baseline")
    how = (f"difference estimator: baseline {b['eval_id']} ({label.split('@')[0]}@"
           f"{b['agent_version']}, {pct(b['full_suite_mean'])}) plus paired differences"
           if b else "stratified estimator")
    return (f"{label}: full-suite estimate {pct(fs['estimate'], fs['ci_low'], fs['ci_high'])} "
            f"({how}; {share})" + (f"; {fs['note']}" if fs.get("note") else ""))


def _p_eq(p: float | None) -> str:
    text = pval(p)
    return text if text.startswith("<") else f"= {text}"


SHORT_TEST_LABELS = {"mcnemar-midp": "mid-p", "permutation-exact": "perm", "paired-t": "t"}
"""Test names narrow enough for the category table (the legend is printed under it)."""


def render_compare_pair(console: Console, cmp: dict[str, Any]) -> None:
    """One BASE vs NEW comparison."""
    console.print(f"[bold]BASE[/bold] {escape(str(cmp['base']))}\n[bold]NEW[/bold]  "
                  f"{escape(str(cmp['new']))}")
    un = cmp["unshared"]
    console.print(f"paired on {cmp['n_shared_tasks']} shared tasks; only in BASE "
                  f"{un['only_base']['count']} (not in NEW's plan "
                  f"{un['only_base']['not_in_other_plan']}, not scored in NEW "
                  f"{un['only_base']['not_scored_in_other']}), only in NEW "
                  f"{un['only_new']['count']}")
    d = cmp.get("diff")
    if not d:
        console.print("[yellow]no shared scored tasks: nothing to compare[/yellow]")
        return
    color = {"regression": "red", "improvement": "green"}.get(cmp["overall_verdict"], "white")
    console.print(f"NEW - BASE = [bold]{pts(d['estimate'])} pts[/bold] "
                  f"(95% CI {pts(d['ci_low'])} to {pts(d['ci_high'])}, SE {pts(d['se'], False)},"
                  f" {method_label(d)} p {_p_eq(d['p_value'])}); {pct(d['mean_base'])} -> "
                  f"{pct(d['mean_new'])}; [{color}]{cmp['overall_verdict']}[/{color}]")
    console.print(f"[dim]method: {escape(str(d['method']))}; "
                  f"margin {100 * cmp['margin']:.1f} pts[/dim]")
    console.print(f"[dim]{escape(mde_text(cmp.get('mde_note')))}[/dim]")
    flag = excluded_text(cmp.get("excluded"))
    if flag:
        console.print(f"[yellow]{escape(flag)}[/yellow]")
    t = Table(title="by category (p adjusted over categories; BH in --json)",
              box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for col in ("category (n)", "BASE", "NEW", "diff pts", "95% CI", "p", "test", "Holm"):
        # long category names wrap; the numbers never do
        wraps = col.startswith("category")
        t.add_column(col, justify="left" if wraps or col == "test" else "right",
                     no_wrap=not wraps, min_width=10 if wraps else None)
    for c in cmp["by_category"]:
        t.add_row(escape(f"{c['category']} ({c['n_tasks']})"), pct(c["mean_base"]),
                  pct(c["mean_new"]), pts(c["estimate"]),
                  f"{pts(c['ci_low'])}..{pts(c['ci_high'])}", pval(c["p_value"]),
                  SHORT_TEST_LABELS.get(str(c.get("test")), "-"), pval(c["p_holm"]))
    console.print(t)
    for key, style in (("regressions", "red"), ("improvements", "green")):
        items = cmp.get(key, [])
        names = escape(", ".join(f"{i['category']} ({pts(i['estimate'])})" for i in items)
                       or "none")
        console.print(f"[{style}]{key}:[/{style}] {names}")
    console.print("[dim]tests: mid-p = McNemar mid-p (one binary run per task), perm = exact "
                  "sign-flip permutation (fewer than 30 tasks), t = paired t[/dim]")
    flips = cmp.get("flips", [])
    broke = [f["task_id"] for f in flips if f["direction"] == "broke"]
    fixed = [f["task_id"] for f in flips if f["direction"] == "fixed"]
    console.print(f"flipped tasks: {len(broke)} broke ({', '.join(broke[:8])}"
                  f"{'...' if len(broke) > 8 else ''}), {len(fixed)} fixed", markup=False)
    cost, lat = cmp["cost"], cmp["latency"]
    console.print(f"cost per run {money(cost['base_mean_per_run'])} -> "
                  f"{money(cost['new_mean_per_run'])}; mean latency "
                  f"{secs(lat['base_mean_s'])} -> {secs(lat['new_mean_s'])}")


def render_compare(console: Console, cmp: dict[str, Any]) -> None:
    """A comparison, or several against one base, then the Pareto view."""
    for pair in cmp.get("comparisons", [cmp]):
        render_compare_pair(console, pair)
    points = cmp.get("pareto", [])
    if len(points) >= 3:
        t = Table(title="score against cost (Pareto)", box=box.SIMPLE_HEAD, pad_edge=False)
        for col in ("side", "score", "cost/run", "non-dominated", "convex frontier"):
            t.add_column(col)
        for p in points:
            t.add_row(escape(str(p["side"])), pct(p["mean_score"]),
                      money(p["mean_cost_per_run"]),
                      "yes" if p["non_dominated"] else "", "yes" if p["on_convex_frontier"]
                      else "")
        console.print(t)


def render_costs(console: Console, data: dict[str, Any]) -> None:
    """``evalfleet costs``: spend over the home's evals by eval type, model tier, category."""
    window = f" created in the last {data['since_days']:g} days" if data["since_days"] else ""
    total = data["total"]
    console.print(f"{data['evals']} evals{window} in {escape(data['home'])}: "
                  f"{money(total['total_usd'])} (model {money(total['model_usd'])} + infra "
                  f"{money(total['infra_usd'])}) over {total['runs']:,} runs; expected human "
                  f"review {money(total['review_usd_expected'])}")
    for key, title in (("by_eval_type", "eval type"), ("by_model_tier", "model tier"),
                       ("by_category", "category")):
        rows = data[key]
        if not rows:
            continue
        t = Table(title=f"by {title}", box=box.SIMPLE_HEAD, pad_edge=False)
        for col in (title, "runs", "model", "infra", "total", "review*"):
            t.add_column(col, justify="left" if col == title else "right", no_wrap=True)
        field = key.removeprefix("by_")
        for r in rows:
            label = str(r[field])
            if key == "by_eval_type":
                label += f" ({r['evals']} evals)"
            t.add_row(escape(label), f"{r['runs']:,}", *_spend_cells(r))
        console.print(t)
    console.print("review* is expected (review_fraction x scored runs x review_usd_per_run "
                  "of each plan), not metered", markup=False)
    for u in data["unpriced"]:
        console.print(f"UNPRICED: eval {u['eval_id']}, agent {u['agent']}: model "
                      f"{u['model']!r} has no price, so its model dollars above are unknown, "
                      "not $0", markup=False)
