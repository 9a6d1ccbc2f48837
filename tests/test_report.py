"""The report: summary, findings, expectations, chains, actions, linked citations, timeline."""

from __future__ import annotations

import html.parser
import re
from pathlib import Path

import pytest

from refinery.core.models import RunType
from refinery.core.pricing import estimate_cost_usd, price_for
from refinery.report import citation_resolver, gather, render_html, render_markdown
from refinery.report.view import CitationResolver
from refinery.traces import load_trace
from refinery.traces.render import RenderOptions
from refinery.traces.spool import upload_files_for
from tests.fake_openai import SAMPLES, sample_result
from tests.fixtures_traces import make_trace
from tests.helpers import plain_md


def test_citations_link_to_the_run_they_cite():
    view = gather(sample_result(), make_trace())
    [finding] = view.findings
    [cite] = finding["cites"]
    assert cite.label == "t1_runs_001-003.md § Run 002 → run run-2" and cite.run.run_id == "run-2"  # what it opens
    chain_cause = view.chains[0]["links"][2][2][0]
    assert chain_cause.run is None  # a prompt file cites no run


def test_markdown_has_every_section_and_links():
    md = plain_md(render_markdown(gather(sample_result(), make_trace())))
    for heading in (
        "## Summary",
        "## Top findings",
        "## Expectations",
        "## Diagnosis",
        "## Causal chains",
        "## Remediations",
        "## Next actions",
        "## Timeline",
    ):
        assert heading in md
    assert SAMPLES["stage4"]["summary"] in md
    assert "[t1_runs_001-003.md § Run 002 → run run-2](#run-run-2)" in md
    assert '| #2 | · step_2 <a id="run-run-2"></a>`run-2` | tool | **✗ error** |' in md  # the tree, nested under run-1
    assert "| looks up the order | partial |" in md
    assert "### Chain 1 (confidence: high)" in md


def test_html_is_self_contained_escaped_and_marks_failures():
    r = sample_result()
    r.synthesis.summary = "<script>alert(1)</script> & more"
    page = render_html(gather(r, make_trace()))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'href="#run-run-2"' in page and re.search(r'<div class="wf-row error[^"]*" id="run-run-2"', page)
    assert "src=" not in page and "<link" not in page

    class Ids(html.parser.HTMLParser):
        ids, hrefs = set(), set()

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if "id" in a:
                self.ids.add(a["id"])
            if a.get("href", "").startswith("#"):
                self.hrefs.add(a["href"][1:])

    p = Ids()
    p.feed(page)
    assert p.hrefs and p.hrefs <= p.ids  # every citation link lands on a timeline row


def test_usage_table_has_a_row_per_stage_and_a_total():
    usage = {
        "stages": {"stage1": {"input_tokens": 100, "output_tokens": 20, "estimated_cost_usd": 0.0004}},
        "total": {"input_tokens": 100, "output_tokens": 20, "estimated_cost_usd": None},
    }
    md = render_markdown(gather(sample_result(), make_trace(), usage))
    assert "| stage1 | 100 | 20 | 0.0004 |" in md and "| total | 100 | 20 | n/a |" in md
    assert (
        '<td data-label="stage">total</td><td data-label="input tokens">100</td>'
        '<td data-label="output tokens">20</td><td data-label="est. cost (USD)">n/a</td>'
    ) in render_html(gather(sample_result(), make_trace(), usage))


def test_report_without_the_trace_uses_the_stage1_timeline():
    view = gather(sample_result(), None)
    assert [(r.run_id, r.status) for r in view.runs] == [("run-1", "not stated"), ("run-2", "error")]


def test_report_of_an_analysis_stopped_at_stage2():
    md = render_markdown(gather(sample_result(diagnosis=None, synthesis=None), make_trace()))
    assert "no summary" in md and "## Expectations" in md and "## Causal chains" not in md


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4o", (2.5, 1.25, 10.0)),
        ("gpt-4o-2024-08-06", (2.5, 1.25, 10.0)),
        ("gpt-4o-mini-2024-07-18", (0.15, 0.075, 0.6)),
        ("gpt-5-mini", (0.25, 0.025, 2.0)),
        ("my-finetune", None),
    ],
)
def test_prices_by_model_family(model, price):
    assert price_for(model) == price


def test_cost_counts_cached_tokens_at_their_price():
    assert estimate_cost_usd(
        {"input_tokens": 1_000_000, "cached_tokens": 500_000, "output_tokens": 0}, "gpt-4o"
    ) == pytest.approx(1.875)
    assert estimate_cost_usd({"input_tokens": 10}, "unknown-model") is None


def test_a_step_citation_links_to_that_step_of_a_step_log():
    trace = load_trace(Path(__file__).parent / "fixtures" / "step_log_wrapped.json")
    resolve = citation_resolver(gather(sample_result(), trace).runs)
    assert resolve("q-7_runs_001-006.md", "Step 4: Orchestrator (thought)").run_id == "step-4"
    assert resolve("q-7_runs_001-006.md", "Run 005").run_id == "step-4"  # the file's sequence number still works


def test_a_citation_naming_only_a_file_points_at_the_first_run_the_renderer_put_there():
    trace = load_trace(Path(__file__).parent / "fixtures" / "step_log_wrapped.json")
    files, _ = upload_files_for(trace, options=RenderOptions(runs_per_file=2))
    second = files.names[1]
    rows = gather(sample_result(), trace).runs
    resolve = CitationResolver(rows, {second: files.layout(1).run_ids[0]})
    assert resolve(second, "the whole file").run_id == trace.runs[2].id
    assert resolve("renamed.md", "the whole file") is None  # names are not read when the layouts are at hand


