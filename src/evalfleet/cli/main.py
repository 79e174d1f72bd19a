"""Typer commands, thin over :mod:`evalfleet.api` (imported lazily so --help stays light)."""

from __future__ import annotations

import gc
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from evalfleet.cli import inspect_cmds, io_cmds, slice_cmd, trends_cmd
from evalfleet.cli.plan_cmds import plan_app
from evalfleet.cli.retention_cmd import retention_app
from evalfleet.errors import EvalfleetError, SpecError

if TYPE_CHECKING:
    from collections.abc import Callable

    from evalfleet.api import EvalSummary
    from evalfleet.settings import Settings

app = typer.Typer(name="evalfleet", add_completion=False, invoke_without_command=True,
                  help="Run AI-agent evaluations durably and report them with honest error bars.")
app.add_typer(plan_app, name="plan")
out = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("evalfleet")  # the installed distribution's, as pip reports it
        except PackageNotFoundError:  # running from a source tree that was not installed
            from evalfleet import __version__ as number
        sys.stdout.write(f"evalfleet {number}\n")
        raise typer.Exit()


@app.callback()
def _root(ctx: typer.Context, version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_version,
        help="Print the version and exit.")] = False) -> None:
    """Run AI-agent evaluations durably and report them with honest error bars."""
    del version  # handled by its eager callback
    if ctx.invoked_subcommand is None:
        # `evalfleet` alone is how people ask what it can do: help on stdout, exit 0
        sys.stdout.write(ctx.get_help())
        raise typer.Exit()


