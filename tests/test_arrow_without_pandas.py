"""The driver writes Arrow without importing pandas (a quarter of a second and about 50 MB of every
`evalfleet run`); hiding pandas from pyarrow holds on the converting thread only."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from conftest import cli_in_process


def _python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_a_run_with_compaction_never_imports_pandas(make_plan: Callable[..., Path],
                                                    tmp_path: Path) -> None:
    # 1,500 runs in batches of 100: several results files, merged at the end
    plan = make_plan(n_tasks=1500, execution={"write_batch": 100})
    _, loaded, err = cli_in_process(["run", str(plan), "--home", str(tmp_path / "home"),
                                       "--quiet"])
    assert "1500/1500 runs committed" in err, err[-2000:]
    assert "pyarrow" in loaded and "pandas" not in loaded


def test_conversions_inside_do_not_import_pandas_and_other_threads_still_can() -> None:
    out = _python("""
        import sys, threading
        import pyarrow as pa
        from evalfleet._util.arrow import arrow_without_pandas

        got = {}
        def other():  # another thread imports pandas while this one converts
            import pandas
            got["other"] = pandas.__name__
        with arrow_without_pandas():
            t = pa.table({"a": ["x", None], "b": [1, None]})
            assert "pandas" not in sys.modules
            th = threading.Thread(target=other)
            th.start(); th.join()
        assert t.to_pylist() == [{"a": "x", "b": 1}, {"a": None, "b": None}]
        print(got["other"], type(t.to_pandas()).__name__)
    """)
    assert out == "pandas DataFrame"


def test_later_pandas_use_through_pyarrow_still_works() -> None:
    out = _python("""
        import sys
        import pyarrow as pa
        from evalfleet._util.arrow import arrow_without_pandas

        with arrow_without_pandas():
            with arrow_without_pandas():  # nested: still hidden after the inner one
                pass
            t = pa.table({"a": [1.5, None]})
            assert "pandas" not in sys.modules
        df = t.to_pandas()
        # pandas objects still convert as pandas objects (NaN a null) after the hidden check
        print(type(df).__name__, pa.array(df["a"]).to_pylist(), pa.table(df).to_pylist())
    """)
    assert out == "DataFrame [1.5, None] [{'a': 1.5}, {'a': None}]"
