"""Storage: the journal, the Parquet warehouse and trajectory blobs."""

from evalfleet.store.journal import CommitRow, Journal, LeasedRun, driver_name
from evalfleet.store.results import (
    RESULTS_SCHEMA,
    ResultsWriter,
    RowContext,
    read_trajectory,
    remove_orphans,
)
from evalfleet.store.store import CommitReport, Store

__all__ = ["RESULTS_SCHEMA", "CommitReport", "CommitRow", "Journal", "LeasedRun",
           "ResultsWriter", "RowContext", "Store", "driver_name", "read_trajectory",
           "remove_orphans"]
