"""Reports and comparisons as Markdown and as standalone HTML files.

Both formats render the same blocks (headings, paragraphs, tables) built from the dicts of
`evalfleet.analysis.report.build_report` and `evalfleet.analysis.compare.compare`. Every piece
of text is escaped when rendered (task ids and categories are user data): ``html.escape`` for
HTML, backslash escapes for Markdown. The HTML has inline CSS only and no scripts.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evalfleet._util.formatting import (
    count,
    excluded_text,
    interval,
    mde_text,
    method_label,
    missing,
    money,
    money_delta,
    pct,
    pts,
    pval,
    secs,
)

__all__ = ["compare_html", "compare_markdown", "report_html", "report_markdown"]

WORST_TASKS = 20
"""Tasks listed per agent in the worst-tasks table."""
MAX_FLIPS = 50
"""Flipped tasks listed per comparison."""


@dataclass(frozen=True, slots=True)
class _Heading:
    level: int
    text: str


@dataclass(frozen=True, slots=True)
class _Para:
    text: str
    kind: str = ""  # "", "warn", "bad", "good", "note"


@dataclass(frozen=True, slots=True)
class _Table:
    headers: Sequence[str]
    rows: list[Sequence[str]]
    text: Sequence[int] = (0,)  # indices of text columns; the others are right-aligned numbers
    caption: str = ""


_Block = _Heading | _Para | _Table


@dataclass(slots=True)
class _Doc:
    title: str
    blocks: list[_Block] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(_Heading(level, text))

    def p(self, text: str, kind: str = "") -> None:
        self.blocks.append(_Para(text, kind))

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[str]], *,
              text: Sequence[int] = (0,), caption: str = "") -> None:
        self.blocks.append(_Table(headers, list(rows), text, caption))


def _agent(a: dict[str, Any]) -> str:
    return f"{a['agent_name']}@{a['agent_version']}"


def _coverage(doc: _Doc, rep: dict[str, Any]) -> None:
    cov = rep["coverage"]
    planned = int(cov["planned"])
    scored = int(cov.get("scored", int(cov.get("completed", 0)) + int(cov.get("failed", 0))))
    errored, cancelled = int(cov.get("errored", 0)), int(cov.get("cancelled", 0))
    missing = max(0, planned - scored)
    not_run = max(0, missing - errored - cancelled)
    partial = bool(cov.get("partial")) or missing > 0
    state = "PARTIAL" if partial else "complete"
    doc.p(f"Coverage: {scored:,}/{planned:,} planned runs scored ({state}); status "
          f"{rep['status']}. Missing data, not failures: {errored:,} errored (infra, scorer "
          "or configuration), "
          f"{cancelled:,} cancelled, {not_run:,} not run. Agent failures scored as 0: "
          f"{int(cov.get('failed', 0)):,}.", "warn" if partial else "")
    if rep.get("simulated"):
        doc.p("SIMULATED model (evalfleet.testing.simulator): these scores are not those of a "
              "real model.", "warn")
    if rep.get("duplicates_dropped"):
        doc.p(f"{rep['duplicates_dropped']} duplicate results were dropped (exactly-once "
              "commit).", "note")


def _summary(doc: _Doc, agents: list[dict[str, Any]]) -> None:
    rows = []
    for a in agents:
        o = a.get("overall")
        if not o:
            rows.append((_agent(a), "no results yet", *["-"] * 7))
            continue
        k = a["runs_per_task"]
        ex = a.get("excluded") or {}
        rows.append((_agent(a), pct(o["mean"], o["ci_low"], o["ci_high"]), pts(o["se"], False),
                     count(o["n_tasks"]), count(o["n_runs"]), f"{k['min']}/{k['mean']:.1f}",
                     count(ex.get("total")) if ex else "-",
                     "unpriced" if _unpriced(a) else money(a["cost"]["total_usd"]),
                     secs(a["latency"]["p50"])))
    doc.table(("agent", "score ± 95% CI", "SE pts", "tasks", "runs", "K min/mean", "excluded",
               "cost", "p50"), rows,
              caption="Mean score over tasks (each task weighs the same), 95% CI half-width; "
                      "excluded: runs left out of the score (infra, scorer, configuration "
                      "errors, cancelled)")


def _groups(doc: _Doc, title: str, key: str, groups: list[dict[str, Any]]) -> None:
    if not groups:
        return
    doc.h(3, title)
    doc.table((key, "score ± 95% CI", "SE pts", "tasks", "runs"),
              [(str(g[key]), pct(g["mean"], g["ci_low"], g["ci_high"]), pts(g["se"], False),
                count(g["n_tasks"]), count(g.get("n_runs"))) for g in groups])


def _agent_section(doc: _Doc, a: dict[str, Any]) -> None:
    doc.h(2, _agent(a))
    o = a.get("overall")
    if not o:
        doc.p("No scored runs yet.", "warn")
        return
    clustered = o.get("clustered_by", "task")
    doc.p(f"Score {pct(o['mean'], o['ci_low'], o['ci_high'])} (95% CI "
          f"{interval(o['ci_low'], o['ci_high'])}, SE {pts(o['se'], False)} pts) over "
          f"{count(o['n_tasks'])} tasks and {count(o['n_runs'])} runs, clustered by "
          f"{clustered}; method: {o['method']}. Flaky tasks (passed some runs, failed others): "
          f"{a.get('flaky_tasks', 0)}.")
    ex = a.get("excluded") or {}
    if ex:
        doc.p("Excluded from the score (missing data, not failures): " + ", ".join(
            f"{k} {ex.get(k, 0):,}" for k in ("infra_error", "scorer_error", "config_error",
                                             "cancelled")) + ".",
              "warn" if ex.get("total") else "")
    _groups(doc, "By category", "category", a.get("by_category", []))
    _groups(doc, "By difficulty", "difficulty", a.get("by_difficulty", []))
    if a.get("pass_k"):
        doc.h(3, "pass@k and pass^k")
        doc.table(("k", "pass@k (any of k)", "pass^k (all k)"),
                  [(str(r["k"]),
                    pct(r["pass_at_k"]["mean"], r["pass_at_k"]["ci_low"],
                        r["pass_at_k"]["ci_high"]),
                    pct(r["pass_hat_k"]["mean"], r["pass_hat_k"]["ci_low"],
                        r["pass_hat_k"]["ci_high"])) for r in a["pass_k"]],
                  caption="Unbiased estimators over the runs of each task")
    tasks = a.get("tasks", [])[:WORST_TASKS]
    if tasks:
        doc.h(3, f"Worst {len(tasks)} tasks")
        doc.table(("task", "category", "difficulty", "passed/runs", "rate", "95% Wilson"),
                  [(str(t["task_id"]), str(t["category"]), str(t["difficulty"]),
                    f"{t['passed']}/{t['n_runs']}", pct(t["mean"]),
                    interval(t.get("ci_low"), t.get("ci_high"))) for t in tasks], text=(0, 1))
    cost, ps = a["cost"], a["cost"].get("per_success_ci") or {}
    lat, tok = a["latency"], a["tokens"]
    doc.h(3, "Cost, latency, tokens")
    qi = lat.get("intervals", {})
    unpriced = _unpriced(a)
    if unpriced:
        doc.p(f"UNPRICED: model {a.get('model')!r} has no price, so its model cost is unknown, "
              "not $0 (give the agent 'price: 0' if it is free, a price mapping, or a price "
              "file in EVALFLEET_PRICES).", "warn")
    doc.table(("metric", "value", "95% CI"), [
        ("cost, model", "unpriced" if unpriced else money(cost.get("model_usd")), ""),
        ("cost, infrastructure", money(cost.get("infra_usd")), ""),
        ("cost, total (model + infra)", money(cost["total_usd"]), ""),
        ("human review (expected)", money(cost.get("review_usd_expected")), ""),
        ("cost per run", money(cost["mean_per_run"]), ""),
        ("cost per success", money(cost["per_success"]),
         f"{money(ps.get('ci_low'))} to {money(ps.get('ci_high'))}"
         if not missing(ps.get("ci_low")) else "-"),
        *[(f"latency {q}", secs(lat.get(q)),
           f"{secs(qi.get(q, {}).get('ci_low'))} to {secs(qi.get(q, {}).get('ci_high'))}"
           if q in qi else "-") for q in ("p50", "p90", "p99")],
        ("tokens in", count(tok["in"]), ""),
        ("tokens in, cached", count(tok.get("cached")), ""),
        ("tokens out", count(tok["out"]), ""),
        ("tokens per run", count(tok["mean_per_run"]), ""),
    ])
    fr = a.get("failing_runs") or {}
    if fr.get("count"):
        doc.h(3, "Failing runs")
        shown = fr.get("runs", [])
        doc.table(("run id", "task", "score", "error kind"),
                  [(str(r["run_id"]), str(r["task_id"]), pct(r["score"]),
                    str(r.get("error_kind") or "-")) for r in shown], text=(0, 1, 3),
                  caption=f"{len(shown)} of {fr['count']:,} failing runs; "
                          "see one with: evalfleet show RUN_ID")
    doc.h(3, "Errors")
    errors = a.get("errors") or {}
    if errors:
        doc.table(("error kind", "runs"), [(str(k), count(v)) for k, v in errors.items()],
                  caption="infra_error, scorer_error, config_error and cancelled are missing "
                          "data; agent_error and task_timeout count as failures")
    else:
        doc.p("None.")


def _unpriced(a: dict[str, Any]) -> bool:
    return bool((a.get("cost") or {}).get("unpriced"))


def _spend(d: dict[str, Any], unpriced: bool) -> tuple[str, ...]:
    return (count(d["runs"]), "unpriced" if unpriced else money(d["model_usd"]),
            money(d["infra_usd"]), ("at least " if unpriced else "") + money(d["total_usd"]),
            money(d["review_usd_expected"]))


def _cost_breakdown(doc: _Doc, rep: dict[str, Any]) -> None:
    cost = rep.get("cost")
    agents = [a for a in rep["agents"] if a.get("cost")]
    if not cost or not agents:
        return
    r = cost["rates"]
    doc.h(2, "Cost")
    doc.p(f"Eval type: {cost['eval_type']}. Total = model (metered tokens: input, cached "
          f"input, output) + infrastructure (sandbox seconds of every attempt x "
          f"{money(r['infra_usd_per_hour'])} per hour, {r['capacity']}). Human review is "
          f"expected, not metered: review fraction {r['review_fraction']:g} x scored runs x "
          f"{money(r['review_usd_per_run'])}; total with review "
          f"{money(cost['total_with_review_usd'])}.")
    heads = ("runs", "model", "infra", "total", "review (expected)")
    doc.table(("agent", *heads, "per run", "per success", "tokens in / cached / out"),
              [(_agent(a), *_spend(a["cost"], _unpriced(a)), money(a["cost"]["mean_per_run"]),
                "-" if _unpriced(a) else money(a["cost"]["per_success"]),
                f"{count(a['tokens']['in'])} / {count(a['tokens'].get('cached'))} / "
                f"{count(a['tokens']['out'])}") for a in agents])
    tier_unpriced = {a["cost"]["model_tier"] for a in agents if _unpriced(a)}
    doc.table(("model tier", *heads),
              [(str(t["model_tier"]), *_spend(t, t["model_tier"] in tier_unpriced))
               for t in cost["by_tier"]], caption="By model tier")
    doc.table(("category", *heads),
              [(str(c["category"]), *_spend(c, bool(cost["unpriced"])))
               for c in cost["by_category"]], caption="By task category")


def _report_doc(rep: dict[str, Any]) -> _Doc:
    doc = _Doc(f"evalfleet report {rep['eval_id']}")
    doc.h(1, f"Report {rep['eval_id']}")
    _coverage(doc, rep)
    doc.p(f"Plan {rep.get('plan_name', '-')}, suite {rep.get('suite', '-')}.")
    _summary(doc, rep["agents"])
    _cost_breakdown(doc, rep)
    for a in rep["agents"]:
        _agent_section(doc, a)
    return doc


def _diff_row(name: str, d: dict[str, Any], fmt: str) -> tuple[str, ...]:
    if fmt == "money":
        return (name, money(d["mean_base"]), money(d["mean_new"]), money_delta(d["estimate"]),
                f"{money_delta(d['ci_low'])} to {money_delta(d['ci_high'])}", pval(d["p_value"]))
    return (name, secs(d["mean_base"]), secs(d["mean_new"]), secs(d["estimate"], True),
            f"{secs(d['ci_low'], True)} to {secs(d['ci_high'], True)}", pval(d["p_value"]))


def _pair(doc: _Doc, cmp: dict[str, Any], level: int) -> None:
    doc.p(f"BASE {cmp['base']}; NEW {cmp['new']}.")
    un = cmp["unshared"]
    ob, on = un["only_base"], un["only_new"]
    doc.p(f"Paired on {cmp['n_shared_tasks']:,} shared tasks. Only in BASE: {ob['count']:,} "
          f"({ob['not_in_other_plan']:,} not in NEW's plan, {ob['not_scored_in_other']:,} not "
          f"scored in NEW). Only in NEW: {on['count']:,} ({on['not_in_other_plan']:,} not in "
          f"BASE's plan, {on['not_scored_in_other']:,} not scored in BASE).",
          "warn" if ob["count"] or on["count"] else "")
    d = cmp.get("diff")
    if not d:
        doc.p("No shared scored tasks: nothing to compare.", "warn")
        return
    verdict = cmp.get("overall_verdict", "")
    doc.p(f"NEW - BASE = {pts(d['estimate'])} pts (95% CI {pts(d['ci_low'])} to "
          f"{pts(d['ci_high'])}, SE {pts(d['se'], False)}, {method_label(d)} "
          f"p = {pval(d['p_value'])}); "
          f"{pct(d['mean_base'])} → {pct(d['mean_new'])}; verdict: {verdict}.",
          {"regression": "bad", "improvement": "good"}.get(verdict, ""))
    corr = d.get("correlation")
    doc.p(f"Method: {d['method']}; per-task correlation "
          f"{'-' if missing(corr) else f'{corr:.2f}'}; practical margin "
          f"{100 * cmp['margin']:.1f} pts, alpha {cmp['alpha']:g}.", "note")
    mc = d.get("mcnemar")
    if mc:
        doc.p(f"McNemar: {mc['b_new_only']} tasks pass only in NEW, {mc['c_base_only']} only in "
              f"BASE; mid-p {pval(mc['p_midp'])}, exact p {pval(mc['p_exact'])}.", "note")
    text = mde_text(cmp.get("mde_note"))
    doc.p(text[0].upper() + text[1:] + ".", "note")
    flag = excluded_text(cmp.get("excluded"))
    if flag:
        doc.p(flag + ".", "warn")
    if cmp.get("by_category"):
        doc.h(level, "By category")
        doc.table(("category", "tasks", "BASE", "NEW", "diff pts", "95% CI", "p", "test",
                   "Holm", "BH"),
                  [(str(c["category"]), count(c["n_tasks"]), pct(c["mean_base"]),
                    pct(c["mean_new"]), pts(c["estimate"]),
                    f"{pts(c['ci_low'])} to {pts(c['ci_high'])}", pval(c["p_value"]),
                    method_label(c), pval(c.get("p_holm")), pval(c.get("p_bh")))
                   for c in cmp["by_category"]], text=(0, 7),
                  caption="p adjusted over categories: Holm (release gates), "
                          "Benjamini-Hochberg (dashboards)")
    for key, title in (("regressions", "Regressions"), ("improvements", "Improvements")):
        items = cmp.get(key, [])
        doc.h(level, title)
        if not items:
            doc.p("None.")
            continue
        doc.table(("category", "diff pts", "p", "test"),
                  [(str(i["category"]), pts(i["estimate"]),
                    pval(i.get("p_holm", i.get("p_value")))
                    + (" (Holm)" if "p_holm" in i else ""), method_label(i)) for i in items],
                  text=(0, 3))
    flips = cmp.get("flips", [])
    doc.h(level, "Flipped tasks")
    broke = sum(1 for f in flips if f["direction"] == "broke")
    doc.p(f"{broke} broke, {len(flips) - broke} fixed (per-task rate crossing 50%)."
          + (f" First {MAX_FLIPS} shown." if len(flips) > MAX_FLIPS else ""))
    if flips:
        doc.table(("task", "category", "BASE", "NEW", "direction"),
                  [(str(f["task_id"]), str(f["category"]), pct(f["base"]), pct(f["new"]),
                    str(f["direction"])) for f in flips[:MAX_FLIPS]], text=(0, 1, 4))
    if cmp.get("cost") and cmp.get("latency"):
        doc.h(level, "Cost and latency (paired per task)")
        doc.table(("metric", "BASE", "NEW", "NEW - BASE", "95% CI", "p"),
                  [_diff_row("cost per run", cmp["cost"]["diff"], "money"),
                   _diff_row("mean latency", cmp["latency"]["diff"], "secs")])


def _compare_doc(cmp: dict[str, Any]) -> _Doc:
    pairs = cmp.get("comparisons", [cmp])
    title = (f"{cmp['base']} vs {cmp['new']}" if "comparisons" not in cmp
             else f"{cmp['base']} vs {len(pairs)} others")
    doc = _Doc(f"evalfleet compare {title}")
    doc.h(1, f"Comparison {title}")
    statuses = cmp.get("status") or {}
    unfinished = {e: s for e, s in statuses.items() if s != "completed"}
    if unfinished:
        doc.p("PARTIAL: " + ", ".join(f"eval {e} is {s}" for e, s in unfinished.items())
              + "; runs still missing are not in the comparison.", "warn")
    for pair in pairs:
        if len(pairs) > 1:
            doc.h(2, f"{pair['base']} vs {pair['new']}")
        _pair(doc, pair, 3 if len(pairs) > 1 else 2)
    points = cmp.get("pareto") or []
    if len(points) >= 2 and all("non_dominated" in p for p in points):
        doc.h(2, "Score against cost (Pareto)")
        doc.table(("side", "score", "cost/run", "tasks", "non-dominated", "convex frontier"),
                  [(str(p["side"]), pct(p["mean_score"]), money(p["mean_cost_per_run"]),
                    count(p["n_tasks"]), "yes" if p["non_dominated"] else "no",
                    "yes" if p["on_convex_frontier"] else "no") for p in points],
                  text=(0, 4, 5))
    return doc


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&#])")


def _md(text: str) -> str:
    """Markdown-escape text: no markup, no raw HTML, safe inside table cells."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def _markdown(doc: _Doc) -> str:
    out: list[str] = []
    for b in doc.blocks:
        if isinstance(b, _Heading):
            out.append(f"{'#' * b.level} {_md(b.text)}")
        elif isinstance(b, _Para):
            text = _md(b.text)
            out.append(f"**{text}**" if b.kind in ("warn", "bad") else
                       f"*{text}*" if b.kind == "note" else text)
        else:
            lines = []
            if b.caption:
                lines.append(f"*{_md(b.caption)}*\n")
            lines.append("| " + " | ".join(_md(h) for h in b.headers) + " |")
            lines.append("|" + "|".join(":---" if i in b.text else "---:"
                                        for i in range(len(b.headers))) + "|")
            lines.extend("| " + " | ".join(_md(c) or " " for c in row) + " |" for row in b.rows)
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:72rem;
padding:0 1rem;color:#1b1f24;line-height:1.45}
h1{font-size:1.5rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
h3{font-size:1.05rem;margin-top:1.4rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
caption{caption-side:top;text-align:left;color:#57606a;font-size:.85rem;padding-bottom:.2rem}
th,td{border-bottom:1px solid #d8dee4;padding:.25rem .6rem;vertical-align:top}
th{background:#f6f8fa;text-align:left}td.num,th.num{text-align:right;
font-variant-numeric:tabular-nums;white-space:nowrap}
p.warn{background:#fff8c5;border-left:4px solid #d4a72c;padding:.4rem .6rem;font-weight:600}
p.bad{color:#a40e26;font-weight:600}p.good{color:#116329;font-weight:600}
p.note{color:#57606a}
""".strip()


def _html(doc: _Doc) -> str:
    e = html.escape
    body: list[str] = []
    for b in doc.blocks:
        if isinstance(b, _Heading):
            body.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, _Para):
            cls = f' class="{e(b.kind)}"' if b.kind else ""
            body.append(f"<p{cls}>{e(b.text)}</p>")
        else:
            def cell(tag: str, i: int, text: str, texts: Sequence[int] = b.text) -> str:
                cls = "" if i in texts else ' class="num"'
                return f"<{tag}{cls}>{e(text)}</{tag}>"

            parts = ["<table>"]
            if b.caption:
                parts.append(f"<caption>{e(b.caption)}</caption>")
            parts.append("<thead><tr>" + "".join(cell("th", i, h) for i, h in
                                                 enumerate(b.headers)) + "</tr></thead>")
            parts.append("<tbody>")
            parts.extend("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row))
                         + "</tr>" for row in b.rows)
            parts.append("</tbody></table>")
            body.append("".join(parts))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{e(doc.title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def report_markdown(rep: dict[str, Any]) -> str:
    """The report (`build_report` / `api.report`) as a Markdown document."""
    return _markdown(_report_doc(rep))


def report_html(rep: dict[str, Any]) -> str:
    """The report as a standalone HTML page (inline CSS, no scripts, everything escaped)."""
    return _html(_report_doc(rep))


def compare_markdown(cmp: dict[str, Any]) -> str:
    """The comparison (`compare` / `api.compare`) as a Markdown document."""
    return _markdown(_compare_doc(cmp))


def compare_html(cmp: dict[str, Any]) -> str:
    """The comparison as a standalone HTML page (inline CSS, no scripts, everything escaped)."""
    return _html(_compare_doc(cmp))