def test_the_report_shows_who_when_where_and_which_claims_verified():
    unverified = {
        "cited": 2,
        "verified": 1,
        "unverified": [
            {"path": "errors[0]", "run_id": "run-2", "quote": "x", "problem": "the quote is not in run run-2's text"}
        ],
    }
    view = gather(sample_result(verification={"stage3": unverified}), make_trace())
    md = plain_md(render_markdown(view))
    assert "- **Responsible agent:** agent" in md
    assert "- **Decisive step:** [`run-2`](#run-run-2) — lookup_order was called without an order id (✓ verified)" in md
    assert (
        "| [`run-2`](#run-run-2) | tool_selection_error | high | KeyError: 'order_id' | The tool was called without "
        "the order id. | ✗ unverified |" in md
    )
    assert "| stage3 | 2 | 1 | errors[0]: the quote is not in run run-2's text |" in md
    html_text = render_html(view)
    assert '<a href="#run-run-2"><code><bdi>run-2</bdi></code></a>' in html_text and "✗ unverified" in html_text


def test_claims_never_checked_say_so():
    md = render_markdown(gather(sample_result(), make_trace()))
    assert "(not checked)" in md and "## Citation checks" not in md


def test_a_big_traces_timeline_shows_the_runs_that_matter_and_counts_the_rest():
    trace = make_trace(n_runs=1000, fail_at=500)  # the sample result cites run-2
    view = gather(sample_result(), trace)
    md = render_markdown(view)
    timeline = md.split("## Timeline", 1)[1].split("\n## ", 1)[0]
    shown = [int(m) for m in re.findall(r"^\| #(\d+) \|", timeline, re.M)]
    assert shown == [
        *range(1, 11),
        *range(499, 502),
        *range(991, 1001),
    ]  # ends, the failure ±1; run-2 (cited) is among the first ten
    gaps = re.findall(r"… (\d+) runs \(#(\d+)–#(\d+)\) not shown: none failed, none cited", timeline)
    assert gaps == [("488", "11", "498"), ("489", "502", "990")]
    assert sum(int(n) for n, _, _ in gaps) + len(shown) == 1000
    page = render_html(view)
    assert page.count('class="wf-row') == len(shown) and page.count('class="wf-gap"') == 2
    assert "… 488 runs (#11–#498) not shown" in page


def test_a_trace_of_a_few_hundred_runs_shows_every_run():
    md = render_markdown(gather(sample_result(), make_trace(n_runs=400, fail_at=200)))
    assert len(re.findall(r"^\| #\d+ \|", md.split("## Timeline", 1)[1], re.M)) == 400 and "not shown" not in md


def test_the_report_embeds_cited_runs_as_uploaded_and_redacted(tmp_path):
    """`write_outputs` takes the files the analysis uploaded (here unredacted, as with
    `--no-redact`): the cited run's text comes from them, with its secret redacted."""
    from refinery.report.outputs import usage_summary, write_outputs
    from refinery.traces.render import render_trace_files

    trace = make_trace()
    secret = "sk-proj-" + "A1b2C3d4" * 4
    uploaded = [
        (n, t.replace("KeyError: 'order_id'", f"KeyError: 'order_id' (as uploaded, key {secret})"))
        for n, t in render_trace_files(trace)
    ]
    result = sample_result()
    write_outputs(tmp_path, result, trace, usage_summary(result, "gpt-4o"), uploaded)
    report = (tmp_path / "report.md").read_text()
    assert "(as uploaded, key [REDACTED:openai_key])" in report and secret not in report
    assert secret not in (tmp_path / "report.html").read_text()


def test_the_timeline_sits_beside_the_verdict_before_the_prose():
    view = gather(sample_result(), make_trace())
    page, md = render_html(view), render_markdown(view)
    top = page[page.index('<div class="top">') : page.index("<h2>Summary</h2>")]
    assert 'id="verdict"' in top and '<div class="wf"' in top
    assert md.index("## Verdict") < md.index("## Timeline") < md.index("## Summary")


def test_a_cited_run_is_titled_by_its_agent_step_and_name_with_its_id_beside():
    trace = make_trace()
    trace.runs[0].run_type = RunType.AGENT
    trace.runs[0].name = "RefundBot"
    files, _ = upload_files_for(trace, options=RenderOptions())
    view = gather(sample_result(), trace, files=files)
    [cited] = [r for r in view.cited_runs if r.run_id == "run-2"]
    assert cited.title == "RefundBot › #2 step_2"
    assert "<summary><bdi>RefundBot › #2 step_2</bdi><code><bdi>run-2</bdi></code>" in render_html(view)
    assert "### RefundBot › #2 step_2 — `run-2`" in render_markdown(view)


def test_plain_text_holds_isolation_marks_only_around_right_to_left_text():
    r = sample_result()
    r.synthesis.summary = "The lookup failed. \u05e9\u05dc\u05d5\u05dd"  # Hebrew at the end
    md = render_markdown(gather(r, make_trace()))
    assert md.count("\u2068") == 1 and "\u2068The lookup failed. \u05e9\u05dc\u05d5\u05dd\u2069" in md


def test_run_ids_are_tried_longest_first_in_the_order_a_stable_sort_gives():
    import random

    from refinery.report.view import _longest_first

    rng = random.Random(5)
    ids = ["".join(rng.choice("ab-1") for _ in range(rng.randrange(0, 9))) for _ in range(2000)]
    assert _longest_first(ids) == sorted(ids, key=len, reverse=True)
