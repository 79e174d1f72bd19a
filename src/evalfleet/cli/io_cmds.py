"""``evalfleet import inspect|jsonl`` and ``evalfleet export``: results in and out.

Imports write like a driver (the eval's claim, the exactly-once commit); ``export`` is a
reader and creates nothing in the home.
"""

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

import_app = typer.Typer(no_args_is_help=True, add_completion=False,
                         help="Bring results from elsewhere into the warehouse.")


def _settings(home: Path | None) -> Settings:
    from evalfleet.settings import load_settings

    return load_settings(home)


def _print_imports(done: list[Any], json_: bool) -> None:
    from evalfleet import api

    if json_:
        sys.stdout.write(api.dumps({"imports": [d.as_dict() for d in done]}) + "\n")
        return
    out = Console(highlight=False, soft_wrap=True)
    for d in done:
        if d.outcome == "already_imported":
            out.print(f"{escape(d.eval_id)}: already imported ({d.runs} runs, "
                      f"{escape(d.status)}) from {escape(d.source)}")
            continue
        extra = f", {d.errored} errored (missing data)" if d.errored else ""
        again = " (finished an earlier import that had stopped)" \
            if d.outcome == "resumed" else ""
        out.print(f"{escape(d.eval_id)}: imported {d.committed} of {d.runs} runs, {d.tasks} "
                  f"tasks, agent {escape(', '.join(d.agents))}{extra}, {escape(d.status)}"
                  f"{again}")
        out.print(f"  evalfleet report {escape(d.eval_id)}")


@import_app.command("inspect")
def import_inspect(
    logs: Annotated[list[Path], typer.Argument(metavar="LOG...",
                                               help="Inspect AI .eval (or .json) logs.")],
    scorer: Annotated[str | None, typer.Option(
        "--scorer", help="Which scorer gives the run's score (default: the log's first).")]
        = None,
    agent: Annotated[str | None, typer.Option(
        "--agent", metavar="NAME@VERSION",
        help="Name the agent (default: the model, versioned by a hash of the solver plan "
             "and generation settings).")] = None,
    home: HomeOpt = None, json_: JsonOpt = False,
) -> None:
    """Import Inspect AI logs, one eval per log: samples as tasks, epochs as repeats.

    Needs the inspect extra (pip install 'evalfleet[inspect]'). A log imported before is
    skipped. See docs/import-format.md.
    """
    from evalfleet import api

    _print_imports(api.import_inspect(logs, scorer=scorer, agent=agent,
                                      settings=_settings(home)), json_)


@import_app.command("jsonl")
def import_jsonl(
    file: Annotated[Path, typer.Argument(metavar="FILE",
                                         help="JSON Lines, one run per line.")],
    home: HomeOpt = None, json_: JsonOpt = False,
) -> None:
    """Import runs from JSON Lines (format: docs/import-format.md), one eval per 'eval'.

    The whole file is checked first; the first bad line is named and nothing is written.
    """
    from evalfleet import api

    _print_imports(api.import_jsonl(file, settings=_settings(home)), json_)


def export(
    eval_ids: Annotated[list[str] | None, typer.Argument(
        metavar="[EVAL_ID]...", help="Only these evals (default: all).")] = None,
    out_path: Annotated[Path | None, typer.Option(
        "--out", metavar="PATH", help="File to write (required).")] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="parquet or csv (default: from the --out suffix).")] = None,
    where: Annotated[list[str] | None, typer.Option(
        "--where", metavar="FIELD OP VALUE",
        help="Keep runs where FIELD OP VALUE (as in `evalfleet slice`); repeatable.")] = None,
    home: HomeOpt = None, json_: JsonOpt = False,
) -> None:
    """Write the committed runs as one Parquet or CSV file, for notebooks (read-only).

    Parquet keeps each column's description in its schema metadata; in CSV the metrics map
    is a JSON object.
    """
    from evalfleet import api
    from evalfleet.errors import SpecError

    if out_path is None:
        raise SpecError("give the file to write with --out PATH", field="--out")
    res = api.export_runs(out_path, eval_ids=eval_ids or (), where=where or (), fmt=fmt,
                          settings=_settings(home))
    if json_:
        sys.stdout.write(api.dumps(res) + "\n")
        return
    Console(highlight=False, soft_wrap=True).print(
        f"wrote {res['rows']} runs x {res['columns']} columns to {escape(res['path'])} "
        f"({res['format']}, {res['bytes']:,} bytes)")
