"""``evalfleet trends``: a metric over time per agent version, with bands and drift alerts."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

HomeOpt = Annotated[Path | None, typer.Option("--home", help="Evalfleet home (default "
                                               "$EVALFLEET_HOME, else ./.evalfleet).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]

_BARS = "▁▂▃▄▅▆▇█"


def trends(
        metric: Annotated[str, typer.Option(
            "--metric", help="pass_rate, score, cost_per_run or latency_p50.")] = "pass_rate",
        agent: Annotated[str | None, typer.Option(
            "--agent", help="Only this agent: NAME or NAME@VERSION.")] = None,
        category: Annotated[str | None, typer.Option(
            "--category", help="Only this task category.")] = None,
        days: Annotated[int, typer.Option("--days", help="Days up to today (UTC).")] = 30,
        reference: Annotated[str | None, typer.Option(
            "--reference", metavar="EVAL_ID",
            help="Check each day paired against this frozen eval (else the stored one).")] = None,
        set_reference: Annotated[str | None, typer.Option(
            "--set-reference", metavar="EVAL_ID",
            help="Store EVAL_ID as the reference of its agents (of --agent only), then show.")]
        = None,
        record: Annotated[bool, typer.Option(
            "--record", help="Store the alerts found (a writer; by default trends only reads).")]
        = False,
        home: HomeOpt = None, json_: JsonOpt = False) -> None:
    """A metric per day per agent version from the rollups, with 95% bands and drift alerts.

    Alerts: a lower CUSUM for slow decline (C) and a daily paired check against a frozen
    reference eval (P, Holm over days). Read-only unless --record or --set-reference.
    """
    from evalfleet import api
    from evalfleet.settings import load_settings

    settings = load_settings(home)
    if set_reference is not None:
        api.set_reference(set_reference, agent=agent.partition("@")[0] if agent else None,
                          settings=settings)
    data = api.trends(metric=metric, agent=agent, category=category, days=days,
                      reference=reference, record=record, settings=settings)
    if json_:
        sys.stdout.write(api.dumps(data) + "\n")
        return
    render(Console(highlight=False), data)


def _fmt(metric: str, x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    if metric in ("pass_rate", "score"):
        return f"{100 * x:.1f}%"
    if metric == "cost_per_run":
        return f"${x:.4f}"
    return f"{x:.2f}s"


def _spark(values: list[float | None]) -> str:
    real = [v for v in values if v is not None]
    if not real:
        return ""
    lo, hi = min(real), max(real)
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            i = 0 if hi == lo else round((v - lo) / (hi - lo) * (len(_BARS) - 1))
            out.append(_BARS[i])
    return "".join(out)


def render(console: Console, data: dict[str, Any]) -> None:
    """Per agent version: sparkline with alert markers, first and last day with bands."""
    metric = data["metric"]
    where = f", category {data['category']}" if data.get("category") else ""
    console.print(f"[bold]{metric}[/bold] per UTC day, {data['first_day']} to "
                  f"{data['last_day']}{escape(where)}; 95% bands: {escape(data['method'])}",
                  soft_wrap=True)
    if not data["series"]:
        console.print("no committed runs in that window")
    for s in data["series"]:
        pts = s["points"]
        marks: dict[str, str] = {}
        for a in s["alerts"]:
            marks[a["day"]] = "!" if a["day"] in marks else a["kind"][0].upper()
        first, last = pts[0], pts[-1]
        console.print(f"\n[bold]{escape(s['label'])}[/bold]  {len(pts)} days  first "
                      f"{first['day']} {_fmt(metric, first['value'])} "
                      f"[{_fmt(metric, first['low'])}, {_fmt(metric, first['high'])}]  last "
                      f"{last['day']} {_fmt(metric, last['value'])} "
                      f"[{_fmt(metric, last['low'])}, {_fmt(metric, last['high'])}]",
                      soft_wrap=True)
        values = [p["value"] for p in pts]
        real = [v for v in values if v is not None]
        console.print(f"  {_spark(values)}  {_fmt(metric, min(real) if real else None)} .. "
                      f"{_fmt(metric, max(real) if real else None)}", soft_wrap=True)
        if marks:
            console.print("  " + "".join(marks.get(p["day"], " ") for p in pts)
                          + "  C cusum, P paired, ! both", soft_wrap=True)
        for a in s["alerts"]:
            ev = a["evidence"]
            if a["kind"] == "cusum":
                why = (f"S={a['statistic']:.2f} > h={a['threshold']:g} (in-control "
                       f"{_fmt(metric, ev['mu0'])}, day {_fmt(metric, ev['value'])})")
            else:
                why = (f"{100 * ev['estimate']:+.1f} pts vs {ev['reference']} on "
                       f"{ev['tasks']} tasks, Holm p={a['statistic']:.2g}")
            console.print(f"  [red]ALERT[/red] {a['day']} {a['kind']}: {escape(why)}",
                          soft_wrap=True)
        cus = s.get("cusum") or {}
        if not cus.get("ran"):
            console.print(f"  [dim]cusum: {escape(str(cus.get('why', '')))}[/dim]",
                          soft_wrap=True)
    if data.get("recorded") is not None:
        console.print(f"\n{data['recorded']} new alert(s) recorded")
    for note in data.get("notes", []):
        console.print(f"[yellow]note[/yellow]: {escape(note)}", soft_wrap=True)
