"""A readable report of one analysis, as Markdown and as a self-contained HTML page. Pure.

Both formats come from one gathered view (`gather`), so they cannot disagree. Every citation is
linked to the run it cites — by a run id in the cited section, by a "Run 007" reference, or by
the first run of the cited run file — and the timeline marks failed runs.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

from refinery.agents.stage_results import StagedAnalysisResult
from refinery.core.models import Trace
from refinery.traces.render import safe_name

_RUN_REF = re.compile(r"\brun\s*#?\s*0*(\d+)\b", re.IGNORECASE)
_STEP_REF = re.compile(r"\bstep[\s#-]*(\d+)\b", re.IGNORECASE)  # a step log's own numbering (run id step-<n>)
_RUN_FILE = re.compile(r"_runs_(\d+)-(\d+)\.md$")


@dataclass
class RunRow:
    seq: int
    run_id: str
    name: str
    status: str

    @property
    def anchor(self) -> str:
        return "run-" + safe_name(self.run_id, 120)


@dataclass
class Cite:
    file: str
    section: str
    run: RunRow | None

    @property
    def label(self) -> str:
        return f"{self.file} § {self.section}" if self.section else self.file


@dataclass
class ReportView:
    trace_id: str
    summary: str
    runs: list[RunRow]
    findings: list[dict[str, Any]] = field(default_factory=list)
    expectations: list[dict[str, Any]] = field(default_factory=list)
    chains: list[dict[str, Any]] = field(default_factory=list)
    diagnosis: dict[str, Any] | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    localisation: dict[str, Any] | None = None  # responsible agent, decisive step, errors (each with its run and whether it verified)
    verification: dict[str, dict[str, Any]] = field(default_factory=dict)  # per stage: cited, verified, unverified


def _rows(result: StagedAnalysisResult, trace: Trace | None) -> list[RunRow]:
    if trace is not None:
        return [RunRow(i, r.id, r.name, "error" if r.is_failed else "success") for i, r in enumerate(trace.runs, start=1)]
    if result.trace_analysis is None:
        return []
    return [RunRow(e.sequence, e.run_id, e.run_name, e.status) for e in result.trace_analysis.timeline]


def _resolver(rows: list[RunRow]):
    by_id = {r.run_id: r for r in rows}
    by_seq = {r.seq: r for r in rows}
    ids_longest_first = sorted(by_id, key=len, reverse=True)

    def resolve(file: str, section: str) -> RunRow | None:
        for rid in ids_longest_first:
            if rid and rid in section:
                return by_id[rid]
        m = _STEP_REF.search(section)
        if m and f"step-{m.group(1)}" in by_id:
            return by_id[f"step-{m.group(1)}"]
        m = _RUN_REF.search(section)
        if m and int(m.group(1)) in by_seq:
            return by_seq[int(m.group(1))]
        m = _RUN_FILE.search(file)
        if m and int(m.group(1)) in by_seq:
            return by_seq[int(m.group(1))]
        return None

    return resolve


def gather(result: StagedAnalysisResult, trace: Trace | None = None, usage: dict[str, Any] | None = None) -> ReportView:
    rows = _rows(result, trace)
    resolve = _resolver(rows)

    def cites(items: list[Any]) -> list[Cite]:
        return [Cite(c.file, c.section_or_lines, resolve(c.file, c.section_or_lines)) for c in items]

    view = ReportView(trace_id=result.trace_id, summary="", runs=rows, usage=usage or {})
    if result.synthesis is not None:
        view.summary = result.synthesis.summary
        view.findings = [{"title": f.title, "detail": f.detail, "severity": f.severity, "cites": cites(f.citations)} for f in result.synthesis.top_findings]
        view.actions = [a.model_dump() for a in sorted(result.synthesis.actions_next, key=lambda a: a.priority)]
    if result.gap_analysis is not None:
        view.expectations = [{"clause": c.clause, "status": c.status, "gap": c.gap, "cites": cites(c.citations)} for c in result.gap_analysis.expectations]
    if result.diagnosis is not None:
        d = result.diagnosis
        view.diagnosis = {
            "root_cause": d.root_cause,
            "failure_type": d.failure_type.value,
            "confidence": d.confidence.value,
            "detailed_analysis": d.detailed_analysis,
            "affected_components": d.affected_components,
            "remediations": [r.model_dump() for r in d.remediations],
        }
        view.chains = [
            {
                "confidence": c.confidence.value,
                "links": [(name, getattr(c, name).description, cites(getattr(c, name).citations)) for name in ("symptom", "mechanism", "cause")],
            }
            for c in d.causal_chains
        ]
        if not view.summary:
            view.summary = d.root_cause
        check = result.verification.get("stage3")
        bad = {u["path"] for u in (check or {}).get("unverified", [])}

        def verified(path: str) -> bool | None:  # None: not checked (no trace at hand)
            return None if check is None else path not in bad

        by_id = {r.run_id: r for r in rows}
        view.localisation = {
            "responsible_agent": d.responsible_agent,
            "decisive_step": {**d.decisive_step.model_dump(), "run": by_id.get(d.decisive_step.run_id), "verified": verified("decisive_step")},
            "errors": [{**e.model_dump(mode="json"), "run": by_id.get(e.run_id), "verified": verified(f"errors[{i}]")} for i, e in enumerate(d.errors)],
        }
    view.verification = dict(result.verification)
    return view


def _mark(verified: bool | None) -> str:
    return "not checked" if verified is None else "✓ verified" if verified else "✗ unverified"


def _usage_rows(usage: dict[str, Any]) -> list[tuple[str, int, int, str]]:
    """(stage, input tokens, output tokens, cost) per stage, then the total when there is one."""
    rows = []
    named = [*usage.get("stages", {}).items()] + ([("total", usage["total"])] if usage.get("total") else [])
    for name, u in named:
        cost = "n/a" if u.get("estimated_cost_usd") is None else f"{u['estimated_cost_usd']:.4f}"
        rows.append((name, u.get("input_tokens", 0), u.get("output_tokens", 0), cost))
    return rows


# --- Markdown -----------------------------------------------------------------------------
def _md_cites(items: list[Cite]) -> str:
    if not items:
        return ""
    return " — " + ", ".join(f"[{c.label}](#{c.run.anchor})" if c.run else c.label for c in items)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(view: ReportView) -> str:
    out = [f"# Why the run failed — trace {view.trace_id}", "", "## Summary", "", view.summary or "_(no summary: the analysis stopped early)_", ""]
    if view.findings:
        out += ["## Top findings", ""]
        out += [f"{i}. **{f['title']}** ({f['severity']}): {f['detail']}{_md_cites(f['cites'])}" for i, f in enumerate(view.findings, 1)]
        out.append("")
    if view.expectations:
        out += ["## Expectations", "", "| clause | status | gap | evidence |", "|---|---|---|---|"]
        for e in view.expectations:
            out.append(f"| {_md_cell(e['clause'])} | {e['status']} | {_md_cell(e['gap'])} | {_md_cites(e['cites'])[3:]} |")
        out.append("")
    if view.diagnosis:
        d = view.diagnosis
        out += ["## Diagnosis", "", f"- **Root cause:** {d['root_cause']}", f"- **Failure type:** {d['failure_type']}", f"- **Confidence:** {d['confidence']}"]
        if d["affected_components"]:
            out.append(f"- **Affected components:** {', '.join(d['affected_components'])}")
        out += ["", d["detailed_analysis"], ""]
    if view.localisation:
        loc = view.localisation
        step = loc["decisive_step"]
        link = f"[`{step['run_id']}`](#{step['run'].anchor})" if step["run"] else f"`{step['run_id']}`"
        out += ["## Who, when, where", "", f"- **Responsible agent:** {loc['responsible_agent']}", f"- **Decisive step:** {link} — {step['reason']} ({_mark(step['verified'])})"]
        if loc["errors"]:
            out += ["", "| run | category | impact | evidence | description | check |", "|---|---|---|---|---|---|"]
            for e in loc["errors"]:
                run = f"[`{e['run_id']}`](#{e['run'].anchor})" if e["run"] else f"`{e['run_id']}`"
                out.append(f"| {run} | {e['category']} | {e['impact']} | {_md_cell(e['evidence'])} | {_md_cell(e['description'])} | {_mark(e['verified'])} |")
        out.append("")
    if view.chains:
        out += ["## Causal chains", ""]
        for i, chain in enumerate(view.chains, 1):
            out.append(f"### Chain {i} (confidence: {chain['confidence']})")
            out += [f"- **{name}:** {desc}{_md_cites(cs)}" for name, desc, cs in chain["links"]]
            out.append("")
    if view.diagnosis and view.diagnosis["remediations"]:
        out += ["## Remediations", ""]
        out += [f"- {r['action']} (target: {r['target']}, effort: {r['effort']}) — {r['rationale']}" for r in view.diagnosis["remediations"]]
        out.append("")
    if view.actions:
        out += ["## Next actions", "", "| priority | action | owner | why |", "|---|---|---|---|"]
        out += [f"| {a['priority']} | {_md_cell(a['action'])} | {_md_cell(a['owner'])} | {_md_cell(a['rationale'])} |" for a in view.actions]
        out.append("")
    if view.runs:
        out += ["## Timeline", "", "| # | run | name | status |", "|---|---|---|---|"]
        for r in view.runs:
            mark = "**✗ error**" if r.status == "error" else r.status
            out.append(f'| {r.seq} | <a id="{r.anchor}"></a>`{r.run_id}` | {_md_cell(r.name)} | {mark} |')
        out.append("")
    if view.verification:
        out += ["## Citation checks", "", "| stage | cited | verified | not verified |", "|---|---|---|---|"]
        for stage, v in sorted(view.verification.items()):
            missed = "; ".join(f"{u['path']}: {u['problem']}" for u in v["unverified"][:5]) or "—"
            out.append(f"| {stage} | {v['cited']} | {v['verified']} | {_md_cell(missed)} |")
        out.append("")
    if view.usage:
        out += ["## Usage", "", "| stage | input tokens | output tokens | est. cost (USD) |", "|---|---|---|---|"]
        out += [f"| {name} | {inp} | {outp} | {cost} |" for name, inp, outp, cost in _usage_rows(view.usage)]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# --- HTML ---------------------------------------------------------------------------------
_CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}
table{border-collapse:collapse;width:100%;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
.error{background:#fde8e8;color:#9b1c1c;font-weight:600}.met{color:#046c4e}.partial{color:#8a5a00}.missing{color:#9b1c1c;font-weight:600}
code{background:#f3f3f3;padding:0 .2rem}.cite{font-size:.85em}h1{font-size:1.5rem}"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_cites(items: list[Cite]) -> str:
    parts = [f'<a class="cite" href="#{_e(c.run.anchor)}">{_e(c.label)}</a>' if c.run else f'<span class="cite">{_e(c.label)}</span>' for c in items]
    return ", ".join(parts)


def _html_run(run_id: str, row: RunRow | None) -> str:
    return f'<a href="#{_e(row.anchor)}"><code>{_e(run_id)}</code></a>' if row else f"<code>{_e(run_id)}</code>"


def render_html(view: ReportView) -> str:
    b: list[str] = [f"<h1>Why the run failed — trace {_e(view.trace_id)}</h1>", "<h2>Summary</h2>", f"<p>{_e(view.summary or '(no summary: the analysis stopped early)')}</p>"]
    if view.findings:
        b.append("<h2>Top findings</h2><ol>")
        b += [f"<li><strong>{_e(f['title'])}</strong> ({_e(f['severity'])}): {_e(f['detail'])} {_html_cites(f['cites'])}</li>" for f in view.findings]
        b.append("</ol>")
    if view.expectations:
        b.append("<h2>Expectations</h2><table><tr><th>clause</th><th>status</th><th>gap</th><th>evidence</th></tr>")
        b += [f'<tr><td>{_e(e["clause"])}</td><td class="{_e(e["status"])}">{_e(e["status"])}</td><td>{_e(e["gap"])}</td><td>{_html_cites(e["cites"])}</td></tr>' for e in view.expectations]
        b.append("</table>")
    if view.diagnosis:
        d = view.diagnosis
        b.append("<h2>Diagnosis</h2><ul>")
        b += [f"<li><strong>Root cause:</strong> {_e(d['root_cause'])}</li>", f"<li><strong>Failure type:</strong> {_e(d['failure_type'])}</li>", f"<li><strong>Confidence:</strong> {_e(d['confidence'])}</li>"]
        if d["affected_components"]:
            b.append(f"<li><strong>Affected components:</strong> {_e(', '.join(d['affected_components']))}</li>")
        b.append(f"</ul><p>{_e(d['detailed_analysis'])}</p>")
    if view.localisation:
        loc = view.localisation
        step = loc["decisive_step"]
        b.append("<h2>Who, when, where</h2><ul>")
        b.append(f"<li><strong>Responsible agent:</strong> {_e(loc['responsible_agent'])}</li>")
        b.append(f'<li><strong>Decisive step:</strong> {_html_run(step["run_id"], step["run"])} — {_e(step["reason"])} <span class="check">({_e(_mark(step["verified"]))})</span></li></ul>')
        if loc["errors"]:
            b.append("<table><tr><th>run</th><th>category</th><th>impact</th><th>evidence</th><th>description</th><th>check</th></tr>")
            b += [
                f'<tr><td>{_html_run(e["run_id"], e["run"])}</td><td>{_e(e["category"])}</td><td>{_e(e["impact"])}</td><td>{_e(e["evidence"])}</td>'
                f'<td>{_e(e["description"])}</td><td class="{"met" if e["verified"] else "missing" if e["verified"] is False else ""}">{_e(_mark(e["verified"]))}</td></tr>'
                for e in loc["errors"]
            ]
            b.append("</table>")
    if view.chains:
        b.append("<h2>Causal chains</h2>")
        for i, chain in enumerate(view.chains, 1):
            b.append(f"<h3>Chain {i} (confidence: {_e(chain['confidence'])})</h3><ul>")
            b += [f"<li><strong>{_e(name)}:</strong> {_e(desc)} {_html_cites(cs)}</li>" for name, desc, cs in chain["links"]]
            b.append("</ul>")
    if view.diagnosis and view.diagnosis["remediations"]:
        b.append("<h2>Remediations</h2><ul>")
        b += [f"<li>{_e(r['action'])} (target: {_e(r['target'])}, effort: {_e(r['effort'])}) — {_e(r['rationale'])}</li>" for r in view.diagnosis["remediations"]]
        b.append("</ul>")
    if view.actions:
        b.append("<h2>Next actions</h2><table><tr><th>priority</th><th>action</th><th>owner</th><th>why</th></tr>")
        b += [f"<tr><td>{_e(a['priority'])}</td><td>{_e(a['action'])}</td><td>{_e(a['owner'])}</td><td>{_e(a['rationale'])}</td></tr>" for a in view.actions]
        b.append("</table>")
    if view.runs:
        b.append("<h2>Timeline</h2><table><tr><th>#</th><th>run</th><th>name</th><th>status</th></tr>")
        for r in view.runs:
            cls = ' class="error"' if r.status == "error" else ""
            b.append(f'<tr id="{_e(r.anchor)}"{cls}><td>{r.seq}</td><td><code>{_e(r.run_id)}</code></td><td>{_e(r.name)}</td><td>{"✗ error" if r.status == "error" else _e(r.status)}</td></tr>')
        b.append("</table>")
    if view.verification:
        b.append("<h2>Citation checks</h2><table><tr><th>stage</th><th>cited</th><th>verified</th><th>not verified</th></tr>")
        for stage, v in sorted(view.verification.items()):
            missed = "; ".join(f"{u['path']}: {u['problem']}" for u in v["unverified"][:5]) or "—"
            b.append(f"<tr><td>{_e(stage)}</td><td>{v['cited']}</td><td>{v['verified']}</td><td>{_e(missed)}</td></tr>")
        b.append("</table>")
    if view.usage:
        b.append("<h2>Usage</h2><table><tr><th>stage</th><th>input tokens</th><th>output tokens</th><th>est. cost (USD)</th></tr>")
        b += [f"<tr><td>{_e(name)}</td><td>{inp}</td><td>{outp}</td><td>{cost}</td></tr>" for name, inp, outp, cost in _usage_rows(view.usage)]
        b.append("</table>")
    body = "\n".join(b)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>refinery report — {_e(view.trace_id)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
