"""The store facade: journal + results writer, with the exactly-once commit protocol.

Who writes what: only the driver that holds an eval (its claim in the journal) writes that
eval's rows and files and removes its orphans. Readers open the store with
:meth:`Store.open_readonly`, which creates, writes, sweeps and write-locks nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalfleet.errors import StoreError
from evalfleet.spec.result import RunResult
from evalfleet.store import fs
from evalfleet.store.journal import CommitRow, Journal
from evalfleet.store.results import (
    ORPHAN_GRACE_S,
    ResultsWriter,
    RowContext,
    eval_rel_dirs,
    private_dir,
    read_trajectory,
    remove_orphans,
)
from evalfleet.store.rollups import backfill as backfill_rollups
from evalfleet.store.rollups import fact_of

if TYPE_CHECKING:
    from evalfleet.store.compaction import CompactionReport, Policy


@dataclass(frozen=True, slots=True)
class CommitReport:
    """How a batch commit went."""

    committed: int
    duplicates: int


class Store:
    """Everything under one ``EVALFLEET_HOME``. Only the driver writes.

    ``Store(home)`` opens it for writing: the home is created with mode 0700 and the SQLite
    journal 0600 if they do not exist. Opening never sweeps anything; the driver removes its
    own eval's orphans with :meth:`remove_orphans` once it holds the eval.

    ``warehouse_url`` (a plain path or an fsspec URL; default the home) is where ``results/``
    and ``trajectories/`` live (:attr:`root`); the journal stays in the home (or PostgreSQL).

    Raises:
        SpecError: ``warehouse_url`` names a protocol fsspec does not know or cannot load.
    """

    def __init__(self, home: Path, journal_url: str | None = None, *,
                 readonly: bool = False, warehouse_url: str | None = None) -> None:
        self.home = home
        self.root = fs.as_root(home) if warehouse_url is None else fs.root_of(warehouse_url)
        """Where results and trajectory files live (:mod:`evalfleet.store.fs`)."""
        self._elsewhere = warehouse_url is not None  # readers get absolute locations
        self.readonly = readonly
        if readonly:
            self.journal = Journal.open_readonly(home, journal_url)
        else:
            private_dir(home)
            self.journal = Journal.open(home, journal_url)
            try:
                # batches from before rollups, once; those predate warehouses elsewhere, so a
                # remote root has none of them to roll up
                if self.root.local:
                    backfill_rollups(self.root.local_path(""), self.journal)
            except BaseException:
                self.journal.close()
                raise
        self.writer = ResultsWriter(self.root)
        self._policy: Policy | None = None
        self._auto: tuple[str, str] | None = None  # (eval, driver) compacted as batches commit
        self._commits_since_look = 0

    @classmethod
    def open_readonly(cls, home: Path, journal_url: str | None = None, *,
                      warehouse_url: str | None = None) -> Store:
        """The store for a reader (status, report, query, compare).

        Raises:
            UnknownEvalError: the home or its journal does not exist ("no evals in HOME").
            SpecError: ``warehouse_url`` names a protocol fsspec does not know.
        """
        return cls(home, journal_url, readonly=True, warehouse_url=warehouse_url)

    def close(self) -> None:
        """Release the journal's connections."""
        self.journal.close()

    def _check_writable(self) -> None:
        if self.readonly:
            raise StoreError("this store was opened read-only")

    def commit(self, ctx: RowContext, results: Sequence[RunResult]) -> CommitReport:
        """Commit results exactly once: drop already-committed runs, write files, record them."""
        self._check_writable()
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
        # the journal's cost is the run's total (model + infrastructure): what budgets count
        rows = [CommitRow(r.run_id, r.status, r.passed, r.total_cost_usd, r.attempts,
                          fact_of(ctx, r)) for r in fresh]  # facts: the rollups' (same txn)
        try:
            n = self.journal.commit_batch(
                eval_id=ctx.eval_id, batch_id=batch.batch_id, results_path=batch.results_path,
                trajectories_path=batch.trajectories_path, rows=rows, duplicates=duplicates)
        except BaseException:
            # Remove the files unless the commit happened after all (an error on the way
            # back): deleting a committed batch would lose rows for good, while a leftover
            # orphan is only removed later by this eval's driver.
            committed = True
            with contextlib.suppress(Exception):
                committed = self.journal.has_batch(batch.batch_id)
            if not committed:
                self.writer.remove(batch)
            raise
        if self._auto is not None and self._auto[0] == ctx.eval_id:
            self._commits_since_look += 1
            if self._commits_since_look >= self.compaction_policy.fan_in:
                self._commits_since_look = 0
                self.maintain(ctx.eval_id, self._auto[1], final=False)
        return CommitReport(n, duplicates)

    def auto_compact(self, eval_id: str, driver: str) -> None:
        """As the eval's driver: purge its superseded files past their grace, and from now on
        merge its small files as batches commit (a look every ``fan_in`` commits)."""
        self._auto = (eval_id, driver)
        self._commits_since_look = 0
        self.maintain(eval_id, driver, final=False)

    @property
    def compaction_policy(self) -> Policy:
        """How this store merges files (default: compaction's ``DEFAULT_POLICY``)."""
        if self._policy is None:
            # compaction (and the pyarrow it loads) is imported when first needed: readers
            # that only consult the journal (`status`, `plan review`) never need it
            from evalfleet.store.compaction import DEFAULT_POLICY

            self._policy = DEFAULT_POLICY
        return self._policy

    @compaction_policy.setter
    def compaction_policy(self, policy: Policy) -> None:
        self._policy = policy

    def maintain(self, eval_id: str, driver: str, *, final: bool) -> CompactionReport | None:
        """Compact the eval (``final``: everything small, as when it ends) as its driver, and
        purge files superseded past their grace, of every eval (so a finished eval's last
        superseded files go when the next driver in the home works); a failure is logged, not
        raised: the rows are committed either way, and stay in the files they are in."""
        try:
            rep = self.compact(eval_id, driver, final=final)
            rep.purged = self.purge_retired()
            return rep
        except Exception as exc:  # an optimisation must not fail the eval
            from evalfleet.store.compaction import log

            log.warning("compaction of eval %s failed (its rows stay where they "
                                   "are): %s", eval_id, exc)
            return None

    def compact(self, eval_id: str, driver: str, *, final: bool, dry_run: bool = False,
                now: float | None = None) -> CompactionReport:
        """Merge the eval's small results files (:mod:`evalfleet.store.compaction`).

        Raises:
            StoreError: ``driver`` does not hold the eval (unless ``dry_run``), or a merge
                failed (that merge is not recorded; earlier ones are).
        """
        if not dry_run:
            self._check_writable()
            if not self.journal.holds(eval_id, driver):
                raise StoreError(f"{driver} does not hold eval {eval_id}; only its driver "
                                 "may compact it")
        from evalfleet.store import compaction

        return compaction.compact_eval(self.root, self.journal, eval_id, final=final,
                                       policy=self.compaction_policy, dry_run=dry_run, now=now)

    def purge_retired(self, eval_id: str | None = None, *, grace_s: float = ORPHAN_GRACE_S,
                      now: float | None = None) -> list[str]:
        """Delete files of batches superseded by compaction more than ``grace_s`` ago."""
        self._check_writable()
        from evalfleet.store import compaction

        return compaction.purge_retired(self.root, self.journal, eval_id, grace_s=grace_s,
                                        now=now)

    def remove_orphans(self, eval_id: str, driver: str, *,
                       grace_s: float = ORPHAN_GRACE_S) -> list[str]:
        """Remove the eval's files that no committed batch references (after a crash).

        Only the eval's driver may do this, under its claim: files of other evals, files
        younger than ``grace_s`` and writes in progress are left alone.

        Raises:
            StoreError: ``driver`` does not hold the eval, or the store is read-only.
        """
        self._check_writable()
        if not self.journal.holds(eval_id, driver):
            raise StoreError(f"{driver} does not hold eval {eval_id}; only its driver may "
                             "remove its files")
        return remove_orphans(self.root, eval_id, self.journal.referenced_paths(eval_id),
                              grace_s=grace_s)

    def results_paths(self, eval_id: str) -> list[str]:
        """Live committed Parquet files of an eval (one journal read: every row once), as
        :func:`evalfleet.store.warehouse.connect` takes them: relative to the home, or with
        a warehouse elsewhere, absolute paths or URLs."""
        return self._locations(self.journal.live_results_paths(eval_id))

    def all_results_paths(self) -> list[str]:
        """Live committed Parquet files of every eval in the home (one journal read), as
        :meth:`results_paths` gives them."""
        return self._locations(self.journal.live_results_paths())

    def results_location(self, eval_id: str) -> str:
        """The folder of the eval's results files: a path, or a URL when the warehouse is on
        object storage (what the CLI shows at the end of a run)."""
        return fs.location(self.root, eval_rel_dirs(eval_id)[0])

    def _locations(self, rels: list[str]) -> list[str]:
        if not self._elsewhere:
            return rels  # the home's own: relative, as the journal has them
        return [fs.location(self.root, r) for r in rels]

    def read_trajectory(self, uri: str, run_id: str | None = None) -> dict[str, Any] | None:
        """One run's trajectory from its row's ``trajectory_uri``, under the warehouse root
        (:func:`evalfleet.store.results.read_trajectory`); None when it is gone."""
        return read_trajectory(self.root, uri, run_id)
