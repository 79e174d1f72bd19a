"""Reports and comparisons as Markdown and standalone HTML, from a real small eval."""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from evalfleet import api
from evalfleet.analysis.export import (
    compare_html,
    compare_markdown,
    pct,
    report_html,
    report_markdown,
)
from evalfleet.settings import Settings
from evalfleet.spec import load_plan

from .conftest import HOSTILE_CATEGORY, SmallEval

HOSTILE_TASK = "t<script>alert(1)</script>&amp;"
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr"}


class StrictPage(HTMLParser):
    """Records tags and text; checks nesting and that the page loads nothing external."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.errors: list[str] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, _ in attrs:
            if name in ("src", "href") or name.startswith("on"):
                self.errors.append(f"<{tag} {name}=...>")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> with open {self.stack}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> StrictPage:
    parser = StrictPage()
    parser.feed(page)
    parser.close()
    assert parser.doctype, "missing <!DOCTYPE html>"
    assert not parser.errors, parser.errors
    assert parser.stack == [], parser.stack
    assert "script" not in parser.tags
    assert {"html", "head", "title", "style", "body", "table"} <= set(parser.tags)
    return parser


@pytest.fixture(scope="module")
def rep(small_eval: SmallEval) -> dict[str, Any]:
    return api.report(small_eval.eval_id, settings=small_eval.settings)


@pytest.fixture(scope="module")
def cmp(small_eval: SmallEval) -> dict[str, Any]:
    e = small_eval.eval_id
    return api.compare([f"{e}/good@1", f"{e}/mixed@2"], settings=small_eval.settings)


def test_pct_matches_the_terminal() -> None:
    assert pct(0.713, 0.692, 0.734) == "71.3% ± 2.1"
    assert pct(0.75, -0.2, 1.3) == "75.0% [0.0-100.0]"
    assert pct(None) == "-" and pct(float("nan")) == "-"


def test_report_markdown_has_the_tables_and_numbers(rep: dict[str, Any]) -> None:
    md = report_markdown(rep)
    lines = md.splitlines()
    assert lines[0] == f"# Report {rep['eval_id']}"
    assert lines[2].startswith("Coverage: 48/48 planned runs scored (complete)")
    assert "PARTIAL" not in md and "SIMULATED" not in md
    mixed = rep["agents"][1]
    o = mixed["overall"]
    assert o["mean"] == 0.375
    cell = pct(o["mean"], o["ci_low"], o["ci_high"]).replace("[", "\\[").replace("]", "\\]")
    assert f"| mixed@2 | {cell} | {100 * o['se']:.1f} | 8 | 16 | 2/2.0 |" in md
    # 16/16 runs passed: the interval is Wilson's, shown with its limits, never "± 0.0"
    assert re.search(r"\| good@1 \| 100\.0% \\\[\d+\.\d-100\.0\\\] \|", md), md
    assert "± 0.0" not in md
    for heading in ("## good@1", "## mixed@2", "## bad@1", "### By category",
                    "### By difficulty", "### pass@k and pass^k", "### Worst 8 tasks",
                    "### Cost, latency, tokens", "### Errors"):
        assert heading in lines, heading
    assert "| k | pass@k (any of k) | pass^k (all k) |" in md
    assert "| agent\\_error | 16 |" in md  # boom's runs are agent failures, scored 0
    section = md.split("## mixed@2")[1].split("## bad@1")[0]
    worst = re.findall(r"^\| (t\d) \|", section, flags=re.MULTILINE)
    assert worst == ["t1", "t3", "t4", "t6", "t7", "t0", "t2", "t5"]  # worst first
    # Wilson 0 of 2: upper limit z^2 / (2 + z^2) = 0.658
    assert "| t4 | plain | 2 | 0/2 | 0.0% | 0.0-65.8% |" in section
    assert "| t2 | plain | 3 | 2/2 | 100.0% | 34.2-100.0% |" in section
    for metric in ("latency p50", "latency p90", "latency p99", "cost per success",
                   "tokens per run"):
        assert f"| {metric} |" in md


def test_report_html_is_a_valid_standalone_page(rep: dict[str, Any]) -> None:
    page = report_html(rep)
    parsed = parse(page)
    text = "".join(parsed.text)
    assert HOSTILE_CATEGORY in text  # shown as text ...
    assert HOSTILE_CATEGORY not in page  # ... because it is escaped
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "Coverage: 48/48 planned runs scored (complete)" in text


def test_hostile_task_id_is_escaped_everywhere(rep: dict[str, Any]) -> None:
    # the task id pattern forbids '<', but results may come from anywhere: escape regardless
    hostile = copy.deepcopy(rep)
    hostile["agents"][1]["tasks"][0]["task_id"] = HOSTILE_TASK
    page = report_html(hostile)
    assert HOSTILE_TASK in "".join(parse(page).text)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp;" in page
    md = report_markdown(hostile)
    assert "<script>" not in md and "t\\<script\\>alert(1)\\</script\\>\\&amp;" in md


def test_partial_coverage_is_flagged(small_eval: SmallEval, tmp_path: Path) -> None:
    # a real eval that has not run yet: every run is missing (own home: the shared one stays
    # with one eval)
    settings = Settings(home=tmp_path / "home")
    plan = load_plan(small_eval.plan)
    store = api.open_store(settings)
    try:
        eval_id = api.create_eval(store, plan, api.validate_plan(plan))
    finally:
        store.close()
    fresh = api.report(eval_id, settings=settings)
    md = report_markdown(fresh)
    assert md.splitlines()[2].startswith("**Coverage: 0/48 planned runs scored (PARTIAL)")
    assert "48 not run" in md and "| good@1 | no results yet |" in md
    assert "PARTIAL" in "".join(parse(report_html(fresh)).text)


def test_infra_errors_are_missing_data_not_failures(rep: dict[str, Any]) -> None:
    errored = copy.deepcopy(rep)
    errored["coverage"].update(completed=rep["coverage"]["completed"] - 3, errored=3,
                               scored=rep["coverage"]["scored"] - 3)
    md = report_markdown(errored)
    assert "45/48 planned runs scored (PARTIAL)" in md
    assert "3 errored (infra, scorer or configuration), 0 cancelled, 0 not run" in md


def test_simulated_label(rep: dict[str, Any]) -> None:
    md = report_markdown({**rep, "simulated": True})
    assert md.splitlines()[4] == ("**SIMULATED model (evalfleet.testing.simulator): these "
                                  "scores are not those of a real model.**")


def test_compare_markdown(cmp: dict[str, Any]) -> None:
    md = compare_markdown(cmp)
    d = cmp["diff"]
    assert d["estimate"] == -0.625
    assert f"NEW - BASE = -62.5 pts (95% CI {100 * d['ci_low']:+.1f} to " in md
    # 8 tasks with K = 2: the exact sign-flip test decides, and with 5 tasks changed all in
    # one direction it cannot go below 2/2^5, whatever a t-test on SE says
    assert d["test"] == "permutation-exact" and d["p_value"] == pytest.approx(2 / 32)
    assert "100.0% → 37.5%" in md and "verdict: no significant change" in md
    assert "exact permutation p = 0.0625" in md
    assert "can detect about" in md
    assert "| category | tasks | BASE | NEW | diff pts | 95% CI | p | test | Holm | BH |" in md
    assert "\\<script\\>alert(\"x\")\\</script\\>" in md and "<script>" not in md
    assert "## Regressions\n\nNone." in md and cmp["regressions"] == []
    assert "5 broke, 0 fixed" in md
    for tid in ("t1", "t3", "t4", "t6", "t7"):
        assert f"| {tid} | " in md
    assert "| cost per run |" in md and "| mean latency |" in md
    assert "Paired on 8 shared tasks. Only in BASE: 0" in md
    assert "Pareto" in md  # two sides with results: the score/cost view


def test_compare_html_and_partial_status(cmp: dict[str, Any]) -> None:
    page = compare_html(cmp)
    text = "".join(parse(page).text)
    assert HOSTILE_CATEGORY in text and HOSTILE_CATEGORY not in page
    assert "PARTIAL" not in text
    running = {**cmp, "status": {eid: "running" for eid in cmp["status"]}}
    assert "PARTIAL: eval" in compare_markdown(running)


def test_compare_several_sides(small_eval: SmallEval) -> None:
    e = small_eval.eval_id
    multi = api.compare([f"{e}/good@1", f"{e}/mixed@2", f"{e}/bad@1"],
                        settings=small_eval.settings)
    md = compare_markdown(multi)
    assert f"## {e}/good@1 vs {e}/mixed@2" in md and f"## {e}/good@1 vs {e}/bad@1" in md
    assert "NEW - BASE = -100.0 pts" in md
    assert "## Score against cost (Pareto)" in md
    parse(compare_html(multi))
