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

from typing import TYPE_CHECKING, Any, Protocol

from evalfleet.errors import UnknownEvalError
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

    def close(self) -> None:
        self.store.close()


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
