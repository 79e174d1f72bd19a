"""Where read-only questions find a home's committed results, as cheaply as the layout allows.

`plan review`, `slice`, `query` and `report` need little from the journal: the live results
files (of one eval or of all), which evals exist, an eval's row and plan, and for a report the
eval's budget-cancelled runs and quarantined tasks. In the default layout (a SQLite journal,
results in the home) :class:`~evalfleet.store.snapshot.JournalSnapshot` reads those with the
standard library's ``sqlite3``; a PostgreSQL journal or a warehouse elsewhere goes through the
store. Both answer alike (tests compare them), and neither creates, sweeps or locks anything.

Importing SQLAlchemy costs about a quarter of a second, which is a quarter of the second a
slice has as a whole process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from evalfleet.errors import StoreError, UnknownEvalError
from evalfleet.settings import Settings

if TYPE_CHECKING:
    from pathlib import Path

    from evalfleet.store import Store


class ResultsSource(Protocol):
    """The facts about a home's committed results that read-only questions use."""

    home: Path

    def all_results_paths(self) -> list[str]: ...

    def results_paths(self, eval_id: str) -> list[str]: ...

    def eval_exists(self, eval_id: str) -> bool: ...

    def find_evals(self, prefix: str) -> list[str]: ...

    def eval_plan(self, eval_id: str) -> dict[str, Any]: ...

    def get_eval(self, eval_id: str) -> dict[str, Any]: ...

    def list_evals(self) -> list[dict[str, Any]]: ...

    def cancelled_by_agent(self, eval_id: str) -> dict[int, int]: ...

    def quarantined(self, eval_id: str, evidence: int = 5) -> list[dict[str, Any]]: ...

    def select(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


class StoreSource:
    """A store as a results source (PostgreSQL journals, warehouses elsewhere)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.home = store.home

    def all_results_paths(self) -> list[str]:
        return self.store.all_results_paths()

    def results_paths(self, eval_id: str) -> list[str]:
        return self.store.results_paths(eval_id)

    def eval_exists(self, eval_id: str) -> bool:
        try:
            self.store.journal.get_eval(eval_id)
        except UnknownEvalError:
            return False
        return True

    def find_evals(self, prefix: str) -> list[str]:
        return self.store.journal.find_evals(prefix)

    def eval_plan(self, eval_id: str) -> dict[str, Any]:
        plan: dict[str, Any] = self.store.journal.get_eval(eval_id)["plan"]
        return plan

    def get_eval(self, eval_id: str) -> dict[str, Any]:
        return self.store.journal.get_eval(eval_id)

    def list_evals(self) -> list[dict[str, Any]]:
        return self.store.journal.list_evals()

    def cancelled_by_agent(self, eval_id: str) -> dict[int, int]:
        return self.store.journal.cancelled_by_agent(eval_id)

    def quarantined(self, eval_id: str, evidence: int = 5) -> list[dict[str, Any]]:
        return self.store.journal.quarantined(eval_id, evidence)

    def select(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.store.journal.engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql), dict(params))]
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the journal: {exc}") from None

    def close(self) -> None:
        self.store.close()


def version_spans(source: ResultsSource, names: Sequence[str], paths: Sequence[str]
                  ) -> list[tuple[str, str, str, str, str]] | None:
    """From the journal's rollups: ``(eval, agent name, agent version, first UTC day, last UTC
    day)`` of the agents ``names`` in the results files ``paths`` (relative to the home, as
    the journal records them), or None when the rollups do not hold exactly the rows of those
    files for every eval they belong to (a journal from before rollups, files elsewhere, a
    commit between reading the files' list and now): a slice then scans the rows instead.

    Rollups are added in the same journal transaction as the batch they sum, so the rows an
    eval's rollups count equal the rows of its live batches."""
    if not names or any(p.startswith("/") or "://" in p for p in paths):
        return None
    wanted = set(paths)
    rows: dict[str, int] = {}
    try:
        for eval_id, path, n in source.select(
                "SELECT eval_id, results_path, n_rows FROM batches", {}):
            if path in wanted:
                rows[str(eval_id)] = rows.get(str(eval_id), 0) + int(n)
        totals = {str(e): int(n) for e, n in source.select(
            "SELECT eval_id, sum(runs) FROM rollups GROUP BY eval_id", {})}
        marks = {f"n{i}": n for i, n in enumerate(names)}
        spans = source.select(
            "SELECT eval_id, agent_name, agent_version, min(day), max(day) FROM rollups "
            f"WHERE agent_name IN ({', '.join(':' + k for k in marks)}) "
            "GROUP BY eval_id, agent_name, agent_version", marks)
    except StoreError:  # no rollups table (a journal from before them): scan instead
        return None
    if any(totals.get(e) != n for e, n in rows.items()):
        return None
    return [(str(e), str(a), str(v), str(d0), str(d1)) for e, a, v, d0, d1 in spans
            if str(e) in rows]


def default_layout(settings: Settings) -> bool:
    """A SQLite journal in the home and results in the home: readable without SQLAlchemy."""
    return settings.journal_url is None and settings.warehouse_url is None


def open_results(settings: Settings) -> ResultsSource:
    """The home's committed results, read-only.

    Raises:
        UnknownEvalError: the home or its journal does not exist ("no evals in HOME").
    """
    if default_layout(settings):
        from evalfleet.store.snapshot import JournalSnapshot

        return JournalSnapshot(settings.home)
    from evalfleet.api.reads import open_reader

    return StoreSource(open_reader(settings))


def resolve_eval(source: ResultsSource, ref: str) -> str:
    """An exact eval id, or a unique prefix of one.

    Raises:
        UnknownEvalError: no eval has that id or prefix, or several have the prefix.
    """
    if source.eval_exists(ref):
        return ref
    matches = source.find_evals(ref)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UnknownEvalError(f"'{ref}' matches {len(matches)} evals: "
                               f"{', '.join(matches[:5])}")
    raise UnknownEvalError(f"no eval '{ref}' in this home")
