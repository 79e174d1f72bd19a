"""Read-only commands that look at things: ``show`` (one run), ``suites`` and ``tasks``.

None of them creates the home or touches an eval: ``show`` opens the store read-only, and
``suites`` and ``tasks`` read only the packaged suites or the suite file given.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

HomeOpt = Annotated[Path | None, typer.Option("--home", help="Evalfleet home (default "
                                               "$EVALFLEET_HOME, else ./.evalfleet).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]

_INLINE = 100
"""Longest value printed on an event's own line; longer or multi-line text goes below it."""
_BLOCK_LINES = 40
"""Lines of one long value printed in the terminal (--json has everything)."""
_OUTPUT_KEYS = ("output", "detail", "message", "traceback", "stdout", "stderr", "error")
"""Fields of a per-test entry that hold its output, in the order printed."""


def _out() -> Console:
    return Console(highlight=False)


def show(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
         home: HomeOpt = None, json_: JsonOpt = False) -> None:
    """Why a run scored what it did: its result, trajectory and the scorer's per-test report.

    Run ids are in `evalfleet query "SELECT run_id, task_id, status FROM runs"` and in
    `evalfleet report`'s list of failing runs.
    """
    from evalfleet import api
    from evalfleet.settings import load_settings

    data = api.show_run(run_id, settings=load_settings(home))
    if json_:
        sys.stdout.write(api.dumps(data) + "\n")
        return
    render_run(_out(), data)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def _block(console: Console, text: str, indent: str = "      ") -> None:
    lines = text.rstrip("\n").splitlines() or [""]
    for line in lines[:_BLOCK_LINES]:
        console.print(escape(indent + line), soft_wrap=True)
    if len(lines) > _BLOCK_LINES:
        console.print(f"{indent}[dim]... {len(lines) - _BLOCK_LINES} more lines (--json has "
                      "them all)[/dim]")


def _fields(console: Console, kind: str, index: str, event: dict[str, Any],
            skip: tuple[str, ...] = (), note: str = "", inline_only: bool = False) -> None:
    """One event: short fields on its line, long ones below it, whatever the fields are."""
    short: list[str] = []
    long: list[tuple[str, str]] = []
    for key, value in event.items():
        if key in ("t", "kind", *skip) or value is None or value == [] or value == {} or \
                (isinstance(value, str) and not value.strip()):
            continue
        text = _fmt(value)
        if len(text) > _INLINE or "\n" in text:
            long.append((key, text))
        else:
            short.append(f"{key}={text}")
    console.print(f"{index} [bold]{escape(kind)}[/bold] {escape('  '.join(short))}{note}",
                  soft_wrap=True)
    if inline_only:
        return
    for key, text in long:
        console.print(f"    [cyan]{escape(key)}:[/cyan]")
        _block(console, text)


