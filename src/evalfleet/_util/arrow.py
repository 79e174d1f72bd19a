"""Convert Python values to Arrow without importing pandas.

Every conversion of Python data by pyarrow (``pa.array``, ``pa.table`` from lists) first tries
to import pandas, to tell pandas objects and missing-value markers from plain values, and tries
again at the next conversion as long as pandas is not imported. With pandas installed
(statsmodels requires it) the driver's first commit would import it: about a quarter of a
second and about 50 MB of memory in a process that hands pyarrow plain lists only.

Inside :func:`arrow_without_pandas`, ``import pandas`` fails *on the calling thread only*, so
pyarrow converts the values as the plain Python objects they are; other threads import as
usual. Once pandas is imported anyway (by the analysis, say), nothing is hidden any more.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

__all__ = ["arrow_without_pandas"]

_state = threading.local()


class _PandasHidden:
    """A meta path finder that fails imports of pandas on threads inside
    :func:`arrow_without_pandas`, and finds nothing (the next finder decides) elsewhere."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if getattr(_state, "depth", 0) and (name == "pandas" or name.startswith("pandas.")):
            raise ModuleNotFoundError("pandas is not used by this conversion", name=name)


_FINDER = _PandasHidden()
if not any(isinstance(f, _PandasHidden) for f in sys.meta_path):
    sys.meta_path.insert(0, _FINDER)


@contextlib.contextmanager
def arrow_without_pandas() -> Iterator[None]:
    """Arrow conversions inside do not import pandas (on this thread)."""
    if "pandas" in sys.modules:  # imported already: pyarrow uses it without importing
        yield
        return
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
