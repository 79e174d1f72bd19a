"""Storage: the journal, the Parquet warehouse and trajectory blobs.

Names are imported on first use: a reader that only needs the journal does not import pyarrow.
"""

from typing import TYPE_CHECKING

from evalfleet._util.imports import lazy_exports

if TYPE_CHECKING:
    from evalfleet.store.journal import CommitRow, Journal, LeasedRun, driver_name
    from evalfleet.store.results import (
        RESULTS_SCHEMA,
        ResultsWriter,
        RowContext,
        read_trajectory,
        remove_orphans,
    )
    from evalfleet.store.store import CommitReport, Store

_EXPORTS = {
    "CommitRow": "evalfleet.store.journal", "Journal": "evalfleet.store.journal",
    "LeasedRun": "evalfleet.store.journal", "driver_name": "evalfleet.store.journal",
    "RESULTS_SCHEMA": "evalfleet.store.results", "ResultsWriter": "evalfleet.store.results",
    "RowContext": "evalfleet.store.results", "read_trajectory": "evalfleet.store.results",
    "remove_orphans": "evalfleet.store.results",
    "CommitReport": "evalfleet.store.store", "Store": "evalfleet.store.store",
}

__all__ = ["RESULTS_SCHEMA", "CommitReport", "CommitRow", "Journal", "LeasedRun",
           "ResultsWriter", "RowContext", "Store", "driver_name", "read_trajectory",
           "remove_orphans"]

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
