"""`summary.html` for a batch: one row per trace, each linking to that trace's report. Pure.

Sortable by clicking a column heading when scripts run; without scripts the table is already
sorted (failed traces first, then by name) and every link works, so the page is complete either
way. Self-contained like the report: no network, every string escaped.
"""

from __future__ import annotations

from typing import Any

from refinery.report.html import e
from refinery.report.view import STAND_IN, clean, is_stand_in

_CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:80rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}
.tbl{overflow-x:auto;max-width:100%}table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;
padding:.3rem .5rem;text-align:left;vertical-align:top;overflow-wrap:break-word;hyphens:manual}
@media (max-width:600px){body{margin:1rem auto}td,th{min-width:6rem}}
th{cursor:pointer;background:#f5f5f5}.failed{background:#fde8e8;color:#9b1c1c}.num{text-align:right;
font-variant-numeric:tabular-nums}
.standin{background:#fff4d6;border:1px solid #e3b341;padding:.5rem .8rem}"""
# Progressive enhancement only: sorts the rows in place by the clicked column.
_SORT = """document.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
var b=th.closest('table').tBodies[0];
var rows=Array.from(b.rows),up=th.dataset.dir!=='asc';th.dataset.dir=up?'asc':'desc';
rows.sort(function(x,y){var a=x.cells[i].dataset.v||x.cells[i].textContent,
c=y.cells[i].dataset.v||y.cells[i].textContent,n=parseFloat(a)-parseFloat(c);var r=isNaN(n)?a.localeCompare(c):n;
return up?r:-r;});rows.forEach(function(r){b.appendChild(r);});});});"""


def _patterns(patterns: list[Any]) -> list[str]:
    if not patterns:
        return []
    rows = [
        f'<tr id="{e(p.id)}"><td>{i}</td><td><bdi>{e(p.title)}</bdi></td><td>{p.count}: '
        + ", ".join(f'<a href="{e(t)}/report.html">{e(t)}</a>' for t in p.traces[:20])
        + f"</td><td>{p.share:.0%}</td><td>{'n/a' if p.cost_usd is None else f'{p.cost_usd:.4f}'}</td></tr>"
        for i, p in enumerate(patterns, 1)
    ]
    head = '<h2>Failure patterns</h2><div class="tbl"><table><tr><th>#</th><th>pattern</th><th>traces</th>'
    head += "<th>share</th>"
    return [head + "<th>est. cost (USD)</th></tr>", *rows, "</table></div><h2>Traces</h2>"]


def render_summary_html(outcomes: list[Any], model: str, patterns: list[Any] | None = None) -> str:
    rows = sorted(outcomes, key=lambda o: (o.status == "done", o.name))
    done = sum(o.status == "done" for o in rows)
    body = [
        f"<h1>Batch analysis</h1><p>{len(rows)} traces: {done} done, {len(rows) - done} failed; model {e(model)}; "
        f"{sum(o.tokens for o in rows)} tokens.</p>",
        *(
            [f'<p class="standin">{e(STAND_IN)}</p>']
            if is_stand_in(m for o in rows for m in getattr(o, "answered_by", []))
            else []
        ),
        *_patterns(patterns or []),
        '<div class="tbl"><table><thead><tr><th>trace</th><th>outcome</th><th>failure type</th><th>root cause</th>'
        "<th>confidence</th>"
        "<th>tokens</th><th>est. cost (USD)</th></tr></thead><tbody>",
    ]
    for o in rows:
        link = f'<a href="{e(o.name)}/report.html">{e(o.name)}</a>' if o.status == "done" else e(o.name)
        cause = clean(o.root_cause or "") if o.status == "done" else o.error
        cost = "" if o.cost_usd is None else f"{o.cost_usd:.4f}"
        body.append(
            f'<tr class="{"" if o.status == "done" else "failed"}"><td>{link}</td><td>{e(o.status)}</td>'
            f"<td>{e(o.failure_type or '')}</td>"
            f'<td>{e((cause or "")[:300])}</td><td>{e(o.confidence or "")}</td><td class="num" '
            f'data-v="{o.tokens}">{o.tokens}</td>'
            f'<td class="num" data-v="{cost or 0}">{e(cost or "n/a")}</td></tr>'
        )
    body.append("</tbody></table></div>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        'content="width=device-width"><title>refinery batch summary</title>'
        f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + f"\n<script>{_SORT}</script>\n</body></html>\n"
    )
