"""The report shows what the trace and the model wrote as text, never as markup or links: HTML is
escaped in Markdown too, right-to-left overrides are isolated, every failed run can be opened, a
step log's runs are numbered by their own steps, tables wrap on a narrow screen."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from refinery.core.models import Trace, TraceRun
from refinery.report import gather, render_html, render_markdown
from refinery.traces.spool import upload_files_for
from tests.fake_openai import sample_result
from tests.fixtures_traces import make_trace

RLO = "\u202e"
HOSTILE_NAME = f"<svg onload=alert(1)> {RLO}evil"


def hostile_view(long_names: bool = False):
    trace = make_trace()
    for r in trace.runs:
        r.name = ("x" * 60 + "_" + r.name) if long_names else HOSTILE_NAME
    result = sample_result()
    assert result.synthesis is not None
    result.synthesis.summary = f"See [this](javascript:alert(1)) and <img src=x onerror=alert(1)> {RLO}gnp.exe"
    return gather(result, trace, files=upload_files_for(trace)[0])


def outside_fences(md: str) -> str:
    """The Markdown a viewer renders as markup: fenced blocks (the runs' own text, shown verbatim,
    each line its own bidi paragraph) left out."""
    return re.sub(r"^(`{3,})text\n.*?^\1$", "", md, flags=re.M | re.S)


def test_markdown_holds_no_html_and_no_links_but_its_own():
    md = outside_fences(render_markdown(hostile_view()))
    assert "<svg" not in md and "<img" not in md and not re.search(r"(?<!\\)\]\(javascript:", md)
    targets = re.findall(r"(?<!\\)\]\(([^)]*)\)", md)
    assert targets and all(t.startswith("#") for t in targets)  # in-page anchors only
    assert [tag for tag in re.findall(r"<(\w+)", md) if tag != "a"] == []  # only the report's own anchors


def test_a_right_to_left_override_is_isolated_wherever_it_appears():
    view = hostile_view()
    md, page = outside_fences(render_markdown(view)), render_html(view)
    for text in (md, page):
        assert RLO in text
    for line in md.splitlines():  # each override sits inside an isolate that closes on its line
        for m in re.finditer(RLO, line):
            before, after = line[: m.start()], line[m.end() :]
            assert before.count("\u2068") > before.count("\u2069") and "\u2069" in after, line
    body = re.sub(r"<title>.*?</title>|title=\"[^\"]*\"", "", page)  # attributes are not laid out as text
    for m in re.finditer(RLO, body):
        before = body[: m.start()]
        assert before.rfind("<bdi>") > before.rfind("</bdi>"), body[max(0, m.start() - 80) : m.start() + 20]


def test_every_failed_run_can_be_opened_even_when_nobody_cited_it():
    trace = make_trace(n_runs=6, fail_at=4)  # the sample result cites run-2; run-4 fails uncited
    view = gather(sample_result(), trace, files=upload_files_for(trace)[0])
    failed = [r for r in view.runs if r.status == "error"]
    assert failed and all(not r.cited for r in failed if r.run_id == "run-4")
    assert all(r.text for r in failed) and {r.run_id for r in failed} <= {r.run_id for r in view.cited_runs}
    assert '<details class="run-text" id="run-run-4"' in render_html(view)


def test_a_step_logs_timeline_numbers_runs_by_their_own_steps():
    trace = Trace(
        trace_id="steps",
        runs=[TraceRun(id=f"step-{i}", name=f"agent{i % 2}", step=i, outputs={"o": f"out {i}"}) for i in range(3)],
    )
    md = render_markdown(gather(sample_result(), trace))
    rows = re.findall(r"^\| (step \d+) \| .*?`(step-\d+)`", md, re.M)
    assert rows == [("step 0", "step-0"), ("step 1", "step-1"), ("step 2", "step-2")]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MEASURE = """<script>document.body.setAttribute('data-overflow',
String(document.documentElement.scrollWidth - window.innerWidth))</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
@pytest.mark.parametrize("width", [400, 1280])
def test_tables_wrap_at_narrow_widths_and_with_long_names(tmp_path, width):
    """The page with a measuring script added (the report itself has none): at 400 px and with
    60-character names nothing is wider than the window."""
    page = tmp_path / "report.html"
    page.write_text(render_html(hostile_view(long_names=True)).replace("</body>", MEASURE))
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={width},900",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    overflow = re.search(r'data-overflow="(-?\d+)"', proc.stdout)
    assert overflow is not None and int(overflow.group(1)) <= 0, overflow
