"""A live progress display: done / running, passed / failed / errored, runs per second, ETA,
dollars spent (of the budget) and the projected total."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from evalfleet._util.formatting import money


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _spending(st: Any) -> str:
    """``$spent[ of $budget], projected $X`` (projected ``?`` until a run has run)."""
    of = f" of {money(st.budget_usd)}" if st.budget_usd is not None else ""
    proj = st.projected_usd
    return f"{money(st.cost_usd)}{of}, projected {'?' if proj is None else money(proj)}"


def _budget_note(st: Any) -> str:
    parts = []
    if st.eval_stopped:
        parts.append("the eval's budget is reached: no new runs, runs in flight finish")
    if st.agents_stopped:
        parts.append(f"budget reached for {', '.join(st.agents_stopped)}: their runs not "
                     "started are cancelled")
    return "; ".join(parts)


class RichProgress:
    """Implements :class:`evalfleet.api.ProgressHook` with a rich Live display on stderr."""

    def __init__(self, console: Console | None = None, label: str = "") -> None:
        self.console = console or Console(stderr=True)
        self.label = label
        self._live: Live | None = None
        self._stats: Any = None
        self._eval_id = ""
        self._sandbox = ""
        self._t0 = time.monotonic()
        self._done0 = 0

    def _render(self) -> Any:
        st = self._stats
        total = max(st.planned, 1)
        done = st.already_done + st.done
        elapsed = time.monotonic() - self._t0
        rate = st.done / elapsed if elapsed > 0 else 0.0
        left = st.planned - done - st.quarantined_runs  # quarantined runs never run
        eta = left / rate if rate > 0 else None
        bar = Table.grid(padding=(0, 1))
        bar.add_row(Text(self.label or "eval", style="bold"),
                    ProgressBar(total=total, completed=done, width=24),
                    Text(f"{done}/{st.planned} done"), Text(f"{rate:.1f} runs/s"),
                    Text(f"ETA {_fmt_eta(eta)}"), Text(_spending(st), style="green"))
        # passed and failed are scored runs (a wrong answer fails like an agent error);
        # errored runs (infra, scorer, configuration) are left out of the score
        detail = Text.assemble(
            (f"running {st.running}", "cyan"), "  ",
            (f"passed {st.passed}", "green" if st.passed else "dim"), "  ",
            (f"failed {st.failed}", "red" if st.failed else "dim"), "  ",
            (f"errored {st.errored}", "yellow" if st.errored else "dim"), "  ",
            (f"retries {st.retries}", "dim"), "  ",
            *((f"quarantined tasks {len(st.quarantined_tasks)}", "red"), "  ")
            if st.quarantined_tasks else (),
            (f"sandbox {self._sandbox}", "dim"))
        stopped = _budget_note(st)
        return Group(bar, detail, Text(stopped, style="yellow")) if stopped else Group(bar, detail)

    def start(self, eval_id: str, stats: Any, sandbox: str,
              warnings: Sequence[str] = ()) -> None:
        self._stats = stats
        self._eval_id = eval_id
        self._sandbox = sandbox
        self._t0 = time.monotonic()
        self.console.print(f"eval [bold]{eval_id}[/bold]: {stats.planned} runs planned, "
                           f"{stats.already_done} already done; sandbox {sandbox}")
        for w in warnings:
            self.console.print(f"[yellow]warning:[/yellow] {escape(w)}")
        self._live = Live(get_renderable=self._render, console=self.console,
                          refresh_per_second=4, transient=False)
        self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
            self.console.print()
