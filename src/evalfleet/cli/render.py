"""Terminal rendering of status and reports."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table


def pct(mean: float | None, lo: float | None = None, hi: float | None = None) -> str:
    """``71.3% ± 2.1`` (half-width of the 95% interval in points), or ``-``.

    When the interval leaves [0, 100] (few tasks, t critical values), it is shown clipped as
    ``75.0% [0.0-100.0]`` instead of a meaningless half-width.
    """
    if mean is None or mean != mean:
        return "-"
    if lo is None or hi is None or lo != lo or hi != hi:
        return f"{100 * mean:.1f}%"
    if lo < 0 or hi > 1:
        return f"{100 * mean:.1f}% [{100 * max(lo, 0.0):.1f}-{100 * min(hi, 1.0):.1f}]"
    return f"{100 * mean:.1f}% ± {100 * (hi - lo) / 2:.1f}"


def money(x: float | None) -> str:
    """Dollars with sensible precision."""
    if x is None or x != x:
        return "-"
    return f"${x:,.4f}" if abs(x) < 1 else f"${x:,.2f}"


def secs(x: float | None) -> str:
    """Seconds, short."""
    return "-" if x is None or x != x else f"{x:.2f}s"


def render_status(console: Console, data: dict[str, Any]) -> None:
    """A table of evals, or one eval with its agents."""
    if "evals" in data:
        t = Table(title="evals")
        for col in ("eval_id", "plan", "status", "done/planned", "errored", "running", "cost",
                    "started"):
            t.add_column(col)
        for e in data["evals"]:
            t.add_row(e["eval_id"], e["plan_name"], e["status"], f"{e['done']}/{e['planned']}",
                      str(e["errored"]), str(e["running"]), money(e["cost_usd"]),
                      e["started_at"] or "")
        console.print(t)
        return
    console.print(f"[bold]{data['eval_id']}[/bold] ({data['plan_name']}): {data['status']}, "
                  f"{data['done']}/{data['planned']} done, {data['errored']} infra-errored, "
                  f"{data['running']} running, {money(data['cost_usd'])}")
    t = Table()
    for col in ("agent", "model", "done/planned", "passed", "errored", "cancelled", "cost"):
        t.add_column(col)
    for a in data.get("agents", []):
        t.add_row(f"{a['agent_name']}@{a['agent_version']}", a.get("model") or "",
                  f"{a.get('done', 0)}/{a.get('planned', 0)}", str(a.get("passed", 0)),
                  str(a.get("errored", 0)), str(a.get("cancelled", 0)), money(a.get("cost_usd")))
    console.print(t)


def render_report(console: Console, rep: dict[str, Any]) -> None:
    """The summary table of a report, per agent and per category."""
    cov = rep["coverage"]
    state = "PARTIAL" if cov["partial"] else "complete"
    console.print(f"[bold]{rep['eval_id']}[/bold]  suite {rep['suite']}  status {rep['status']}  "
                  f"coverage {cov['done']}/{cov['planned']} ({state}); "
                  f"{cov['errored']} infra-errored and {cov['cancelled']} cancelled runs are "
                  "missing data, not failures")
    if rep.get("simulated"):
        console.print("[yellow]model: SIMULATED (evalfleet.testing.simulator), not a real "
                      "model[/yellow]")
    t = Table(title="mean score over tasks ± 95% CI half-width (task-clustered)",
              box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("agent", "score", "tasks", "runs", "cost", "$/success", "p50"):
        t.add_column(col, justify="left" if col == "agent" else "right", no_wrap=True)
    notes = []
    for a in rep["agents"]:
        o = a.get("overall")
        if not o:
            t.add_row(f"{a['agent_name']}@{a['agent_version']}", "no results yet", *[""] * 5)
            continue
        lat = a["latency"]
        if a["errors"]:
            notes.append(f"{a['agent_name']}@{a['agent_version']} errors: " + ", ".join(
                f"{k} {v}" for k, v in a["errors"].items()))
        t.add_row(f"{a['agent_name']}@{a['agent_version']}",
                  pct(o["mean"], o["ci_low"], o["ci_high"]),
                  str(o["n_tasks"]), str(o["n_runs"]),
                  money(a["cost"]["total_usd"]), money(a["cost"]["per_success"]),
                  secs(lat["p50"]))
    console.print(t)
    for note in notes:
        console.print(note)
    cats = sorted({c["category"] for a in rep["agents"] for c in a.get("by_category", [])})
    if cats:
        ct = Table(title="by category", box=box.SIMPLE_HEAD)
        ct.add_column("category")
        for a in rep["agents"]:
            ct.add_column(f"{a['agent_name']}@{a['agent_version']}", justify="right")
        for cat in cats:
            cells = []
            for a in rep["agents"]:
                c = next((x for x in a.get("by_category", []) if x["category"] == cat), None)
                cells.append(pct(c["mean"], c["ci_low"], c["ci_high"]) + f" (n={c['n_tasks']})"
                             if c else "-")
            ct.add_row(cat, *cells)
        console.print(ct)
