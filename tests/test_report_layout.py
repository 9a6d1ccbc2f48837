"""The report and the batch summary laid out by headless Chromium at 400 and 1280 px, with long agent
names and categories: no word that fits a line is broken inside, report tables reflow into
stacked rows on the narrow screen, and no table runs off the right edge (summary tables scroll
within their box). A script added to a copy of the page measures the layout and writes it into
the DOM Chromium dumps; the pages themselves carry no script (the report) or only a sorter.

Needs Debian's `chromium`; skipped with the reason when it is missing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from refinery.app.batch import TraceOutcome
from refinery.core.taxonomy import ErrorCategory
from refinery.report import gather, render_html
from refinery.report.batch_html import render_summary_html
from tests.fake_openai import sample_result
from tests.fixtures_traces import make_trace

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
LONG_AGENT = "CustomerSupportEscalationOrchestratorAgent"
MEASURE = """<script>
var vw = document.documentElement.clientWidth, out = {broken: [], overflow: [], stacked: 0, cells: 0};
document.querySelectorAll('td').forEach(function (td) {
  out.cells += 1;
  if (getComputedStyle(td).display === 'block') out.stacked += 1;
  var walk = document.createTreeWalker(td, NodeFilter.SHOW_TEXT), n;
  while ((n = walk.nextNode())) {
    var re = /\\S+/g, m;
    while ((m = re.exec(n.data))) {
      var r = document.createRange(); r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length);
      var rects = Array.from(r.getClientRects()).filter(function (x) { return x.width > 0; });
      var width = rects.reduce(function (s, x) { return s + x.width; }, 0);
      if (rects.length > 1 && width < vw - 60) out.broken.push(m[0]);  // a word that fits a line, broken
    }
  }
});
document.querySelectorAll('table').forEach(function (t) {
  var box = t.closest('.tbl') || t;
  if (box.getBoundingClientRect().right > vw + 1) out.overflow.push(t.rows[0].textContent.slice(0, 40));
});
document.body.setAttribute('data-layout', JSON.stringify(out));
</script>"""


def layout(page: str, width: int, tmp_path: Path) -> dict:
    measured = tmp_path / f"page-{width}.html"
    measured.write_text(page.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / f'profile-{width}'}",
            f"--window-size={width},900",
            "--dump-dom",
            measured.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r"data-layout=\"([^\"]*)\"", proc.stdout)
    assert found, "the measuring script did not run"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def long_names_report() -> str:
    trace = make_trace(5)
    for run in trace.runs:
        run.name = LONG_AGENT if run.id == "run-1" else f"{run.name}_lookup_customer_order_history"
    result = sample_result()
    for error in result.diagnosis.errors:
        error.category = ErrorCategory.INCORRECT_PROBLEM_IDENTIFICATION
        error.description = "language_only_hallucination tool_output_misinterpretation " * 3
    result.diagnosis.responsible_agent = LONG_AGENT
    return render_html(gather(result, trace))


def long_names_summary() -> str:
    outcomes = [
        TraceOutcome(
            name=f"{LONG_AGENT}_trace_{i}",
            trace=f"traces/{i}.json",
            status="done" if i % 2 else "failed",
            failure_type="orchestration_issue",
            root_cause="incorrect_problem_identification in " + LONG_AGENT * 2,
            error="TraceFormatError: " + "x" * 200,
            confidence="medium",
            tokens=123456,
            cost_usd=0.1234,
        )
        for i in range(4)
    ]
    return render_summary_html(outcomes, "gpt-4o")


@pytest.mark.parametrize("width", [400, 1280])
def test_report_tables_keep_words_whole_and_stay_inside_the_page(width, tmp_path):
    found = layout(long_names_report(), width, tmp_path)
    assert found["cells"] > 10
    assert found["broken"] == [] and found["overflow"] == []
    # below 600 px every table cell is a stacked, labelled block; on a wide screen, a table
    assert found["stacked"] == (found["cells"] if width < 600 else 0)


@pytest.mark.parametrize("width", [400, 1280])
def test_summary_tables_scroll_within_their_box(width, tmp_path):
    found = layout(long_names_summary(), width, tmp_path)
    assert found["cells"] >= 28 and found["overflow"] == []
