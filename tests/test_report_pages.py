"""The report and the batch summary as pages: hostile names stay text, every citation lands on
the cited run's embedded text, the decisive step is marked, and the batch page links each trace."""

from __future__ import annotations

import re

from refinery.app.batch import TraceOutcome
from refinery.core.models import RunType, Trace, TraceRun
from refinery.report import gather, render_html, render_markdown
from refinery.report.batch_html import render_summary_html
from refinery.traces.render import render_trace_files
from tests.fake_openai import sample_result
from tests.fixtures_traces import make_trace
from tests.helpers import PageDom, plain_md

HOSTILE = ['<script>alert("x")</script>', '" onmouseover="alert(1)', "x" * 5000, "مرحبا \u202eevil"]


def test_every_citation_link_lands_on_the_cited_runs_embedded_text():
    trace = make_trace()
    page = render_html(gather(sample_result(store_id=None), trace, {}, render_trace_files(trace)))
    p = PageDom(page)
    assert p.links and set(p.links) <= set(p.by_id)
    target = p.by_id["run-run-2"]
    assert target.get("data-run-id") == "run-2" and target.get("class") == "run-text"
    assert re.search(
        r'<details class="run-text" id="run-run-2" data-run-id="run-2"><summary>.*?★ decisive step</summary>'
        r"<pre><bdi>## Run 002: step_2 \[run_id: run-2\]",
        page,
        re.S,
    )
    assert p.scripts == 0


def test_the_waterfall_marks_errors_the_decisive_step_and_cited_runs():
    page = render_html(gather(sample_result(store_id=None), make_trace(), {}, render_trace_files(make_trace())))
    row = re.search(r'<div class="(wf-row[^"]*)"[^>]*data-run-id="run-2"', page).group(1)
    assert row.split() == ["wf-row", "error", "decisive", "cited"]
    assert 'title="step_2 · tool · error · 250 ms · starts at 2.0 s"' in page and 'tabindex="0"' in page


def test_a_verdict_block_opens_the_report():
    page = render_html(
        gather(
            sample_result(store_id=None), make_trace(), {"total": {"total_tokens": 1234, "estimated_cost_usd": 0.0123}}
        )
    )
    verdict = page.split('<section class="verdict" id="verdict">')[1].split("</section>")[0]
    assert "prompt_issue (confidence: high)" in verdict and "<bdi>agent</bdi>" in verdict
    assert 'href="#run-run-2"' in verdict and "1234 tokens, $0.0123 (estimate)" in verdict


def test_model_text_loses_stray_list_dashes():
    r = sample_result(store_id=None)
    r.diagnosis.root_cause = "- The order lookup failed"
    md = plain_md(render_markdown(gather(r, make_trace())))
    assert "- **Root cause:** The order lookup failed" in md and "- - " not in md


def test_hostile_names_and_text_stay_text():
    runs = [
        TraceRun(
            id=f"r{i}", name=name, run_type=RunType.TOOL, outputs={"output": name}, error="boom" if i == 0 else None
        )
        for i, name in enumerate(HOSTILE)
    ]
    trace = Trace(trace_id='<img src=x onerror="alert(1)">', runs=runs)
    r = sample_result(trace_id=trace.trace_id, store_id=None)
    r.synthesis.summary = HOSTILE[0]
    r.diagnosis.decisive_step.run_id = "r1"
    page = render_html(gather(r, trace, {}, render_trace_files(trace)))
    assert "<script>alert" not in page and "<img src=x" not in page and 'onmouseover="alert' not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<bdi>مرحبا \u202eevil</bdi>" in page  # right-to-left text isolated, not reordering the page
    p = PageDom(page)
    assert p.scripts == 0 and set(p.links) <= set(p.by_id)


def test_the_batch_summary_links_every_finished_trace_and_escapes():
    outcomes = [
        TraceOutcome(
            name="a",
            trace="a.json",
            status="done",
            failure_type="prompt_issue",
            root_cause="<b>bad</b>",
            confidence="high",
            tokens=100,
            cost_usd=0.01,
        ),
        TraceOutcome(name="b", trace="b.json", status="failed", error="RateLimitError: slow down", tokens=0),
    ]
    page = render_summary_html(outcomes, "gpt-4o")
    assert '<a href="a/report.html">a</a>' in page and "&lt;b&gt;bad&lt;/b&gt;" in page
    assert page.index('<tr class="failed"><td>b</td>') < page.index("a/report.html")  # failures first
    assert "http" not in page and "<link" not in page


def test_the_batch_pages_show_root_causes_without_stray_dashes():
    from refinery.app.batch import BatchSummary, render_summary_md

    o = TraceOutcome(name="a", trace="a.json", status="done", root_cause="- The order lookup failed", tokens=1)
    assert "<td>The order lookup failed</td>" in render_summary_html([o], "gpt-4o")
    assert "| a | done | The order lookup failed |" in plain_md(
        render_summary_md(BatchSummary(model="gpt-4o", outcomes={"a": o}))
    )
