"""The report as one self-contained HTML page. Pure.

No network, no external fonts, no script: the waterfall is CSS (hovering or focusing a run shows
its name, type, status and duration), citations are plain links to the cited run's embedded text
(a collapsible block), so the page works as a file with scripts disabled. Every string from the
trace or the model is escaped, and names are isolated (`<bdi>`) so right-to-left text cannot
reorder the page around it.
"""

from __future__ import annotations

import html
from typing import Any

from refinery.report.markdown import mark, usage_rows
from refinery.report.timeline import Gap, bars, duration_text
from refinery.report.view import STAND_IN, Cite, ReportView, RunRow, missed

CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:68rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a;
overflow-wrap:break-word}
.tbl{overflow-x:auto;margin:.5rem 0}table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;
padding:.3rem .5rem;text-align:left;vertical-align:top;overflow-wrap:break-word;hyphens:manual}
.error{background:#fde8e8;color:#9b1c1c;font-weight:600}.met,.verified{color:#046c4e}.partial{color:#8a5a00}
.missing,.unverified{color:#9b1c1c;font-weight:600}
.unchecked{color:#666}code{background:#f3f3f3;padding:0 .2rem;overflow-wrap:anywhere}.cite{font-size:.85em}
.top{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1rem;align-items:start}
.top>*{min-width:0}td code{white-space:nowrap}.top .verdict{margin:0}.top .wf{margin:0}.top h2{margin-top:0}
h1{font-size:1.5rem}
.standin{background:#fff4d6;border:1px solid #e3b341;padding:.5rem .8rem}
.verdict{border:2px solid #1a1a1a;padding:.6rem 1rem;margin:1rem 0}.verdict dl{display:grid;
grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}.verdict dt{font-weight:600}
.wf{border:1px solid #ccc;margin:.5rem 0}.wf-row{display:grid;grid-template-columns:minmax(10rem,28%) 1fr 6rem;
align-items:center;gap:.5rem;padding:.15rem .4rem;position:relative;border-top:1px solid #eee}
.wf-row:focus{outline:2px solid #1d4ed8}.wf-gap{padding:.15rem .4rem;border-top:1px solid #eee;color:#555;
font-style:italic}.wf-name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}.wf-track{position:relative;
height:.9rem;background:#f5f5f5}
.wf-bar{position:absolute;top:0;bottom:0;background:#60a5fa;min-width:2px}.wf-row.error .wf-bar{background:#dc2626}
.wf-row.error{background:#fff5f5}
.wf-row.decisive{box-shadow:inset 4px 0 0 #b45309;background:#fffbeb}.wf-row.decisive .wf-bar{outline:2px solid #b45309}
.wf-flag{font-size:.8em;color:#b45309;font-weight:600}.wf-dur{font-size:.85em;color:#444;text-align:right}
.tip{display:none;position:absolute;left:30%;top:100%;z-index:2;background:#111;color:#fff;padding:.3rem .5rem;
font-size:.85em;border-radius:3px;white-space:nowrap}
.wf-row:hover .tip,.wf-row:focus .tip{display:block}
details.run-text{border:1px solid #ccc;margin:.4rem 0;padding:.3rem .6rem}details.run-text pre{white-space:pre-wrap;
overflow-wrap:anywhere;max-height:40rem;overflow:auto;font-size:.85em}
details.run-text:target{outline:3px solid #b45309}details.run-text summary code{margin-left:.4rem}
@media (max-width:900px){.top{display:block}.top .wf{margin-top:1rem}}
@media (max-width:600px){body{margin:1rem auto}.tbl{overflow-x:visible}
table.rows,table.rows tbody,table.rows tr,table.rows td{display:block;width:auto}table.rows thead{display:none}
table.rows tr{border:1px solid #ccc;margin:.6rem 0}table.rows td{border:0;border-top:1px solid #eee}
table.rows tr td:first-child{border-top:0}td code{white-space:normal}
table.rows td::before{content:attr(data-label);display:block;font-size:.8em;color:#555;font-weight:600}
.verdict dl{grid-template-columns:1fr}.wf-row{grid-template-columns:minmax(6rem,45%) 1fr 3.5rem}}"""


def e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def t(text: Any) -> str:
    """Text from the trace or the model as element content: escaped and isolated (`<bdi>`), so a
    right-to-left override inside it reorders nothing outside it."""
    return f"<bdi>{e(text)}</bdi>"


def table(heads: list[str], rows: list[list[str | tuple[str, str]]]) -> str:
    """A table that reflows into stacked rows on a narrow screen (each cell labelled by its
    column) and scrolls within its box rather than run off a wide one. A cell is its HTML, or
    (HTML, class)."""
    head = "".join(f"<th>{e(h)}</th>" for h in heads)
    body = []
    for row in rows:
        cells = []
        for h, c in zip(heads, row, strict=True):
            content, cls = c if isinstance(c, tuple) else (c, "")
            cells.append(f'<td data-label="{e(h)}"' + (f' class="{e(cls)}"' if cls else "") + f">{content}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    rows_html = "".join(body)
    return (
        f'<div class="tbl"><table class="rows"><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table></div>'
    )


def _run_link(run_id: str, row: RunRow | None) -> str:
    return f'<a href="#{e(row.anchor)}"><code>{t(run_id)}</code></a>' if row else f"<code>{t(run_id)}</code>"


def _cites(found: list[Cite]) -> str:
    return ", ".join(
        f'<a class="cite" href="#{e(c.run.anchor)}">{t(c.label)}</a>'
        if c.run
        else f'<span class="cite">{t(c.label)}</span>'
        for c in found
    )


def _check(verified: bool | None) -> str:
    cls = "unchecked" if verified is None else "verified" if verified else "unverified"
    return f'<span class="{cls}">{e(mark(verified))}</span>'


def _verdict(view: ReportView) -> list[str]:
    d, loc, total = view.diagnosis, view.localisation, view.total
    rows = []
    if d:
        rows.append(("Failure type", f"{e(d['failure_type'])} (confidence: {e(d['confidence'])})"))
    if loc:
        step = loc["decisive_step"]
        rows += [
            ("Responsible agent", f"<bdi>{e(loc['responsible_agent'])}</bdi>"),
            (
                "Decisive step",
                f"{_run_link(step['run_id'], step['run'])} — {t(step['reason'])} {_check(step['verified'])}",
            ),
        ]
    if d:
        rows.append(("Root cause", e(d["root_cause"])))
    if total:
        rows.append(("Tokens and cost", f"{e(total.get('total_tokens', 0))} tokens, {e(view.cost_text)}"))
    if not rows:
        return []
    return [
        '<section class="verdict" id="verdict"><h2>Verdict</h2><dl>',
        *[f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows],
        "</dl></section>",
    ]


def _waterfall(view: ReportView) -> list[str]:
    out = ['<h2>Timeline</h2><div class="wf" role="list">']
    for bar in bars(view.runs):
        if isinstance(bar, Gap):
            out.append(f'<div class="wf-gap" role="listitem">{e(bar.text)}</div>')
            continue
        r = bar.row
        classes = " ".join(
            c
            for c, on in (
                ("wf-row", True),
                ("error", r.status == "error"),
                ("decisive", r.decisive),
                ("cited", r.cited),
            )
            if on
        )
        flag = "★ decisive step" if r.decisive else "● cited" if r.cited else ""
        tip = f"{r.name} · {r.run_type or 'run'} · {r.status} · {duration_text(r.duration_ms)}" + (
            f" · starts at {duration_text(r.start_ms)}" if r.start_ms is not None else ""
        )
        name = f'<a href="#{e(r.anchor)}">{e(r.name)}</a>' if r.text else e(r.name)
        anchor = "" if r.text else f' id="{e(r.anchor)}"'  # a run without embedded text is linked here
        out.append(
            f'<div class="{classes}"{anchor} role="listitem" tabindex="0" title="{e(tip)}" data-run-id="{e(r.run_id)}">'
            f'<span class="wf-name" style="padding-left:{r.depth * 0.9:.1f}em"><bdi>{name}</bdi> <span '
            f'class="wf-flag">{e(flag)}</span></span>'
            f'<span class="wf-track"><span class="wf-bar" style="left:{bar.left}%;width:{bar.width}%"></span></span>'
            f'<span class="wf-dur">{e(duration_text(r.duration_ms) if bar.timed else r.number)}</span>'
            f'<span class="tip">{t(r.name)}{e(tip[len(r.name) :])}</span></div>'
        )
    return [*out, "</div>"]


def _sections(view: ReportView) -> list[str]:
    b: list[str] = []
    if view.findings:
        b.append("<h2>Top findings</h2><ol>")
        b += [
            f"<li><strong>{t(f['title'])}</strong> ({e(f['severity'])}): {t(f['detail'])} {_cites(f['cites'])}</li>"
            for f in view.findings
        ]
        b.append("</ol>")
    if view.localisation and view.localisation["errors"]:
        b.append("<h2>Faulty runs</h2>")
        b.append(
            table(
                ["run", "category", "impact", "evidence", "description", "check"],
                [
                    [
                        _run_link(x["run_id"], x["run"]),
                        t(x["category"]),
                        t(x["impact"]),
                        f"<q>{t(x['evidence'])}</q>",
                        t(x["description"]),
                        _check(x["verified"]),
                    ]
                    for x in view.localisation["errors"]
                ],
            )
        )
    if view.expectations:
        b.append("<h2>Expectations</h2>")
        b.append(
            table(
                ["clause", "status", "gap", "evidence"],
                [
                    [t(x["clause"]), (e(x["status"]), str(x["status"])), t(x["gap"]), _cites(x["cites"])]
                    for x in view.expectations
                ],
            )
        )
    if view.diagnosis:
        d = view.diagnosis
        b.append(f"<h2>Diagnosis</h2><p><strong>Root cause:</strong> {t(d['root_cause'])}</p>")
        if d["affected_components"]:
            b.append(f"<p><strong>Affected components:</strong> {t(', '.join(d['affected_components']))}</p>")
        parts = d["detailed_analysis"]
        b.append(
            "<ul>" + "".join(f"<li>{t(p)}</li>" for p in parts) + "</ul>"
            if len(parts) > 1
            else f"<p>{t(parts[0] if parts else '')}</p>"
        )
    if view.chains:
        b.append("<h2>Causal chains</h2>")
        for i, chain in enumerate(view.chains, 1):
            b.append(f"<h3>Chain {i} (confidence: {e(chain['confidence'])})</h3><ul>")
            b += [f"<li><strong>{e(name)}:</strong> {t(desc)} {_cites(cs)}</li>" for name, desc, cs in chain["links"]]
            b.append("</ul>")
    if view.diagnosis and view.diagnosis["remediations"]:
        b.append("<h2>Remediations</h2><ul>")
        b += [
            f"<li>{t(r['action'])} (target: {t(r['target'])}, effort: {t(r['effort'])}) — {t(r['rationale'])}</li>"
            for r in view.diagnosis["remediations"]
        ]
        b.append("</ul>")
    if view.actions:
        b.append("<h2>Next actions</h2>")
        b.append(
            table(
                ["priority", "action", "owner", "why"],
                [[e(a["priority"]), t(a["action"]), t(a["owner"]), t(a["rationale"])] for a in view.actions],
            )
        )
    return b


def render_html(view: ReportView) -> str:
    b: list[str] = [f"<h1>Why the run failed — trace <bdi>{e(view.trace_id)}</bdi></h1>"]
    if view.stand_in:
        b.append(f'<p class="standin">{html.escape(STAND_IN, quote=False)}</p>')
    top = [*_verdict(view)]
    if view.runs:  # the timeline beside the verdict: where it failed, at a glance
        top.append("<div>" + "".join(_waterfall(view)) + "</div>")
    b += ['<div class="top">', *top, "</div>"] if len(top) > 1 else top
    b += ["<h2>Summary</h2>", f"<p>{t(view.summary or '(no summary: the analysis stopped early)')}</p>"]
    b += _sections(view)
    if view.cited_runs:
        b.append("<h2>Cited runs</h2>")
        b += [
            f'<details class="run-text" id="{e(r.anchor)}" '
            f'data-run-id="{e(r.run_id)}"><summary><bdi>{e(r.title)}</bdi><code>{t(r.run_id)}</code>'
            f"{' — ★ decisive step' if r.decisive else ''}</summary><pre>{t(r.text)}</pre></details>"
            for r in view.cited_runs
        ]
    if view.verification:
        b.append("<h2>Citation checks</h2>")
        b.append(
            table(
                ["stage", "cited", "verified", "not verified"],
                [
                    [e(st), str(v["cited"]), str(v["verified"]), t(missed(v))]
                    for st, v in sorted(view.verification.items())
                ],
            )
        )
    if view.usage:
        b.append("<h2>Usage</h2>")
        b.append(
            table(
                ["stage", "input tokens", "output tokens", "est. cost (USD)"],
                [[e(name), str(inp), str(outp), str(cost)] for name, inp, outp, cost in usage_rows(view.usage)],
            )
        )
        b += [f"<p>Read with: {e(view.reading)}</p>"] if view.reading else []
    body = "\n".join(b)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        'content="width=device-width">'
        "<title>refinery report — "
        f"{e(view.trace_id)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
