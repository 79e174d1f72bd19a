"""``evalfleet retention ...``: tiered retention of trajectories (docs/retention.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from evalfleet.settings import Settings

HomeOpt = Annotated[Path | None, typer.Option("--home", help="Evalfleet home (default "
                                               "$EVALFLEET_HOME, else ./.evalfleet).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
HotOpt = Annotated[float | None, typer.Option(
    "--hot-days", help="Evals younger than this keep everything (default "
                       "$EVALFLEET_RETENTION_HOT_DAYS, else 30).")]
WarmOpt = Annotated[float | None, typer.Option(
    "--warm-days", help="Evals younger than this keep a stratified sample of trajectories "
                        "(default $EVALFLEET_RETENTION_WARM_DAYS, else 183).")]
SampleOpt = Annotated[float | None, typer.Option(
    "--warm-sample", help="Fraction of each stratum's trajectories a warm eval keeps, at "
                          "least one (default $EVALFLEET_RETENTION_WARM_SAMPLE, else 0.1).")]

retention_app = typer.Typer(
    no_args_is_help=True, add_completion=False,
    help="Keep old evals' rows and rollups, and fewer trajectories: hot (everything), warm (a "
         "stratified sample), cold (none); pinned trajectories always stay.")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _settings(home: Path | None) -> Settings:
    from evalfleet.settings import load_settings

    return load_settings(home)


def _json(data: Any) -> None:
    from evalfleet import api

    sys.stdout.write(api.dumps(data) + "\n")


def _eval_line(e: dict[str, Any], dry_run: bool) -> str:
    head = f"eval {escape(e['eval_id'])} ({e['tier']}, {e['age_days']:.1f} days)"
    if e["status"] in ("skipped", "failed"):
        return f"{head}: {e['status']}: {escape(e['reason'])}"
    if e["tier"] == "hot":
        return f"{head}: hot, every trajectory kept"
    before = f", {e['already_removed']:,} removed before" if e["already_removed"] else ""
    pinned = f" ({e['pinned_kept']:,} pinned)" if e["pinned_kept"] else ""
    if e["status"] == "unchanged":
        return (f"{head}: nothing to remove, {e['trajectories_kept']:,} trajectories kept"
                f"{pinned}{before}")
    verb = "would remove" if dry_run else "removed"
    freed = e["bytes_freed"]
    when = "" if dry_run else " once the replaced files' grace period (5 minutes) ends"
    return (f"{head}: {verb} {e['trajectories_removed']:,} trajectories, kept "
            f"{e['trajectories_kept']:,}{pinned}{before}; {e['rows']:,} rows kept; files "
            f"{e['files_before']} -> {e['files_after']}, {e['bytes_before']:,} -> "
            f"{e['bytes_after']:,} bytes ({freed:,} freed{when})")


@retention_app.callback()
def _retention() -> None:
    """Keep old evals' rows and rollups, and fewer trajectories (docs/retention.md)."""


@retention_app.command("apply")
def apply(eval_id: Annotated[str | None, typer.Argument(
              help="Eval id (or a unique prefix); every eval when omitted.")] = None,
          dry_run: Annotated[bool, typer.Option(
              "--dry-run", help="Say exactly what would be removed and freed; write "
                                "nothing.")] = False,
          hot_days: HotOpt = None, warm_days: WarmOpt = None, warm_sample: SampleOpt = None,
          home: HomeOpt = None, json_: JsonOpt = False) -> None:
    """Thin the trajectories of warm evals to a stratified sample and remove cold evals'.

    Rows, rollups and pinned trajectories are never removed. A writer like `compact`: it
    claims each eval it changes and skips an eval a live driver is running. Replaced files
    are deleted after a grace period (5 minutes), by the next apply, compact or driver.
    """
    from evalfleet import api

    data = api.retention_apply(
        eval_id, settings=_settings(home), dry_run=dry_run, hot_days=hot_days,
        warm_days=warm_days, warm_sample=warm_sample,
        progress=None if json_ else (lambda msg: err.print(escape(msg))))
    if json_:
        _json(data)
    else:
        for e in data["evals"]:
            out.print(_eval_line(e, dry_run))
        t = data["totals"]
        verb = "would remove" if dry_run else "removed"
        out.print(f"{verb} {t['trajectories_removed']:,} trajectories in all, "
                  f"{t['bytes_freed']:,} bytes freed"
                  + (" (nothing was written)" if dry_run else ""))
    if any(e["status"] == "failed" for e in data["evals"]):
        raise typer.Exit(1)


