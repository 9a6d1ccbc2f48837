"""The report as Markdown: the same content as the HTML, with anchors for links. Pure."""

from __future__ import annotations

import re
from typing import Any

from refinery.report.timeline import Gap, duration_text, shown
from refinery.report.view import STAND_IN, Cite, ReportView, RunRow, missed


def mark(verified: bool | None) -> str:
    return "not checked" if verified is None else "✓ verified" if verified else "✗ unverified"


def usage_rows(usage: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    """(stage, input tokens, output tokens, cost) per stage, then the total when there is one."""
    rows = []
    named = [*usage.get("stages", {}).items()] + ([("total", usage["total"])] if usage.get("total") else [])
    for name, u in named:
        cost = "n/a" if u.get("estimated_cost_usd") is None else f"{u['estimated_cost_usd']:.4f}"
        rows.append((name, u.get("input_tokens", 0), u.get("output_tokens", 0), cost))
    return rows


FSI, PDI = "\u2068", "\u2069"  # first-strong isolate … pop directional isolate
_MARKUP = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "[": "\\[", "]": "\\]"})


# right-to-left letters (Hebrew, Arabic, Syriac, Thaana, N'Ko …, their presentation forms) and the
# bidirectional controls: text holding one is isolated, the rest is left as it is (copy and paste)
_BIDI = re.compile(
    "[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc\u200f\u202a-\u202e\u2066-\u2069\U00010800-\U00010fff\U0001e800-\U0001efff]"
)


def needs_isolation(text: str) -> bool:
    """Whether text holds a right-to-left character or a bidirectional control."""
    return _BIDI.search(text) is not None


def t(text: Any) -> str:
    """Text from the trace or the model as Markdown: no HTML (escaped, so an agent named
    `<svg onload=…>` is text in any viewer), no links of its own (brackets escaped: the report's
    only links are its in-page ones), and — when it holds right-to-left text or a bidirectional
    control — isolated, so an override reorders nothing outside it."""
    value = str(text).translate(_MARKUP)
    return FSI + value + PDI if needs_isolation(value) else value


