"""Nothing invented: a run's status is `error`, `ok` or `not stated`, and only a source that
states it makes it ok or error — in the rendered text, the index, the report and Stage 1."""

from __future__ import annotations

import pytest

from refinery.analysis.staged_schemas import TimelineEntry
from refinery.traces import load_trace, render_trace_files


def _run_text(files, run_id: str) -> str:
    for i, (_, text) in enumerate(files):
        for rid, start, end in files.layout(i).sections():
            if rid == run_id:
                return text[start:end]
    raise AssertionError(f"{run_id} not rendered")


def test_a_step_log_states_no_status_even_for_a_step_whose_output_is_an_error_message():
    trace = load_trace(
        {
            "question": "Refund order 42",
            "history": [
                {"role": "user", "content": "Refund order 42"},
                {"role": "tool", "name": "lookup", "content": "ERROR: order 42 not found"},
            ],
        }
    )
    files = render_trace_files(trace)
    assert [r.stated_status for r in trace.runs] == ["not stated", "not stated"]
    assert "- status: not stated" in _run_text(files, "step-1")
    assert "success" not in "".join(text for _, text in files)
    index = dict(files)[f"{trace.trace_id}_index.md"]
    assert "| 002 (step 1) | step-1 | lookup | tool | not stated |" in index


def test_a_step_log_error_field_is_stated():
    trace = load_trace({"history": [{"role": "tool", "name": "lookup", "content": "x", "error": "timeout"}]})
    assert trace.runs[0].stated_status == "error"


def _span(status: dict | None, events: list | None = None) -> dict:
    span = {
        "traceId": "a" * 32,
        "spanId": "b" * 16,
        "name": "lookup",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001000000000",
        "attributes": [],
    }
    if status is not None:
        span["status"] = status
    if events:
        span["events"] = events
    return span


@pytest.mark.parametrize(
    ("status", "events", "stated"),
    [
        ({"code": 1}, None, "ok"),
        ({"code": "STATUS_CODE_OK"}, None, "ok"),
        ({"code": 2, "message": "boom"}, None, "error"),
        ({"code": 0}, None, "not stated"),
        (None, None, "not stated"),
        (
            {"code": 0},
            [{"name": "exception", "attributes": [{"key": "exception.message", "value": {"stringValue": "KeyError"}}]}],
            "error",
        ),
    ],
    ids=["OK", "OK by name", "ERROR", "UNSET", "absent", "UNSET with an exception event"],
)
def test_an_otel_span_is_ok_or_error_only_when_its_status_or_an_exception_says_so(status, events, stated):
    trace = load_trace([_span(status, events)])
    assert trace.runs[0].stated_status == stated


def test_trail_status_codes_are_read_as_written():
    rows = [
        {
            "span_id": "s1",
            "trace_id": "t",
            "span_name": "a",
            "status_code": "Ok",
            "timestamp": "2025-01-01T00:00:00Z",
            "span_attributes": {},
        },
        {
            "span_id": "s2",
            "trace_id": "t",
            "span_name": "b",
            "status_code": "Unset",
            "timestamp": "2025-01-01T00:00:01Z",
            "span_attributes": {},
        },
    ]
    assert [r.stated_status for r in load_trace({"trace_id": "t", "spans": rows}).runs] == ["ok", "not stated"]


@pytest.mark.parametrize(("status", "stated"), [("success", "ok"), ("error", "error"), (None, "not stated")])
def test_a_langsmith_run_status_is_read_when_present(status, stated):
    run = {"id": "r1", "name": "chain", "run_type": "chain", "inputs": {}, "outputs": {}, "trace_id": "r1"}
    if status:
        run["status"] = status
    assert load_trace([run]).runs[0].stated_status == stated


def test_a_langfuse_observation_at_default_level_states_nothing():
    data = {
        "trace": {"id": "t"},
        "observations": [
            {"id": "o1", "traceId": "t", "type": "SPAN", "level": "DEFAULT"},
            {"id": "o2", "traceId": "t", "type": "SPAN", "level": "ERROR", "statusMessage": "boom"},
        ],
    }
    assert [r.stated_status for r in load_trace(data).runs] == ["not stated", "error"]


def test_stage1_artifacts_written_with_success_resume_as_ok():
    entry = {
        "sequence": 1,
        "run_id": "r",
        "run_name": "n",
        "action": "a",
        "status": "success",
        "key_inputs": "",
        "key_outputs": "",
        "tool_calls": [],
        "citations": [],
    }
    assert TimelineEntry.model_validate(entry).status == "ok"
