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
    console.print(f"runs planned: {r['runs_planned']:,} ({suite['tasks']} tasks x "
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