def code(text: Any) -> str:
    """An id as a code span that its own backticks cannot end (escapes do nothing inside one)."""
    value = str(text).replace("\n", " ")
    ticks = "`" * (max((len(m) for m in re.findall("`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{ticks}{pad}{value}{pad}{ticks}"


def _link(run_id: str, row: RunRow | None) -> str:
    return f"[{code(run_id)}](#{row.anchor})" if row else code(run_id)


def _cites(found: list[Cite]) -> str:
    return (
        " — " + ", ".join(f"[{t(c.label)}](#{c.run.anchor})" if c.run else t(c.label) for c in found) if found else ""
    )


def cell(text: Any) -> str:
    """Text from the trace or the model as one Markdown table cell (see `t`): pipes escaped,
    lines joined."""
    return t(text).replace("|", "\\|").replace("\n", " ")


def _verdict(view: ReportView) -> list[str]:
    out = ["## Verdict", ""]
    d, loc, total = view.diagnosis, view.localisation, view.total
    if d:
        out.append(f"- **Failure type:** {d['failure_type']} (confidence: {d['confidence']})")
    if loc:
        step = loc["decisive_step"]
        out += [
            f"- **Responsible agent:** {t(loc['responsible_agent'])}",
            f"- **Decisive step:** {_link(step['run_id'], step['run'])} — {t(step['reason'])} "
            f"({mark(step['verified'])})",
        ]
    elif d:
        out.append(f"- **Root cause:** {t(d['root_cause'])}")
    if total:
        out.append(f"- **Tokens:** {total.get('total_tokens', 0)}; **cost:** {view.cost_text}")
    return out + [""]


def _timeline(view: ReportView) -> list[str]:
    out = ["## Timeline", "", "| # | run | type | status | start | duration | |", "|---|---|---|---|---|---|---|"]
    for i in shown(view.runs):
        if isinstance(i, Gap):
            out.append(f"| … | {i.text} | | | | | |")
            continue
        r = view.runs[i]
        status = "**✗ error**" if r.status == "error" else r.status
        flags = " ".join(
            f for f, on in (("★ decisive step", r.decisive), ("● cited", r.cited and not r.decisive)) if on
        )
        name = ("· " * r.depth) + cell(r.name)
        start = duration_text(r.start_ms) if r.start_ms is not None else "—"
        link = f"[{code(r.run_id)}](#{r.anchor})" if r.text else f'<a id="{r.anchor}"></a>{code(r.run_id)}'
        out.append(
            f"| {r.number} | {name} {link} | {r.run_type} | {status} | {start} | {duration_text(r.duration_ms)} | "
            f"{flags} |"
        )
    return out + [""]


def render_markdown(view: ReportView) -> str:
    out = [f"# Why the run failed — trace {t(view.trace_id)}", ""]
    if view.stand_in:
        out += ["> " + STAND_IN, ""]
    out += _verdict(view)
    if view.runs:  # the timeline right under the verdict: where it failed, at a glance
        out += _timeline(view)
    out += ["## Summary", "", t(view.summary) if view.summary else "_(no summary: the analysis stopped early)_", ""]
    if view.findings:
        out += ["## Top findings", ""]
        out += [
            f"{i}. **{t(f['title'])}** ({f['severity']}): {t(f['detail'])}{_cites(f['cites'])}"
            for i, f in enumerate(view.findings, 1)
        ]
        out.append("")
    if view.localisation and view.localisation["errors"]:
        out += [
            "## Faulty runs",
            "",
            "| run | category | impact | evidence | description | check |",
            "|---|---|---|---|---|---|",
        ]
        for e in view.localisation["errors"]:
            out.append(
                f"| {_link(e['run_id'], e['run'])} | {cell(e['category'])} | {cell(e['impact'])} | "
                f"{cell(e['evidence'])} | {cell(e['description'])} | {mark(e['verified'])} |"
            )
        out.append("")
    if view.expectations:
        out += ["## Expectations", "", "| clause | status | gap | evidence |", "|---|---|---|---|"]
        out += [
            f"| {cell(e['clause'])} | {cell(e['status'])} | {cell(e['gap'])} | {_cites(e['cites'])[3:]} |"
            for e in view.expectations
        ]
        out.append("")
    if view.diagnosis:
        d = view.diagnosis
        out += ["## Diagnosis", "", f"- **Root cause:** {t(d['root_cause'])}"]
        if d["affected_components"]:
            out.append(f"- **Affected components:** {t(', '.join(d['affected_components']))}")
        out += [
            "",
            *(
                [f"- {t(p)}" for p in d["detailed_analysis"]]
                if len(d["detailed_analysis"]) > 1
                else [t(p) for p in d["detailed_analysis"]]
            ),
            "",
        ]
    if view.chains:
        out += ["## Causal chains", ""]
        for i, chain in enumerate(view.chains, 1):
            out.append(f"### Chain {i} (confidence: {chain['confidence']})")
            out += [f"- **{name}:** {t(desc)}{_cites(cs)}" for name, desc, cs in chain["links"]]
            out.append("")
    if view.diagnosis and view.diagnosis["remediations"]:
        out += ["## Remediations", ""]
        out += [
            f"- {t(r['action'])} (target: {t(r['target'])}, effort: {t(r['effort'])}) — {t(r['rationale'])}"
            for r in view.diagnosis["remediations"]
        ]
        out.append("")
    if view.actions:
        out += ["## Next actions", "", "| priority | action | owner | why |", "|---|---|---|---|"]
        out += [
            f"| {a['priority']} | {cell(a['action'])} | {cell(a['owner'])} | {cell(a['rationale'])} |"
            for a in view.actions
        ]
        out.append("")
    if view.cited_runs:
        out += ["## Cited and failed runs", ""]
        for r in view.cited_runs:
            fence = "````" if "```" in (r.text or "") else "```"
            out += [
                f'<a id="{r.anchor}"></a>',
                f"### {t(r.title)} — {code(r.run_id)}",
                "",
                f"{fence}text",
                r.text or "",
                fence,
                "",
            ]
    if view.verification:
        out += ["## Citation checks", "", "| stage | cited | verified | not verified |", "|---|---|---|---|"]
        for stage, v in sorted(view.verification.items()):
            out.append(f"| {stage} | {v['cited']} | {v['verified']} | {cell(missed(v))} |")
        out.append("")
    if view.usage:
        out += ["## Usage", "", "| stage | input tokens | output tokens | est. cost (USD) |", "|---|---|---|---|"]
        out += [f"| {name} | {inp} | {outp} | {cost} |" for name, inp, outp, cost in usage_rows(view.usage)]
        out += ["", f"Read with: {view.reading}"] if view.reading else []
        out.append("")
    return "\n".join(out).rstrip() + "\n"