@retention_app.command("show")
def show(hot_days: HotOpt = None, warm_days: WarmOpt = None, warm_sample: SampleOpt = None,
         home: HomeOpt = None, json_: JsonOpt = False) -> None:
    """Each eval's tier, age, rows, trajectories kept and removed, pins and bytes (read-only)."""
    from evalfleet import api

    data = api.retention_show(settings=_settings(home), hot_days=hot_days,
                              warm_days=warm_days, warm_sample=warm_sample)
    if json_:
        _json(data)
        return
    from rich.table import Table

    p = data["policy"]
    table = Table(title=f"retention: hot < {p['hot_days']:g} days, warm < {p['warm_days']:g} "
                        f"days ({100 * p['warm_sample']:g}% sample), cold after")
    for col in ("eval", "plan", "status", "age (days)", "tier", "applied", "rows",
                "trajectories", "removed", "pinned", "results bytes", "trajectory bytes"):
        table.add_column(col, justify="right" if col not in ("eval", "plan", "status", "tier",
                                                              "applied") else "left")
    for e in data["evals"]:
        table.add_row(escape(e["eval_id"]), escape(e["plan_name"]),
                      "running" if e["running"] else escape(e["status"]), f"{e['age_days']:.1f}",
                      e["tier"], e["applied"] or "-", f"{e['rows']:,}",
                      f"{e['trajectories']:,}", f"{e['trajectories_removed']:,}",
                      f"{e['pinned']:,}", f"{e['results_bytes']:,}",
                      f"{e['trajectory_bytes']:,}")
    out.print(table)


@retention_app.command("pin")
def pin(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
        kind: Annotated[str, typer.Option(
            "--kind", help="Who references it: review, decision or manual.")] = "manual",
        note: Annotated[str, typer.Option("--note", help="Why (free text).")] = "",
        home: HomeOpt = None, json_: JsonOpt = False) -> None:
    """Keep a run's trajectory whatever its eval's tier."""
    from evalfleet import api

    data = api.pin_trajectory(run_id, kind=kind, note=note, settings=_settings(home))
    if json_:
        _json(data)
        return
    state = "pinned" if data["new"] else "already pinned (note updated)"
    out.print(f"run {escape(data['run_id'])} (eval {escape(data['eval_id'])}): {state} as "
              f"{data['kind']}")


@retention_app.command("unpin")
def unpin(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
          kind: Annotated[str | None, typer.Option(
              "--kind", help="Only this kind of pin (default: all of the run's).")] = None,
          home: HomeOpt = None, json_: JsonOpt = False) -> None:
    """Remove a run's pins; the next apply may remove its trajectory."""
    from evalfleet import api

    data = api.unpin_trajectory(run_id, kind=kind, settings=_settings(home))
    if json_:
        _json(data)
        return
    out.print(f"run {escape(data['run_id'])}: {data['removed']} pin(s) removed")


@retention_app.command("pins")
def pins(eval_id: Annotated[str | None, typer.Argument(
             help="Eval id (or a unique prefix); every eval when omitted.")] = None,
         home: HomeOpt = None, json_: JsonOpt = False) -> None:
    """List the pinned trajectories (read-only)."""
    from evalfleet import api

    rows = api.trajectory_pins(eval_id, settings=_settings(home))
    if json_:
        _json({"pins": rows})
        return
    if not rows:
        out.print("no pinned trajectories")
    for r in rows:
        note = f"  {escape(r['note'])}" if r["note"] else ""
        out.print(f"{escape(r['run_id'])}  eval {escape(r['eval_id'])}  {r['kind']}{note}")
