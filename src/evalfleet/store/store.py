"""The store facade: journal + results writer, with the exactly-once commit protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evalfleet.spec.result import RunResult
from evalfleet.store.journal import CommitRow, Journal
from evalfleet.store.results import ResultsWriter, RowContext, remove_orphans


@dataclass(frozen=True, slots=True)
class CommitReport:
    """How a batch commit went."""

    committed: int
    duplicates: int


class Store:
    """Everything under one ``EVALFLEET_HOME``. Only the driver writes."""

    def __init__(self, home: Path, journal_url: str | None = None) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.journal = Journal.open(home, journal_url)
        self.writer = ResultsWriter(home)
        self.orphans_removed = remove_orphans(home, self.journal.referenced_paths())

    def close(self) -> None:
        """Release the journal's connections."""
        self.journal.close()

    def commit(self, ctx: RowContext, results: Sequence[RunResult]) -> CommitReport:
        """Commit results exactly once: drop already-committed runs, write files, record them."""
        if not results:
            return CommitReport(0, 0)
        seen: set[str] = set()
        unique: list[RunResult] = []
        for r in results:
            if r.run_id not in seen:
                seen.add(r.run_id)
                unique.append(r)
        done = self.journal.done_among([r.run_id for r in unique])
        fresh = [r for r in unique if r.run_id not in done]
        duplicates = len(results) - len(fresh)
        if not fresh:
            if duplicates:
                self.journal.add_duplicates(ctx.eval_id, duplicates)
            return CommitReport(0, duplicates)
        batch = self.writer.write(ctx, fresh)
        rows = [CommitRow(r.run_id, r.status, r.passed, r.cost_usd, r.attempts) for r in fresh]
        try:
            n = self.journal.commit_batch(
                eval_id=ctx.eval_id, batch_id=batch.batch_id, results_path=batch.results_path,
                trajectories_path=batch.trajectories_path, rows=rows, duplicates=duplicates)
        except BaseException:
            self.writer.remove(batch)
            raise
        return CommitReport(n, duplicates)

    def results_paths(self, eval_id: str) -> list[str]:
        """Committed Parquet files of an eval."""
        return [b["results_path"] for b in self.journal.iter_batches(eval_id)]
