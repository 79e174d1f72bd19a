"""`evalfleet slice`: a structured question over every committed run, with an interval per cell."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evalfleet._util.formatting import method_label, money, pct, pts, pval, secs
from evalfleet.errors import SpecError

out = Console()
err = Console(stderr=True)


def slice_(
    agent: Annotated[str, typer.Option(
        "--agent", metavar="NAME@VERSION",
        help="The agent: NAME@VERSION, NAME@latest or 'NAME@N days ago' (or weeks).")],
    vs: Annotated[str | None, typer.Option(
        "--vs", metavar="NAME@VERSION",
        help="Compare with this agent (same forms): paired on the tasks both ran.")] = None,
    where: Annotated[list[str] | None, typer.Option(
        "--where", metavar="FIELD OP VALUE",
        help="Keep runs where FIELD OP VALUE (= != > >= < <=, 'in a,b'); repeatable, all "
             "must hold.")] = None,
    by: Annotated[list[str] | None, typer.Option(
        "--by", metavar="FIELD", help="One cell per value of FIELD (at most two).")] = None,
    metric: Annotated[str, typer.Option(
        "--metric", help="pass_rate, score, cost_per_run or latency.")] = "pass_rate",
    eval_ids: Annotated[list[str] | None, typer.Option(
        "--eval", metavar="EVAL_ID", help="Only these evals (repeatable; default all).")]
        = None,
    alpha: Annotated[float, typer.Option(help="Significance level (Holm across cells).")]
        = 0.05,
    min_tasks: Annotated[int, typer.Option(
        "--min-tasks", help="Fewest tasks for an estimate or a paired test.")] = 5,
    home: Annotated[Path | None, typer.Option(
        "--home", help="Evalfleet home (default $EVALFLEET_HOME, else ./.evalfleet).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    csv_: Annotated[bool, typer.Option("--csv", help="One CSV row per cell on stdout.")]
        = False,
    timing: Annotated[bool, typer.Option(
        "--timing", help="Print the query and total time on stderr.")] = False,
) -> None:
    """A metric per cell with 95% intervals; with --vs, paired differences and Holm p.

    Example: --where category=coding --where 'difficulty>=3' --by repository
    --agent coder@latest --vs 'coder@2 weeks ago'.
    """
    from evalfleet import api
    from evalfleet.settings import load_settings

    if json_ and csv_:
        raise SpecError("give one of --json and --csv", field="--csv")
    res = api.slice_runs(agent=agent, vs=vs, where=where or [], by=by or [], metric=metric,
                         evals=eval_ids or [], alpha=alpha, min_tasks=min_tasks,
                         settings=load_settings(home))
    if json_:
        sys.stdout.write(api.dumps(res) + "\n")
    elif csv_:
        _write_csv(res)
    else:
        _render(res)
    if timing:
        t = res["timing"]
        err.print(f"slice: resolve {1000 * t['resolve_s']:.0f} ms, query "
                  f"{1000 * t['query_s']:.0f} ms, statistics {1000 * t['stats_s']:.0f} ms, "
                  f"total {1000 * t['total_s']:.0f} ms over {t['files']} file(s)",
                  highlight=False)


def _value(metric: str, x: float | None, lo: float | None = None,
           hi: float | None = None) -> str:
    if metric in ("pass_rate", "score"):
        return pct(x, lo, hi)
    fmt = money if metric == "cost_per_run" else secs
    if lo is None or hi is None:
        return fmt(x)
    return f"{fmt(x)} [{fmt(lo)}, {fmt(hi)}]"


def _diff(metric: str, d: dict[str, Any]) -> str:
    if d.get("estimate") is None:
        return "too few tasks"
    if metric in ("pass_rate", "score"):
        ci = ("" if d.get("ci_low") is None else
              f" [{pts(d['ci_low'])}, {pts(d['ci_high'])}]")
        return f"{pts(d['estimate'])} pts{ci}"
    fmt = money if metric == "cost_per_run" else secs
    ci = "" if d.get("ci_low") is None else f" [{fmt(d['ci_low'])}, {fmt(d['ci_high'])}]"
    return f"{fmt(d['estimate'])}{ci}"


def _side_label(s: dict[str, Any]) -> str:
    evals = ", ".join(e["eval_id"] for e in s["evals"])
    return (f"{s['agent_name']}@{s['agent_version']} from '{s['selector']}' "
            f"({s['chosen_by']}); eval(s): {evals}")


def _cell_side(metric: str, s: dict[str, Any]) -> str:
    excl = s["excluded"]["errored"] + s["excluded"]["cancelled"]
    n = f"n {s['n_tasks']}" + (f", {excl} excl" if excl else "")
    if s["mean"] is None:
        return f"too few tasks\n{n}"
    return f"{_value(metric, s['mean'], s['ci_low'], s['ci_high'])}\n{n}"


def _render(res: dict[str, Any]) -> None:
    metric = res["question"]["metric"]
    a, b = res["agent"], res["vs"]
    out.print(f"agent: {escape(_side_label(a))}", highlight=False)
    if b is not None:
        out.print(f"vs:    {escape(_side_label(b))}", highlight=False)
    q = res["question"]
    out.print(escape(f"{metric} where {' and '.join(q['where']) or 'all runs'}"
                     f"{' by ' + ', '.join(q['by']) if q['by'] else ''}"), highlight=False)
    t = Table()
    t.add_column(", ".join(q["by"]) or "cell", overflow="fold")
    t.add_column(f"{a['agent_name']}@{a['agent_version']}", justify="right", overflow="fold")
    if b is not None:
        t.add_column(f"{b['agent_name']}@{b['agent_version']}", justify="right",
                     overflow="fold")
        t.add_column("paired", justify="right")
        t.add_column("difference [95% CI]", justify="right", overflow="fold")
        t.add_column("p (Holm), test", justify="right", overflow="fold")
    for c in res["cells"]:
        label = ", ".join(str(v) for v in c["cell"].values()) or "all"
        row = [escape(label), _cell_side(metric, c["agent"])]
        if b is not None:
            d = c["paired"]
            flag = "" if not d.get("flagged") else " [bold red]*[/bold red]"
            p = ("-" if d.get("p_value") is None else
                 f"{pval(d['p_value'])} ({pval(d['p_holm'])}){flag}\n{method_label(d)}")
            row += [_cell_side(metric, c["vs"]), str(d["n_tasks"]), _diff(metric, d), p]
        t.add_row(*row)
    out.print(t)
    if b is not None:
        out.print(f"difference = agent - vs on the tasks both scored in the cell; * Holm-"
                  f"adjusted p < {q['alpha']} across {len(res['cells'])} cell(s); excl = runs "
                  "excluded (errors, cancellations), never scored as failures; fewer than "
                  f"{q['min_tasks']} tasks: no estimate or test", highlight=False)
    for note in res["notes"]:
        out.print(f"note: {escape(note)}", highlight=False)


CSV_COLUMNS = ("cell", "agent_n_tasks", "agent_mean", "agent_ci_low", "agent_ci_high",
               "agent_excluded", "vs_n_tasks", "vs_mean", "vs_ci_low", "vs_ci_high",
               "vs_excluded", "paired_n_tasks", "difference", "diff_ci_low", "diff_ci_high",
               "p_value", "p_holm", "test", "flagged")


def _write_csv(res: dict[str, Any]) -> None:
    by = res["question"]["by"]
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow([*by, *CSV_COLUMNS[1:]] if by else CSV_COLUMNS)
    for c in res["cells"]:
        sa, sb, d = c["agent"], c.get("vs") or {}, c.get("paired") or {}
        w.writerow([*([c["cell"][f] for f in by] if by else [c["label"]]),
                    sa["n_tasks"], _n(sa["mean"]), _n(sa["ci_low"]), _n(sa["ci_high"]), ex(sa),
                    _n(sb.get("n_tasks")), _n(sb.get("mean")), _n(sb.get("ci_low")),
                    _n(sb.get("ci_high")), ex(sb), _n(d.get("n_tasks")), _n(d.get("estimate")),
                    _n(d.get("ci_low")), _n(d.get("ci_high")), _n(d.get("p_value")),
                    _n(d.get("p_holm")), d.get("test") or "", _n(d.get("flagged"))])


def ex(s: dict[str, Any]) -> Any:
    """Runs excluded on one side of a cell (errors and cancellations), or blank."""
    return "" if not s else s["excluded"]["errored"] + s["excluded"]["cancelled"]


def _n(x: Any) -> Any:
    return "" if x is None else x
