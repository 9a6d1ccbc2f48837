"""On the real labelled exports in ../shared/eval-data (skipped when absent): they load, their
failed spans show as failed, the labelled evidence reaches a chunk carrying its span id, and a
Who&When log renders its labelled step under its own number."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from pathlib import Path

import pytest

from refinery.app.cli import amain
from refinery.traces import load_trace
from refinery.traces.render import render_trace_files
from tests.helpers import SHARED

EVAL = SHARED / "eval-data"
TRAIL = sorted((EVAL / "trail" / "traces").glob("*/*.json")) if EVAL.is_dir() else []
WHO_AND_WHEN = sorted((EVAL / "who-and-when").glob("*/*.json")) if EVAL.is_dir() else []
needs_eval_data = pytest.mark.skipif(not TRAIL or not WHO_AND_WHEN, reason="../shared/eval-data not present")
ERROR_TRACE = EVAL / "trail" / "traces" / "swe_bench" / "790482a54f9837ee5bcd410b9d7595b9.json"


def bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_evidence.py"
    spec = importlib.util.spec_from_file_location("bench_evidence", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_eval_data
def test_every_trail_trace_and_who_and_when_log_loads_with_content():
    for path in TRAIL + WHO_AND_WHEN:
        trace = load_trace(path)
        assert trace.runs, path
        assert sum(bool(r.inputs or r.outputs) for r in trace.runs) >= len(trace.runs) // 2, (
            f"{path}: mostly empty runs"
        )


@needs_eval_data
def test_a_trail_error_span_shows_as_failed_in_the_index():
    trace = load_trace(ERROR_TRACE)
    failed = [r.id for r in trace.get_failed_runs()]
    assert len(failed) == 2
    index = dict(render_trace_files(trace))[f"{trace.trace_id}_index.md"]
    assert f"- failed runs: 2 ({', '.join(failed)})" in index


@needs_eval_data
def test_labelled_trail_evidence_reaches_a_chunk_with_its_span_id():
    figures = bench().bench_trail(EVAL / "trail")
    assert figures["eligible"] >= 80
    assert figures["survival"] >= 0.95, figures["misses"]
    assert figures["recall_at_5"] > 2 * figures["random_recall_at_5"]  # retrieval finds it far more often than chance


@needs_eval_data
def test_who_and_when_mistake_steps_render_under_their_own_number():
    figures = bench().bench_who_and_when(EVAL / "who-and-when")
    assert figures["loaded"] == len(WHO_AND_WHEN) and figures["step_renders"] == 1.0


@needs_eval_data
async def test_plan_works_on_a_who_and_when_log_as_is(monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    log = next(p for p in WHO_AND_WHEN if p.parent.name == "hand-crafted")
    assert await amain(["plan", str(log), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["runs"] == len(json.loads(log.read_text())["history"])


@needs_eval_data
async def test_a_trail_error_span_shows_as_failed_in_the_report(openai_env, tmp_path):
    out = tmp_path / "out"
    expect = tmp_path / "expect.txt"
    expect.write_text("The agent fixes the issue and submits a patch.")
    assert await amain(["run", str(ERROR_TRACE), "--expect", str(expect), "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    for run in load_trace(ERROR_TRACE).get_failed_runs():
        assert re.search(rf'<div class="wf-row error[^"]*"[^>]*data-run-id="{run.id}"', html)


@needs_eval_data
def test_labelled_trail_evidence_is_its_own_spans_source_text_and_no_other():
    """Verification's recall on real labels: gold evidence quoted from a span verifies for that span
    (it is the span's own text) and not for the span before it in the trace."""
    from refinery.analysis.verification import RunTexts, verify
    from refinery.traces.spool import upload_files_for

    b = bench()
    own = other = elsewhere = total = 0
    for path in TRAIL:
        raw = json.loads(path.read_bytes())
        errors = b.eligible_errors(EVAL / "trail", path, raw)
        if not errors:
            continue
        trace = load_trace(path)
        texts = RunTexts(upload_files_for(trace)[0])
        previous = {r.id: trace.runs[i - 1].id for i, r in enumerate(trace.runs) if i}
        for loc, evidence in errors:
            total += 1
            own += not verify({"run_id": loc, "evidence": evidence}, texts).unverified
            if loc in previous and evidence not in b.norm(texts.text(previous[loc])):
                elsewhere += 1
                other += bool(verify({"run_id": previous[loc], "evidence": evidence}, texts).unverified)
    assert total >= 80 and own == total
    assert elsewhere >= 50 and other == elsewhere  # cited to the wrong span, the same words never verify


@needs_eval_data
def test_stage1_read_inline_has_the_labelled_evidence_in_view():
    figures = asyncio.run(bench().bench_reading(EVAL / "trail", None))
    assert figures["eligible"] >= 80 and figures["inline_share"] >= 0.95, figures["misses"]
    assert figures["stage1_input_tokens_per_trace"]["inline"] > figures["stage1_input_tokens_per_trace"]["search"]
