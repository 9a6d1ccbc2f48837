"""Rendering: stable names, grouping, every run id present, truncation markers, determinism."""

from __future__ import annotations

from pathlib import Path

from refinery.core.models import TraceRun
from refinery.traces import load_trace
from refinery.traces.render import RenderOptions, render_trace_files
from refinery.traces.spool import upload_files_for
from tests.fixtures_traces import EVALS, EXPECTATION, PROMPTS, make_trace

FIX = Path(__file__).parent / "fixtures"


def test_runs_are_grouped_a_fixed_number_per_file_with_stable_names():
    files = render_trace_files(make_trace(n_runs=14), options=RenderOptions(runs_per_file=6))
    names = [n for n, _ in files]
    assert names == ["t1_runs_001-006.md", "t1_runs_007-012.md", "t1_runs_013-014.md", "t1_index.md"]
    assert files[0][1].count("## Run ") == 6 and files[2][1].count("## Run ") == 2


def test_every_run_id_appears_and_the_index_maps_it_to_its_file():
    trace = load_trace(FIX / "otlp_trace.json")
    files = dict(render_trace_files(trace, options=RenderOptions(runs_per_file=2)))
    index = files[f"{trace.trace_id}_index.md"]
    for i, run in enumerate(trace.runs):
        expected_file = f"{trace.trace_id}_runs_001-002.md" if i < 2 else f"{trace.trace_id}_runs_003-003.md"
        assert f"[run_id: {run.id}]" in files[expected_file]
        assert f"| {run.id} |" in index and index.split(f"| {run.id} |")[1].splitlines()[0].strip().endswith(
            f"| {expected_file} |"
        )


def test_run_heading_carries_type_status_timing_and_error():
    text = render_trace_files(make_trace())[0][1]
    section = text.split("## Run 002")[1].split("## Run 003")[0]
    assert "[run_id: run-2]" in section
    assert "- type: tool" in section and "- status: error" in section
    assert "- duration_ms: 250" in section and "- parent_run_id: run-1" in section
    assert "### Error (run-2)" in section and "KeyError: 'order_id'" in section
    assert "braces: {not a placeholder}" in section  # values as text, never JSON-escaped


def test_oversize_fields_are_cut_with_a_marker_saying_how_much():
    trace = make_trace(n_runs=1)
    trace.runs[0].inputs = {"blob": "HEAD" + "x" * 5000 + "TAIL"}
    text = render_trace_files(trace, options=RenderOptions(max_field_chars=1000, marker_every_chars=100_000))[0][1]
    assert (
        "[truncated: 4014 of 5014 characters cut here (characters 401–4414); the first 400 and last 600 are shown]"
        in text
    )
    assert "HEAD" in text and "TAIL" in text


def test_prompts_evals_and_expectations_get_their_own_files():
    names = [n for n, _ in render_trace_files(make_trace(), prompts=PROMPTS, evals=EVALS, expectation=EXPECTATION)]
    assert names[-3:] == ["t1_prompt_agent.txt.md", "t1_eval_refund_eval.json.md", "t1_expectations.md"]


def test_rendering_is_byte_for_byte_deterministic():
    a = render_trace_files(load_trace(FIX / "langfuse_export.json"), prompts=PROMPTS)
    b = render_trace_files(load_trace(FIX / "langfuse_export.json"), prompts=dict(reversed(list(PROMPTS.items()))))
    assert a == b


def test_a_trace_without_runs_still_has_an_index():
    [(name, text)] = render_trace_files(make_trace(n_runs=0))
    assert name == "t1_index.md" and "This trace has no runs." in text


def test_unsafe_trace_ids_become_safe_file_names():
    trace = make_trace(n_runs=1, trace_id="../../etc/passwd x")
    assert all("/" not in n and " " not in n for n, _ in render_trace_files(trace))


def test_upload_files_are_redacted_by_default_and_counted():
    trace = make_trace(n_runs=1)
    trace.runs[0].inputs = {"headers": {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz012345"}}
    files, report = upload_files_for(trace)
    assert "abcdefghijklmnopqrstuvwxyz012345" not in files[0][1]
    assert report.as_dict() == {"bearer_token": 1}  # the value is redacted as it is rendered, before its key is written
    raw, off = upload_files_for(trace, redact=False)
    assert "abcdefghijklmnopqrstuvwxyz012345" in raw[0][1] and off.total == 0


def test_large_trace_renders_every_run():
    """Scale is measured in benchmarks/; this checks correctness at a few thousand runs."""
    runs = [TraceRun(id=f"span-{i:05d}", name=f"step {i}", inputs={"text": "y" * 2000}) for i in range(3000)]
    trace = make_trace(n_runs=0)
    trace.runs = runs
    files = render_trace_files(trace)
    assert len(files) == 3000 // 6 + 1
    joined = "".join(t for _, t in files)
    assert all(f"[run_id: span-{i:05d}]" in joined for i in (0, 1499, 2999))
