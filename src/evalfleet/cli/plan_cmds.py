"""``evalfleet plan ...``: planning commands (power). Heavy modules are imported lazily."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from evalfleet.errors import EvalfleetError

plan_app = typer.Typer(no_args_is_help=True, add_completion=False,
                       help="Plan evals: check a plan without running it; tasks and runs per "
                            "task needed, minimum detectable effects.")


def _fail(exc: EvalfleetError) -> NoReturn:
    """The same one-line message and exit code as evalfleet.cli.main.main, so the sub-app
    behaves the same on its own (tests) and registered; SystemExit, not typer.Exit, whose code
    click drops under standalone_mode=False."""
    Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}", highlight=False,
                               soft_wrap=True)
    sys.exit(exc.exit_code)


@plan_app.callback()
def _plan() -> None:
    """Plan evals: check a plan without running it; tasks and runs needed, detectable effects."""


@plan_app.command()
def check(plan: Annotated[Path, typer.Argument(help="Plan YAML file.")],
          json_: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
          = False) -> None:
    """Validate a plan as `run` would, run nothing, and print what would run.

    Exit 0 when the plan is valid, 2 with the file:line: field message otherwise. Prints the
    suite and its tasks, the agents, the runs planned, the sandbox provider this machine would
    use, and warnings: python agents and python scorers run unsandboxed (in the driver and
    its worker processes), and tasks that allow the network. Creates nothing (no home, no journal).
    """
    from evalfleet import api
    from evalfleet.settings import load_settings

    try:
        result = api.check_plan(plan, settings=load_settings())
    except EvalfleetError as exc:
        _fail(exc)
    if json_:
        sys.stdout.write(api.dumps(result) + "\n")
    else:
        render_check(Console(highlight=False), result)


def render_check(console: Console, r: dict[str, Any]) -> None:
    """What a valid plan would run, and the warnings."""
    suite = r["suite"]
    console.print(f"[green]OK[/green] {escape(r['plan'])}: plan {escape(r['name'])}",
                  soft_wrap=True)
    console.print(f"suite {escape(suite['name'])} {escape(suite['version'])}: {suite['tasks']} "
                  f"tasks ({escape(', '.join(f'{c} {n}' for c, n in suite['categories'].items()))}"
                  f"); scorers {escape(', '.join(suite['scorers']))}", soft_wrap=True)
    for a in r["agents"]:
        console.print(f"agent {escape(a['label'])}: kind {escape(a['kind'])}"
                      + (f", model {escape(a['model'])}" if a["model"] else ""), soft_wrap=True)
    budget = "no budget" if r["budget_usd"] is None else f"budget ${r['budget_usd']:g}"
    sample = r.get("sample") or {}
    if sample.get("tasks", suite["tasks"]) < suite["tasks"]:
        console.print(f"sample: tier {escape(sample['tier'])}, {100 * sample['fraction']:g}% of "
                      f"each of {sample['n_strata']} strata "
                      f"({escape(', '.join(sample['strata']))}) = {sample['tasks']} of "
                      f"{suite['tasks']} tasks; rotation {sample['rotation']} "
                      f"({escape(sample['rotation_source'])})", soft_wrap=True)
    console.print(f"runs planned: {r['runs_planned']:,} ({sample.get('tasks', suite['tasks'])} "
                  f"tasks x "
                  f"{len(r['agents'])} agents x {r['runs_per_task']} runs per task); "
                  f"{r['max_in_flight']} in flight; {budget}", soft_wrap=True)
    console.print(f"sandbox: {escape(r['sandbox'] or 'none available')}"
                  + ("; model: SIMULATED" if r["simulated_model"] else ""), soft_wrap=True)
    for w in r["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", soft_wrap=True)


@plan_app.command()
def power(
    from_eval: Annotated[str | None, typer.Option(
        "--from", help="Estimate the variances from this eval (id or unique prefix).")] = None,
    base: Annotated[str | None, typer.Option(
        "--base", help="With --from: the base agent AGENT@VERSION (optional if the eval has "
                       "one agent).")] = None,
    new: Annotated[str | None, typer.Option(
        "--new", help="With --from: pair --base with this agent AGENT@VERSION of the eval. "
                      "Without it, --base is planned against a future version of itself.")
    ] = None,
    rho: Annotated[float, typer.Option(
        "--rho", help="Without --new: assumed correlation of the per-task success of the "
                      "agent and its next version (1 = same-version re-run).")] = 0.5,
    omega2: Annotated[float | None, typer.Option(
        "--omega2", help="Assumed between-task variance of the true per-task difference.")
    ] = None,
    sigma2: Annotated[float | None, typer.Option(
        "--sigma2", help="Assumed within-task run variance (both versions unless "
                         "--sigma2-new). With --from it replaces the estimate.")] = None,
    sigma2_new: Annotated[float | None, typer.Option(
        "--sigma2-new", help="Assumed within-task run variance of the new version.")] = None,
    delta: Annotated[float, typer.Option(
        "--delta", help="Difference to detect, as a fraction (0.02 = 2 points).")] = 0.02,
    tasks: Annotated[int | None, typer.Option(
        "--tasks", help="Tasks in the plan, for the minimum detectable effect (default with "
                        "--from: the eval's task count).")] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level.")] = 0.05,
    one_sided: Annotated[bool, typer.Option(
        "--one-sided", help="One-sided test (regressions only).")] = False,
    power_: Annotated[float, typer.Option("--power", help="Target power.")] = 0.8,
    home: Annotated[Path | None, typer.Option(
        "--home", help="Evalfleet home (default $EVALFLEET_HOME, else ./.evalfleet).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Tasks needed to detect a difference, and the MDE of a plan, for K = 1, 3, 5, 10 runs.

    The variances come from an earlier eval (--from) or are assumed (--omega2 and --sigma2);
    the formulas (Miller 2024, Eq. 9 and 10) are in docs/analysis.md.
    """
    try:
        from evalfleet import api

        result = api.plan_power(from_eval=from_eval, base=base, new=new, rho=rho, omega2=omega2,
                             sigma2=sigma2, sigma2_new=sigma2_new, delta=delta, tasks=tasks,
                             alpha=alpha, two_sided=not one_sided, power=power_, home=home)
    except EvalfleetError as exc:
        _fail(exc)
    if json_:
        sys.stdout.write(api.dumps(result) + "\n")
    else:
        render_power(Console(), result)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def render_power(console: Console, result: dict[str, Any]) -> None:
    """The plan table over K, the inputs and where they came from, and the caveats."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    inp = result["inputs"]
    sided = "two-sided" if result["two_sided"] else "one-sided"
    n_tasks = result["n_tasks"]
    t = Table(title=f"detect {100 * result['delta']:.1f} pts ({sided} alpha "
                    f"{result['alpha']:g}, power {result['power']:g})",
              box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("runs/task K", justify="right")
    t.add_column("tasks needed", justify="right")
    t.add_column("variance", justify="right")
    if n_tasks is not None:
        t.add_column(f"MDE pts ({n_tasks:,} tasks)", justify="right")
    for row in result["rows"]:
        bound = "≤ " if row["upper_bound"] else ""
        need, mde = row["tasks_needed"], row["mde"]
        cells = [str(row["k"]), "-" if need is None else f"{bound}{need:,}",
                 f"{row['variance']:.4f}"]
        if n_tasks is not None:
            cells.append("-" if mde is None else f"{bound}{100 * mde:.1f}")
        t.add_row(*cells)
    console.print(t)
    sigma = (f"sigma^2 base {_num(inp['sigma2_base'])}, new {_num(inp['sigma2_new'])}"
             if inp["separable"] else "sigma^2 not separable (one run per task)")
    console.print(f"inputs: omega^2 {_num(inp['omega2'])}, {sigma}; {escape(inp['source'])}",
                  highlight=False)
    if n_tasks is not None and result["n_tasks_source"]:
        console.print(f"MDE for {n_tasks:,} tasks ({escape(result['n_tasks_source'])})",
                      highlight=False)
    console.print(f"[dim]method: {escape(inp['method'])}; "
                  f"{escape(result['method']['tasks_needed'])}[/dim]",
                  highlight=False)
    for note in result["notes"]:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)


@plan_app.command()
def review(
    plan: Annotated[Path, typer.Argument(help="Plan YAML file.")],
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Runs executing at once, for the wall time (default: the plan's "
                          "execution.max_in_flight).")] = None,
    home: Annotated[Path | None, typer.Option(
        "--home", help="Evalfleet home whose history to use (default $EVALFLEET_HOME, else "
                       "./.evalfleet); read-only, and an absent one means prices only.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """What a plan will cost, how long it will take and what it can detect, before it runs.

    Per agent and in total: runs, unit cost, model, infrastructure and human-review cost,
    total, budget fit, wall time for the workers, and the minimum detectable effect; each
    figure says whether it comes from the history of the same agent and tasks in the home or
    from prices and token estimates. Runs nothing and creates nothing.
    """
    from evalfleet import api
    from evalfleet.api.review import review_plan
    from evalfleet.settings import load_settings

    try:
        result = review_plan(plan, workers=workers, settings=load_settings(home))
    except EvalfleetError as exc:
        _fail(exc)
    if json_:
        sys.stdout.write(api.dumps(result) + "\n")
    else:
        render_review(Console(highlight=False), result)


def _usd(x: float | None) -> str:
    if x is None:
        return "unpriced"
    if x == 0:
        return "$0"
    return f"${x:,.2f}" if abs(x) >= 10 else f"${x:.3g}"


def _span(r: dict[str, Any], fmt: Any = _usd) -> str:
    lo, hi = r["min"], r["max"]
    return fmt(lo) if lo == hi else f"{fmt(lo)} - {fmt(hi)}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"


def render_review(console: Console, r: dict[str, Any]) -> None:
    """The cost table per agent and in total, wall time, budget, power, and the sources."""
    from rich import box
    from rich.table import Table

    suite = r["suite"]
    runs_k = _span(r["runs_per_task"], str)
    console.print(f"plan {escape(r['name'])}: {r['runs']['min']:,}"
                  + ("" if r["runs"]["min"] == r["runs"]["max"] else f" - {r['runs']['max']:,}")
                  + f" runs = {suite['tasks_planned']:,} tasks"
                  + (f" (of {suite['tasks']:,})" if suite["tasks_planned"] < suite["tasks"]
                     else "")
                  + f" x {len(r['agents'])} agents x {runs_k} runs per task"
                  + (" (adaptive)" if r["adaptive"] else ""), soft_wrap=True)
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    t.add_column("agent", no_wrap=True)
    t.add_column("from", no_wrap=True)
    for col in ("runs", "per run", "model", "infra", "total", "review*"):
        t.add_column(col, justify="right", no_wrap=True)
    # an adaptive plan: one row at its minimum runs per task, one at its maximum
    ends = ("min", "max") if r["adaptive"] else ("min",)
    tot = r["total"]
    rows = [(escape(a["label"]), a["source"], a["runs"], a["unit"]["total_usd"], a["cost"])
            for a in r["agents"]]
    rows.append(("[bold]total[/bold]", "", r["runs"], tot["unit_usd"]["min"], tot))
    for label, source, runs, unit, c in rows:
        for end in ends:
            first = end == "min"
            bold = label.startswith("[bold]")
            total_cell = _usd(c["total_usd"][end])
            t.add_row(label if first else "",
                      source if first else "",
                      f"{runs[end]:,}" + (f" {end}" if r["adaptive"] else ""),
                      _usd(unit) if first else "",
                      _usd(c["model_usd"][end]), _usd(c["infra_usd"][end]),
                      f"[bold]{total_cell}[/bold]" if bold else total_cell,
                      _usd(c["review_usd"][end]))
    console.print(t)
    console.print("total = model + infrastructure (what budgets count); review* = expected "
                  "human review, review_fraction x runs x review_usd_per_run"
                  + ("" if not tot["review_usd"]["max"] else
                     f"; with it: {_span(tot['with_review_usd'])}"), soft_wrap=True)
    if r["unpriced"]:
        console.print(f"priced part of the total: {_span(tot['priced_usd'])}", soft_wrap=True)
    reuse = r["reuse"]
    if reuse is not None:
        console.print(f"reuse: {_span(reuse['runs'], lambda x: f'{x:,}')} runs taken from "
                      f"earlier evals, saving {_span(reuse['saved_usd'])} "
                      f"({escape(reuse.get('saving_is', ''))}); total after reuse "
                      f"{_span(tot['after_reuse_usd'])}", soft_wrap=True)
    wall = r["wall"]
    lo, hi = wall["min"], wall["max"]
    span = _duration(lo["seconds"]) if lo["seconds"] == hi["seconds"] else \
        f"{_duration(lo['seconds'])} - {_duration(hi['seconds'])}"
    console.print(f"wall time: {span} with {wall['workers']} workers "
                  f"({escape(wall['workers_source'])}); bound by {escape(hi['bound'])}",
                  soft_wrap=True)
    budget = r["budget"]
    limit = "" if budget["limit_usd"] is None else f" (budget_usd {budget['limit_usd']:g})"
    console.print(f"budget: {escape(budget['note'])}{limit}", soft_wrap=True)
    for a in r["agents"]:
        if a["budget"]["limit_usd"] is not None:
            console.print(f"budget of {escape(a['label'])}: {escape(a['budget']['note'])}",
                          soft_wrap=True)
    power = r["power"]
    console.print(f"power (two-sided alpha {power['alpha']:g}, power {power['power']:g}, "
                  f"{power['n_tasks']:,} tasks): minimum detectable effect in points",
                  soft_wrap=True)
    for who, p in ([(a["label"] + " vs its next version", a["power"]) for a in r["agents"]]
                   + [(p["pair"], p) for p in power["pairs"]]):
        cells = ", ".join(f"K={row['k']}: " + ("-" if row["mde"] is None else
                                                ("≤ " if row["upper_bound"] else "")
                                                + f"{100 * row['mde']:.1f}")
                          for row in p["rows"])
        console.print(f"  {escape(who)}: {cells} [dim]({escape(p['basis'])})"
                      "[/dim]", soft_wrap=True)
    console.print("[dim]where the figures come from:[/dim]")
    for a in r["agents"]:
        # figures with the same source are named together: "model, tokens in: history ..."
        by_source: dict[str, list[str]] = {}
        for what in ("model", "tokens_in", "tokens_out", "seconds", "infra", "review"):
            by_source.setdefault(a["sources"][what], []).append(what.replace("_", " "))
        parts = "; ".join(f"{', '.join(whats)}: {src}" for src, whats in by_source.items())
        console.print(f"[dim]  {escape(a['label'])}: {escape(parts)}[/dim]", soft_wrap=True)
    for w in r["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", soft_wrap=True)
    for n in r["notes"]:
        console.print(f"[yellow]note:[/yellow] {escape(n)}", soft_wrap=True)