def _tests(report: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(test id, status, entry) of every per-test entry a scorer report carries.

    The report's shape is the scorer's: a ``tests`` or ``failing`` mapping of test id to an
    entry (a dict with status and output, or just a status), or a list of such dicts.
    """
    out: list[tuple[str, str, dict[str, Any]]] = []
    for key in ("tests", "failing", "failed"):
        value = report.get(key)
        default = "failed" if key != "tests" else "?"
        items: list[tuple[str, Any]] = []
        if isinstance(value, dict):
            items = list(value.items())
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    name = item.get("id") or item.get("name") or item.get("test") or "?"
                    items.append((str(name), item))
                else:
                    items.append((str(item), None))
        for name, entry in items:
            if isinstance(entry, dict):
                status = str(entry.get("status") or entry.get("outcome") or
                             entry.get("result") or default)
                out.append((name, status, entry))
            else:
                out.append((name, str(entry) if entry is not None else default, {}))
    return out


def _scorer_report(console: Console, report: dict[str, Any]) -> None:
    tests = _tests(report)
    head = f"scorer: {report.get('scorer', '?')}"
    if report.get("runner"):
        head += f" ({report['runner']})"
    if isinstance(report.get("passed"), int) and isinstance(report.get("expected"), int):
        head += f": {report['passed']} of {report['expected']} expected tests passed"
    console.print(f"[bold]{escape(head)}[/bold]")
    _fields(console, "report", "  ", report, skip=("scorer", "runner", "tests", "failing",
                                                   "failed"))
    not_passed = [(n, s, e) for n, s, e in tests if s.lower() not in ("passed", "pass", "ok")]
    if not_passed:
        console.print(f"  {len(not_passed)} test(s) did not pass:")
    for name, status, entry in not_passed:
        console.print(f"  [red]{escape(status.upper())}[/red] {escape(name)}", soft_wrap=True)
        for key in _OUTPUT_KEYS:
            if isinstance(entry.get(key), str) and entry[key].strip():
                _block(console, entry[key])
    failing = {(n, s) for n, s, _ in not_passed}
    for name, status, _ in tests:
        if (name, status) not in failing:
            console.print(f"  [green]{escape(status)}[/green] {escape(name)}", soft_wrap=True)


def render_run(console: Console, data: dict[str, Any]) -> None:
    """A run's result, its events in order, and its scorer's per-test report."""
    r = data["run"]
    status = r.get("status") or "?"
    color = {"completed": "green", "failed": "red", "errored": "yellow"}.get(status, "white")
    console.print(f"[bold]run {escape(r['run_id'])}[/bold]  eval {escape(r['eval_id'])}",
                  soft_wrap=True)
    console.print(f"task {escape(str(r.get('task_id')))} (category {r.get('category')}, "
                  f"difficulty {r.get('difficulty')})  agent {r.get('agent_name')}@"
                  f"{r.get('agent_version')} (model {r.get('model') or '-'})  repeat "
                  f"{r.get('repeat')}  attempts {r.get('attempts')}  sandbox "
                  f"{r.get('sandbox') or '-'}", soft_wrap=True)
    if r.get("reused_from"):
        console.print(f"[cyan]reused[/cyan]: not executed; its result is run "
                      f"{escape(str(r['reused_from']))}'s (evalfleet show "
                      f"{escape(str(r['reused_from']))})", soft_wrap=True)
    score = r.get("score")
    console.print(f"[{color}]{escape(status)}[/{color}]  score "
                  f"{'-' if score is None else f'{score:.3f}'}  passed {r.get('passed')}  "
                  f"tokens {r.get('tokens_in')} in ({r.get('tokens_cached') or 0} cached) / "
                  f"{r.get('tokens_out')} out  cost ${r.get('cost_usd') or 0:.6f} model + "
                  f"${r.get('infra_cost_usd') or 0:.6f} infra  "
                  f"latency {r.get('latency_s') or 0:.2f}s",
                  soft_wrap=True)
    if r.get("error_kind") or r.get("error"):
        console.print(f"[red]error[/red] ({escape(str(r.get('error_kind') or '-'))}):",
                      soft_wrap=True)
        _block(console, str(r.get("error") or ""), indent="  ")
    extra = {k: v for k, v in r.items() if k not in _SHOWN and v not in (None, "", {}, [])}
    if extra:
        console.print("[dim]" + escape("  ".join(f"{k}={_fmt(v)}" for k, v in extra.items()))
                      + "[/dim]", soft_wrap=True)
    events = data.get("events") or []
    if data.get("trajectory_removed"):
        console.print(f"[yellow]trajectory {escape(data['trajectory_removed'])}[/yellow]")
    elif not data.get("trajectory_found", True):
        console.print("[yellow]the trajectory file is missing[/yellow]")
    console.print(f"\n[bold]trajectory[/bold]: {len(events)} events"
                  + (f" ({data['dropped_events']} more were dropped)"
                     if data.get("dropped_events") else ""))
    t0 = events[0].get("t", 0) if events else 0
    for i, e in enumerate(events, 1):
        dt = e.get("t", t0) - t0 if isinstance(e.get("t"), int | float) else 0
        scorer = e.get("kind") == "scorer"
        _fields(console, str(e.get("kind", "?")), f"{i:>3} {f'+{dt:.2f}s':>9}", e,
                skip=("tests", "failing", "failed") if scorer else (),
                note=" [dim](report below)[/dim]" if scorer else "", inline_only=scorer)
    for report in data.get("scorer_reports") or []:
        console.print()
        _scorer_report(console, report)


_SHOWN = {"run_id", "eval_id", "task_id", "category", "difficulty", "agent_name",
          "agent_version", "model", "repeat", "attempts", "sandbox", "status", "score", "passed",
          "tokens_in", "tokens_cached", "tokens_out", "cost_usd", "latency_s", "error",
          "error_kind", "plan_name", "suite", "suite_hash", "task_hash", "agent_fingerprint",
          "trajectory_uri", "started_at", "finished_at", "domain", "repository", "model_tier",
          "worker", "infra_cost_usd"}
"""Row fields printed above or of no use to someone asking why a run failed (--json has them)."""


def suites(json_: JsonOpt = False) -> None:
    """The suites a plan can run, with their task counts and categories."""
    from evalfleet import api

    data = api.list_suites()
    if json_:
        sys.stdout.write(api.dumps(data) + "\n")
        return
    console = _out()
    t = Table(box=None, pad_edge=False)
    for col in ("suite", "version", "tasks", "categories"):
        t.add_column(col, no_wrap=col != "categories", overflow="fold")
    for s in data:
        t.add_row(escape(s["suite"]), escape(s["version"]), str(s["tasks"]),
                  escape(", ".join(f"{c} ({n})" for c, n in s["categories"].items())))
    console.print(t)
    console.print("in a plan: suite: {builtin: NAME}; or suite: {path: FOLDER_OR_JSONL} for "
                  "your own (see docs/plan-format.md). List tasks with: evalfleet tasks NAME")


def tasks(suite: Annotated[str, typer.Argument(
              help="A built-in suite (see `evalfleet suites`) or a suite folder or JSONL file.")],
          category: Annotated[list[str] | None, typer.Option(
              "--category", help="Only this category (repeatable).")] = None,
          json_: JsonOpt = False) -> None:
    """A suite's tasks: id, category, difficulty, scorer."""
    from evalfleet import api

    data = api.list_tasks(suite, categories=tuple(category or ()))
    if json_:
        sys.stdout.write(api.dumps(data) + "\n")
        return
    console = _out()
    listed = data["tasks_listed"]
    console.print(f"[bold]{escape(data['name'])}[/bold] {escape(data['version'])}: "
                  f"{len(listed)} of {data['tasks']} tasks", soft_wrap=True)
    t = Table(box=None, pad_edge=False)
    t.add_column("id", no_wrap=True)
    for col in ("category", "difficulty", "scorer", "network"):
        t.add_column(col, no_wrap=True)
    for task in listed:
        t.add_row(escape(task["id"]), escape(task["category"]), str(task["difficulty"]),
                  escape(task["scorer"]), "yes" if task["network"] else "")
    width = console.width
    console.width = max(width, 200)  # ids are copied into plans: never cut them
    try:
        console.print(t, crop=False)
    finally:
        console.width = width


def costs(home: HomeOpt = None,
          since: Annotated[float | None, typer.Option(
              "--since", metavar="DAYS", help="Only evals created in the last DAYS days.")]
          = None,
          json_: JsonOpt = False) -> None:
    """Spend over every eval in the home, by eval type, model tier and category.

    Model, infra, total and expected review dollars; read-only."""
    from evalfleet import api
    from evalfleet.cli.render import render_costs
    from evalfleet.settings import load_settings

    data = api.costs(settings=load_settings(home), since_days=since)
    if json_:
        sys.stdout.write(api.dumps(data) + "\n")
        return
    render_costs(_out(), data)
