"""Loaders for the shapes people really export: ClickHouse-layout spans and wrapped step logs.

The fixtures are the project's own, written in the shapes of TRAIL's OpenTelemetry export and
Who&When's logs (see ../shared/eval-data/README.md); the real files are checked in
test_eval_data_evidence.py when present.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from refinery.core.models import RunType
from refinery.errors import TraceFormatError
from refinery.traces import detect_format, load_trace
from refinery.traces.otel import parse_duration

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture
def snake():
    return load_trace(FIX / "clickhouse_snake_nested.json")


def test_snake_case_columns_give_names_kinds_and_the_tree(snake):
    assert [r.name for r in snake.runs] == [
        "answer_question",
        "CodeAgent.run",
        "LiteLLMModel.__call__",
        "WebSearchTool",
        "LiteLLMModel.__call__",
    ]
    assert [r.run_type for r in snake.runs] == [RunType.UNKNOWN, RunType.AGENT, RunType.LLM, RunType.TOOL, RunType.LLM]
    assert [r.parent_run_id for r in snake.runs] == [None, "bbbbbbbbbbbbbbbb", *["aaaaaaaaaaaaaaaa"] * 3]
    assert snake.trace_id == "c0ffee00c0ffee00c0ffee00c0ffee00" and snake.project_name == "research-bot"


def test_status_error_with_its_exception_event_makes_a_failed_run(snake):
    [failed] = snake.get_failed_runs()
    assert failed.id == "2222222222222222"
    assert failed.error == "TimeoutError: search backend did not answer in 10 s"
    assert failed.metadata["events"][0]["name"] == "exception"


def test_timestamp_plus_iso_duration_gives_start_and_end(snake):
    llm = snake.runs[2]
    assert llm.start_time.isoformat() == "2026-03-01T10:00:01+00:00"
    assert llm.duration_ms == 1500.0


def test_llm_span_keeps_structured_messages_not_the_same_conversation_twice(snake):
    llm = snake.runs[2]
    assert [m["role"] for m in llm.inputs["messages"]] == ["system", "user"]
    assert "input" not in llm.inputs and "output" not in (llm.outputs or {})
    assert llm.metadata["model"] == "o3-mini"
    assert llm.metadata["tokens"] == {"input_tokens": "812", "output_tokens": "40", "total_tokens": "852"}
    assert llm.inputs["tools"]  # the definitions; rendering shows them once, in the index


def test_function_logs_supply_inputs_and_outputs_of_plain_spans(snake):
    root = snake.runs[0]
    assert root.inputs == {"arguments": {"question": "What year did the bridge open?"}}
    assert root.outputs == {"output": "1932"}


def test_attributes_every_span_repeats_move_to_the_trace(snake):
    assert snake.metadata["common_attributes"] == {"app.env": "prod"}
    assert snake.metadata["resource"]["service.name"] == "research-bot"
    assert all("resource" not in r.metadata for r in snake.runs)


def test_camel_case_rows_with_parallel_event_arrays_and_ns_durations():
    t = load_trace(FIX / "clickhouse_camel_rows.json")
    agent, chat, tool = t.runs
    assert (agent.run_type, chat.run_type, tool.run_type) == (RunType.AGENT, RunType.LLM, RunType.TOOL)
    assert chat.parent_run_id == agent.id == "0a0a0a0a0a0a0a0a"
    assert agent.duration_ms == 3000.0 and chat.metadata["model"] == "gpt-4o"
    assert tool.error == "card declined\nPaymentError: card declined: insufficient funds"
    assert tool.inputs == {"tool.call.arguments": {"amount": 4200}}
    assert t.project_name == "checkout-agent"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("PT1M48.75533S", timedelta(minutes=1, seconds=48.75533)),
        ("PT0.000047S", timedelta(microseconds=47)),
        (1_500_000_000, timedelta(seconds=1.5)),
        ("250000000", timedelta(seconds=0.25)),
        ("P1DT2H", timedelta(days=1, hours=2)),
    ],
)
def test_durations_in_iso_8601_or_nanoseconds(value, expected):
    assert parse_duration(value) == expected


def test_a_bad_duration_names_the_field(tmp_path):
    data = json.loads((FIX / "clickhouse_camel_rows.json").read_text())
    data[1]["Duration"] = "about a second"
    p = tmp_path / "rows.json"
    p.write_text(json.dumps(data))
    with pytest.raises(TraceFormatError, match=r"rows\.json at spans\[1\]\.duration: expected an ISO-8601 duration"):
        load_trace(p)


@pytest.fixture
def log():
    return load_trace(FIX / "step_log_wrapped.json")


def test_a_wrapped_step_log_is_detected_and_loaded():
    assert detect_format(json.loads((FIX / "step_log_wrapped.json").read_text())) == "plain"


def test_step_ids_keep_the_sources_zero_based_numbering(log):
    assert [r.id for r in log.runs] == [f"step-{i}" for i in range(7)]
    assert [r.step for r in log.runs] == list(range(7))


def test_agent_names_are_kept_exactly_as_written(log):
    assert [r.name for r in log.runs] == [
        "human",
        "Orchestrator (thought)",
        "Orchestrator (-> WebSurfer)",
        "WebSurfer",
        "Orchestrator (thought)",
        "WebSurfer",
        "Orchestrator (thought)",
    ]


def test_task_and_system_prompts_are_kept_and_labels_set_apart(log):
    assert log.metadata["task"].startswith("Which café near the station")
    assert log.metadata["system_prompts"] == {
        "Planner": "You plan the search. Hand work to WebSurfer.",
        "WebSurfer": "You browse the web and report what pages say.",
    }
    assert log.metadata["labels"]["mistake_step"] == "4" and "mistake_agent" not in log.metadata
    assert log.metadata["level"] == "2"  # other top-level fields stay as trace metadata


def test_format_plain_accepts_the_wrapped_log_too():
    assert len(load_trace(FIX / "step_log_wrapped.json", format="plain").runs) == 7


def test_a_directory_is_refused_in_one_line(tmp_path):
    with pytest.raises(TraceFormatError, match=r"is a directory; give one trace file"):
        load_trace(tmp_path)


@pytest.mark.parametrize("data", [[], {"history": []}, {"spans": []}])
def test_a_trace_with_no_runs_is_refused(data):
    with pytest.raises(TraceFormatError, match="the trace has no runs"):
        load_trace(data)