HomeOpt = Annotated[Path | None, typer.Option("--home", help="Evalfleet home (default "
                                               "$EVALFLEET_HOME, else ./.evalfleet).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
MarkdownOpt = Annotated[Path | None, typer.Option(
    "--markdown", metavar="FILE", help="Write it as Markdown to FILE ('-': stdout).")]
HtmlOpt = Annotated[Path | None, typer.Option(
    "--html", metavar="FILE", help="Write it as a standalone HTML page to FILE ('-': stdout).")]


def _settings(home: Path | None) -> Settings:
    from evalfleet.settings import load_settings

    return load_settings(home)


def _export(data: dict[str, Any], json_: bool,
            targets: list[tuple[Path | None, Callable[[dict[str, Any]], str]]]) -> bool:
    """Write --markdown / --html files; True when one went to stdout (then nothing else may)."""
    to_stdout = [path for path, _ in targets if path is not None and str(path) == "-"]
    if len(to_stdout) + json_ > 1:
        raise SpecError("only one of --json, --markdown - and --html - can use stdout")
    for (path, render), option in zip(targets, ("--markdown", "--html"), strict=True):
        if path is None:
            continue
        text = render(data)
        if str(path) == "-":
            sys.stdout.write(text)
        else:
            try:
                path.write_text(text, encoding="utf-8")
            except OSError as exc:  # a missing folder, a directory, no permission
                raise SpecError(f"cannot write {path}: {exc.strerror or exc}",
                                field=option) from None
            err.print(f"wrote {path}")
    return bool(to_stdout)


def _finish(summary: EvalSummary, *, show_report: bool = True, warn: bool = False) -> None:
    from evalfleet import api
    from evalfleet.cli.render import render_report

    for w in summary.warnings if warn else ():  # the progress display showed them at start
        err.print(f"[yellow]warning:[/yellow] {escape(w)}")
    scored = 0
    if show_report and summary.done:
        settings = _settings(summary.home)
        rep = api.report(summary.eval_id, settings=settings, max_tasks=0, summary=True)
        scored = int(rep["coverage"].get("scored", 0))
        render_report(out, rep)
    err.print(f"eval {summary.eval_id}: {summary.status}, {summary.done}/{summary.planned} runs "
              f"committed, ${summary.cost_usd:.4f}, {summary.duration_s:.1f}s, "
              f"sandbox {summary.sandbox or '-'}")
    results = summary.results or summary.home / "results" / f"eval_id={summary.eval_id}"
    err.print(f"results: {results}  "
              f"journal: {summary.journal or summary.home / 'journal.db'}")
    if summary.quarantined_tasks:
        err.print(f"[yellow]{len(summary.quarantined_tasks)} poison task(s) quarantined "
                  f"({escape(', '.join(summary.quarantined_tasks[:5]))}"
                  f"{' ...' if len(summary.quarantined_tasks) > 5 else ''}): "
                  f"{summary.quarantined} run(s) not run; the errors: evalfleet status "
                  f"{summary.eval_id}[/yellow]")
    if summary.status == "budget_stopped":
        stopped = list(summary.agents_stopped)
        eval_too = summary.eval_budget_stopped or not stopped
        who = ", ".join((["the eval"] if eval_too else []) + stopped)
        how = (["--budget DOLLARS"] if eval_too else []) + [
            f"--agent-budget {a}=DOLLARS" for a in stopped]
        err.print(f"[yellow]stopped by the budget ({escape(who)}); completed runs are kept. "
                  f"Continue with: evalfleet resume {summary.eval_id} "
                  f"{escape(' '.join(how))}[/yellow]")
        raise typer.Exit(3)
    if summary.status == "interrupted":
        err.print(f"interrupted; continue with: evalfleet resume {summary.eval_id}")
        raise typer.Exit(1)
    if show_report and not scored:
        err.print("[red]no run was scored (every run errored or was cancelled): the eval "
                  "measured nothing[/red]")
        raise typer.Exit(1)


class Backend(StrEnum):
    """Execution backends available in this release."""

    local = "local"
    ray = "ray"


BackendOpt = Annotated[Backend | None, typer.Option(
    help="Where attempts run: local, or ray (a Ray cluster's workers; default: the plan's "
         "execution.backend).")]
RayAddressOpt = Annotated[str | None, typer.Option(
    "--ray-address", metavar="ADDR",
    help="Ray cluster to connect to with --backend ray (default RAY_ADDRESS, else a local Ray "
         "runtime is started).")]
MetricsPortOpt = Annotated[int | None, typer.Option(
    "--metrics-port", metavar="PORT", min=0, max=65535,
    help="Serve live Prometheus metrics on 127.0.0.1:PORT/metrics while the eval runs (needs "
         "evalfleet[metrics]).")]


@app.command()
def run(plan: Annotated[Path, typer.Argument(help="Plan YAML file.")], home: HomeOpt = None,
        backend: BackendOpt = None, ray_address: RayAddressOpt = None,
        metrics_port: MetricsPortOpt = None,
        workers: Annotated[int | None, typer.Option(
            min=1, max=10_000, help="Runs in flight (overrides execution.max_in_flight).")]
        = None,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False
        ) -> None:
    """Run a plan as a new eval."""
    from evalfleet import api
    from evalfleet.cli.progress import RichProgress

    _long_command()

    summary = api.run(plan, settings=_settings(home), workers=workers,
                      backend=backend.value if backend is not None else None,
                      ray_address=ray_address, metrics_port=metrics_port,
                      progress=None if quiet else RichProgress(err))
    _finish(summary, warn=quiet)


def _long_command() -> None:
    """In the installed command (:func:`console_main`), an eval runs in this process until it
    exits: what is alive now (the CLI and its imports) and what the eval sets up stay out of
    the garbage collector's full passes for good (``_util/heap.py``), the report after the
    eval included. :func:`main` called from a Python program leaves its heap alone."""
    if _whole_process:
        from evalfleet._util.heap import freeze_for_process

        freeze_for_process()


_whole_process = False
"""Set by :func:`console_main`: this process ends when the command does."""


def _agent_budgets(values: list[str]) -> dict[str, float]:
    """``AGENT@VERSION=DOLLARS`` options as a mapping (the last wins for a repeated agent)."""
    out: dict[str, float] = {}
    for v in values:
        label, eq, usd = v.rpartition("=")
        try:
            dollars = float(usd)
        except ValueError:
            dollars = float("nan")
        if not eq or "@" not in label or dollars != dollars:
            raise SpecError(f"--agent-budget {v!r}: expected AGENT@VERSION=DOLLARS, e.g. "
                            "coder@3=25", field="--agent-budget")
        out[label] = dollars
    return out


@app.command()
def resume(eval_id: Annotated[str, typer.Argument(help="Eval id (or a unique prefix).")],
           home: HomeOpt = None,
           budget: Annotated[float | None, typer.Option(
               "--budget", min=0.0, help="New budget in dollars (after a budget stop).")] = None,
           agent_budget: Annotated[list[str] | None, typer.Option(
               "--agent-budget", metavar="AGENT@VERSION=DOLLARS",
               help="New budget of one agent (repeatable).")] = None,
           backend: BackendOpt = None, ray_address: RayAddressOpt = None,
           metrics_port: MetricsPortOpt = None,
           quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False
           ) -> None:
    """Finish an interrupted eval; committed runs are never executed again."""
    from evalfleet import api
    from evalfleet.cli.progress import RichProgress

    _long_command()

    summary = api.resume(eval_id, settings=_settings(home), budget_usd=budget,
                         agent_budgets=_agent_budgets(agent_budget or []),
                         backend=backend.value if backend is not None else None,
                         ray_address=ray_address, metrics_port=metrics_port,
                         progress=None if quiet else RichProgress(err))
    _finish(summary, warn=quiet)


@app.command()
def status(eval_id: Annotated[str | None, typer.Argument(help="Eval id; all when omitted.")]
           = None, home: HomeOpt = None, json_: JsonOpt = False) -> None:
    """Progress of every eval, or of one with per-agent counts."""
    from evalfleet import api
    from evalfleet.cli.status_view import render_status

    data = api.status(eval_id, settings=_settings(home))
    if json_:
        sys.stdout.write(api.dumps(data) + "\n")
    else:
        render_status(out, data)


@app.command()
def report(eval_id: Annotated[str, typer.Argument(help="Eval id (or a unique prefix).")],
           home: HomeOpt = None, json_: JsonOpt = False,
           cluster: Annotated[str | None, typer.Option(
               "--cluster", help="Cluster the SE by repository or category (CR1).")] = None,
           tasks: Annotated[str | None, typer.Option(
               "--tasks", metavar="N|all",
               help="Per-task rows too: the worst N tasks of each agent, or all.")] = None,
           markdown_out: MarkdownOpt = None, html_out: HtmlOpt = None) -> None:
    """Scores with 95% intervals, categories, cost and latency of an eval (partial or not)."""
    from evalfleet import api
    from evalfleet.cli.render import render_report

    wanted = _tasks_wanted(tasks)
    exports = markdown_out is not None or html_out is not None
    # per-task rows only on request (50,000 tasks are megabytes of JSON); the Markdown and
    # HTML exports list the worst EXPORT_TASKS tasks unless --tasks says otherwise
    rep = api.report(eval_id, settings=_settings(home), cluster=cluster,
                     max_tasks=EXPORT_TASKS if tasks is None and exports else wanted)
    if _export(rep, json_, [(markdown_out, lambda r: api.report_text(r, "markdown")),
                            (html_out, lambda r: api.report_text(r, "html"))]):
        return
    if json_:
        if tasks is None:
            rep = {**rep, "agents": [{k: v for k, v in a.items() if k != "tasks"}
                                     for a in rep["agents"]]}
        sys.stdout.write(api.dumps(rep) + "\n")
    else:
        render_report(out, rep)
    if not rep["coverage"].get("scored", 0):
        raise typer.Exit(1)  # an eval with no scored run measured nothing


EXPORT_TASKS = 20
"""Worst tasks per agent a Markdown or HTML report lists when --tasks is not given."""


def _tasks_wanted(value: str | None) -> int | None:
    """``--tasks``: None (not given) -> 0 rows, ``all`` -> None (every row), N -> N."""
    if value is None:
        return 0
    if value.strip().lower() == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise SpecError(f"--tasks {value!r}: give a number of tasks (the worst N) or 'all'",
                        field="--tasks")
    return n


ClusterOpt = Annotated[str | None, typer.Option(
    "--cluster", help="Cluster the SE by a coarser key: repository or category (CR1).")]


@app.command()
def compare(sides: Annotated[list[str], typer.Argument(
                help="BASE then NEW (more NEWs allowed): EVAL_ID, EVAL_ID/AGENT@VERSION or "
                     "AGENT@VERSION (its latest eval).")],
            home: HomeOpt = None, json_: JsonOpt = False,
            margin: Annotated[float, typer.Option(
                help="Practical margin in points: smaller changes are never flagged.")] = 1.0,
            alpha: Annotated[float, typer.Option(min=0.0001, max=0.5,
                                                 help="Significance level.")] = 0.05,
            cluster: ClusterOpt = None, markdown_out: MarkdownOpt = None,
            html_out: HtmlOpt = None) -> None:
    """Paired comparison on shared tasks: difference with CI and p, categories, regressions."""
    from evalfleet import api
    from evalfleet.cli.render import render_compare

    cmp = api.compare(sides, settings=_settings(home), margin=margin / 100, alpha=alpha,
                      cluster=cluster)
    if _export(cmp, json_, [(markdown_out, lambda c: api.compare_text(c, "markdown")),
                            (html_out, lambda c: api.compare_text(c, "html"))]):
        return
    if json_:
        sys.stdout.write(api.dumps(cmp) + "\n")
    else:
        render_compare(out, cmp)


@app.command()
def demo(home: HomeOpt = None,
         runs: Annotated[int, typer.Option(min=1, max=20, help="Runs per task.")] = 2,
         limit: Annotated[int | None, typer.Option(min=1, help="Only the first N tasks.")] = None,
         quiet: Annotated[bool, typer.Option("--quiet", help="No progress display.")] = False
         ) -> None:
    """Offline end-to-end demo: two agent versions on HumanEval with a SIMULATED model."""
    import yaml

    from evalfleet import api
    from evalfleet.cli.progress import RichProgress

    _long_command()

    settings = _settings(home)
    # the home as the driver makes it (0700, so sandboxed code running under other uids cannot
    # read the journal or other evals' trajectories; an existing home keeps its mode), and the
    # same one-line error when --home is not a directory
    api.open_store(settings).close()
    plan: dict[str, Any] = yaml.safe_load(
        (Path(__file__).resolve().parent.parent / "plans" / "demo.yaml").read_text())
    plan["runs_per_task"] = runs
    if limit:
        plan["suite"]["limit"] = limit
    plan_path = settings.home / "demo-plan.yaml"
    plan_path.write_text(yaml.safe_dump(plan, sort_keys=False))
    err.print(f"demo plan written to {plan_path}; the model is SIMULATED (no network, no key)")
    summary = api.run(plan_path, settings=settings,
                      progress=None if quiet else RichProgress(err, label="demo"))
    _finish(summary, warn=quiet)


@app.command()
def query(sql: Annotated[str, typer.Argument(help="One SELECT over the view 'runs'.")],
          eval_id: Annotated[str | None, typer.Option("--eval", help="Only this eval.")] = None,
          home: HomeOpt = None, json_: JsonOpt = False,
          csv_: Annotated[bool, typer.Option(
              "--csv", help="CSV on stdout: a header row, then one row per result row.")]
          = False) -> None:
    """Read-only DuckDB SELECT over the committed results (views ``runs`` and ``scores``).

    Anything but one SELECT (COPY, ATTACH, SET, PRAGMA, INSTALL, CREATE, INSERT ...) is
    refused with exit 2, and the query can read no file other than the committed results.
    """
    from rich.table import Table

    from evalfleet import api

    if json_ and csv_:
        raise SpecError("give one of --json and --csv", field="--csv")
    names, rows = api.query(sql, eval_id=eval_id, settings=_settings(home))
    if json_:
        sys.stdout.write(api.dumps([dict(zip(names, r, strict=True)) for r in rows]) + "\n")
        return
    if csv_:
        _write_query_csv(names, rows)
        return
    t = Table()
    for n in names:
        t.add_column(n)
    for r in rows:
        t.add_row(*[str(v) for v in r])
    out.print(t)


def _csv_cell(value: Any) -> str:
    """A CSV field: NULL empty, booleans true/false, times ISO 8601, lists and maps JSON."""
    import json
    from datetime import date, datetime

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return str(value)


def _write_query_csv(names: list[str], rows: list[tuple[Any, ...]]) -> None:
    import csv

    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(names)
    for r in rows:
        w.writerow([_csv_cell(v) for v in r])


@app.command()
def compact(eval_id: Annotated[str | None, typer.Argument(
                help="Eval id (or a unique prefix); every eval when omitted.")] = None,
            dry_run: Annotated[bool, typer.Option(
                "--dry-run", help="Say what would be merged; write nothing.")] = False,
            home: HomeOpt = None, json_: JsonOpt = False) -> None:
    """Merge an eval's small results files into large sorted ones.

    Drivers do this as evals run and end; this is for homes written before, or evals left
    with small files. A writer: it holds each eval's claim while it works, and refuses an
    eval another driver is running. Superseded files are deleted a grace period (5 minutes)
    after the swap.
    """
    from evalfleet import api

    data = api.compact(eval_id, settings=_settings(home), dry_run=dry_run)
    if json_:
        sys.stdout.write(api.dumps(data) + "\n")
        return
    verb = "would merge" if dry_run else "merged"
    for e in data["evals"]:
        if "skipped" in e:
            err.print(f"eval {e['eval_id']}: skipped: {escape(e['skipped'])}")
            continue
        merged = sum(m["inputs"] for m in e["merges"])
        sizes = ("" if dry_run else f", {e['bytes_before']:,} -> {e['bytes_after']:,} bytes")
        out.print(f"eval {e['eval_id']}: {e['rows']:,} rows, {verb} {merged} of "
                  f"{e['files_before']} files into {len(e['merges'])} "
                  f"({e['files_after']} files now{' after' if dry_run else ''}){sizes}"
                  + (f", {len(e['purged'])} superseded files deleted" if e["purged"] else ""),
                  highlight=False)


# after the commands above, so that --help lists them in the order a user needs them
app.command("show")(inspect_cmds.show)
app.command("costs")(inspect_cmds.costs)
app.command("suites")(inspect_cmds.suites)
app.command("tasks")(inspect_cmds.tasks)
app.command("trends")(trends_cmd.trends)
app.command("slice")(slice_cmd.slice_)
app.add_typer(io_cmds.import_app, name="import")
app.command("export")(io_cmds.export)
app.add_typer(retention_app, name="retention")


def _usage_error(exc: typer.TyperException) -> int:
    """Print a usage error as one line plus where help is; return its exit code."""
    from rich.markup import escape

    if type(exc).__name__ == "NoArgsIsHelpError":
        # a command group without its subcommand (`evalfleet plan`): building the error
        # rendered the group's help already (rich prints it); like `evalfleet` alone, exit 0
        sys.stdout.write(exc.format_message())
        return 0
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", None) or "evalfleet"
    err.print(f"[red]error:[/red] {escape(exc.format_message())}", highlight=False,
              soft_wrap=True)
    err.print(f"Try '{escape(command)} --help' for help.", highlight=False, soft_wrap=True)
    return int(exc.exit_code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app and turns every expected error into one line and an exit code.

    Exit codes: 0 done; 1 unexpected error or interrupted; 2 bad input (a usage mistake, a bad
    plan); 3 stopped by the budget; 130 Ctrl-C before an eval started.
    """
    from rich.markup import escape

    try:
        # standalone_mode=False: errors come back here, so every one is printed the same way.
        # prog_name: under `python -m evalfleet` the detected name would be "python -m ..."
        rc = app(args=argv, prog_name="evalfleet", standalone_mode=False)
        # without standalone mode a typer.Exit's code is returned instead of raised
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except EvalfleetError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except typer.TyperException as exc:
        # usage mistakes (unknown command or option, missing or invalid argument): typer
        # raises them as TyperException subclasses (its own click) with exit code 2
        sys.exit(_usage_error(exc))


def console_main() -> None:
    """The installed ``evalfleet`` command (and ``python -m evalfleet``): :func:`main`, then
    every object moved out of the collector's reach (``gc.freeze``). The process ends right
    after, and the interpreter's final full collection over everything the command imported
    costs 0.1-0.4 s of CPU, a tenth of a short command such as ``plan review``."""
    global _whole_process
    _whole_process = True
    try:
        main()
    finally:
        gc.freeze()
