"""Terminal rendering of ``evalfleet status``: ids are printed whole, on one line, at any width."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evalfleet._util.formatting import money


def _started(iso: str | None) -> str:
    # "2026-12-02T01:13:11+00:00" -> "12-02 01:13" (UTC), so a demo's row fits 80 columns;
    # the full timestamp is in --json and in `evalfleet status EVAL_ID`
    return iso[5:16].replace("T", " ") if iso else ""


def _projected(e: dict[str, Any]) -> str:
    """The projected total; ``~`` marks one made by agent only (runs recorded before the
    journal kept task categories)."""
    p = e.get("projected_usd")
    if p is None:
        return "-"
    return ("~" if e.get("projected_by") == "agent" else "") + money(p)


def _print_whole(console: Console, table: Table) -> None:
    """Print ``table`` without shrinking or cutting a cell, even wider than the terminal.

    In a terminal narrower than the table the lines wrap, but each id stays one unbroken run
    of characters at the start of its line, so it can be selected and copied.
    """
    from rich.measure import Measurement

    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
    width = console.width
    # print(width=...) is capped at the console's width, so widen the console for this table
    console.width = max(width, natural)
    try:
        console.print(table, crop=False)
    finally:
        console.width = width


def render_status(console: Console, data: dict[str, Any]) -> None:
    """A table of evals, or one eval with its agents.

    An eval id (and an agent's NAME@VERSION) is what the user copies into the next command, so
    no cell is ever shortened or wrapped, whatever the terminal's width.
    """
    if "evals" in data:
        evals = data["evals"]
        id_width = max((len(e["eval_id"]) for e in evals), default=len("eval id"))
        t = Table(title="evals (UTC)", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        t.add_column("eval id", no_wrap=True, min_width=id_width)
        for col in ("status", "done", "errored", "cost", "projected", "started"):
            t.add_column(col, no_wrap=True,
                         justify="left" if col in ("status", "started") else "right")
        for e in evals:
            t.add_row(e["eval_id"], e["status"], f"{e['done']}/{e['planned']}",
                      str(e["errored"]), money(e["cost_usd"]), _projected(e),
                      _started(e.get("started_at")))
        _print_whole(console, t)
        if not evals:
            console.print("no evals yet: start one with `evalfleet run PLAN` or `evalfleet demo`")
        return
    budget = data.get("budget_usd")
    console.print(f"[bold]{escape(data['eval_id'])}[/bold] ({escape(data['plan_name'])}): "
                  f"{data['status']}, {data['done']}/{data['planned']} done, {data['errored']} "
                  f"infra-errored, {data['running']} running, {money(data['cost_usd'])}"
                  f"{f' of {money(budget)}' if budget is not None else ''} spent, projected "
                  f"{_projected(data)}; started {data.get('started_at') or '-'}",
                  soft_wrap=True, highlight=False)
    agents = data.get("agents", [])
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    # AGENT@VERSION is what `compare` takes: printed whole, like the eval id
    t.add_column("agent", no_wrap=True, min_width=max(
        (len(f"{a['agent_name']}@{a['agent_version']}") for a in agents), default=5))
    for col in ("model", "done", "passed", "errored", "cancelled", "cost", "projected",
                "budget"):
        t.add_column(col, no_wrap=True)
    for a in agents:
        t.add_row(f"{a['agent_name']}@{a['agent_version']}", a.get("model") or "",
                  f"{a.get('done', 0)}/{a.get('planned', 0)}", str(a.get("passed", 0)),
                  str(a.get("errored", 0)), str(a.get("cancelled", 0)), money(a.get("cost_usd")),
                  money(a.get("projected_usd")), money(a.get("budget_usd")))
    _print_whole(console, t)
    _render_progress(console, data)


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _render_progress(console: Console, data: dict[str, Any]) -> None:
    """In flight, retries, ETA, per-worker progress and quarantined tasks (api/metrics.py)."""
    if "workers" not in data:
        return
    console.print(f"in flight {data['in_flight']}, pending {data['pending']}, retries "
                  f"{data['retries']}, infra failures {data['infra_failures']}, quarantined "
                  f"runs {data['quarantined']}, ETA {_eta(data.get('eta_s'))}",
                  soft_wrap=True, highlight=False)
    if data["workers"]:
        t = Table(title="workers", box=box.SIMPLE_HEAD, pad_edge=False)
        t.add_column("worker", no_wrap=True)
        for col in ("runs", "errored", "retries", "last finished (UTC)"):
            t.add_column(col, no_wrap=True, justify="right")
        for w in data["workers"]:
            t.add_row(w["worker"] or "-", str(w["runs"]), str(w["errored"]), str(w["retries"]),
                      _started(w.get("last_finished_at")))
        _print_whole(console, t)
    for q in data.get("quarantined_tasks", []):
        console.print(f"[bold red]quarantined task[/bold red] {escape(q['task_id'])}: "
                      f"{q['failures']} infrastructure failures, {q['runs_quarantined']} run(s) "
                      "not run", soft_wrap=True, highlight=False)
        for e in q["errors"]:
            console.print(f"  run {e['run_id']} attempt {e['attempt']}: "
                          f"{escape(e['error'].splitlines()[0] if e['error'] else '')}",
                          soft_wrap=True, highlight=False)
