"""Each loader turns its format into the core Trace: ids, tree, order, types, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refinery.core.models import RunType
from refinery.errors import TraceFormatError
from refinery.traces import detect_format, load_trace, load_traces
from refinery.traces.common import parse_time
from tests.helpers import SHARED

FIX = Path(__file__).parent / "fixtures"


def test_langsmith_runs_are_ordered_by_dotted_order_with_errors():
    t = load_trace(FIX / "langsmith_runs.json")
    assert t.trace_id == "6f1c2d3e-0000-4000-8000-000000000001"
    assert [r.name for r in t.runs] == ["RefundAgent", "ChatOpenAI", "lookup_order"]
    assert [r.run_type for r in t.runs] == [RunType.CHAIN, RunType.LLM, RunType.TOOL]
    assert t.get_root_run().name == "RefundAgent"
    [failed] = t.get_failed_runs()
    assert failed.error == "KeyError: 'order_id'" and failed.parent_run_id == t.trace_id
    assert t.project_name == "refund-bot"
    assert t.runs[1].duration_ms == 1000.0
    assert t.duration_ms == 5000.0


def test_langsmith_jsonl_gives_the_same_trace():
    a, b = load_trace(FIX / "langsmith_runs.json"), load_trace(FIX / "langsmith_runs.jsonl")
    assert [r.model_dump() for r in a.runs] == [r.model_dump() for r in b.runs]


def test_langsmith_ingestion_payload_merges_post_and_patch_on_id():
    t = load_trace(FIX / "langsmith_ingest.json")
    [run] = t.runs
    assert run.id == "aaaa0000-0000-4000-8000-000000000001"  # the JS patch had no id: taken from dotted_order
    assert run.inputs == {"messages": [{"role": "user", "content": "hi"}]}
    assert run.outputs == {"content": "hello"}
    assert run.error == "RateLimitError: 429"
    assert run.duration_ms == 1500.0  # epoch-millisecond timestamps


def test_otlp_json_with_openinference_attributes():
    t = load_trace(FIX / "otlp_trace.json")
    assert t.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and t.project_name == "support-agent"
    agent, llm, tool = t.runs
    assert (agent.run_type, llm.run_type, tool.run_type) == (RunType.AGENT, RunType.LLM, RunType.TOOL)
    assert llm.parent_run_id == agent.id == "00f067aa0ba902b7"
    assert llm.inputs["messages"] == [{"role": "user", "content": "Refund order 42"}]
    assert llm.outputs["messages"][0]["tool_calls"][0]["tool_call"]["function"]["name"] == "lookup_order"
    assert llm.metadata["model"] == "gpt-4o" and llm.metadata["tokens"] == {"input_tokens": 120, "output_tokens": 18}
    assert tool.inputs == {"input": {"order_id": None}}
    assert tool.error.startswith("order_id is required") and "ValueError" in tool.error
    assert not llm.is_failed
    assert agent.duration_ms == 5000.0


def test_flat_span_list_with_genai_conventions_and_error_status():
    t = load_trace(FIX / "otel_span_list.json")
    agent, chat = t.runs
    assert agent.run_type == RunType.AGENT and chat.run_type == RunType.LLM
    assert chat.parent_run_id == agent.id == "eee19b7ec3c1b174"
    assert chat.error == "context_length_exceeded"
    assert chat.metadata["tokens"]["input_tokens"] == 128000


def test_nested_span_tree():
    t = load_trace(FIX / "otel_nested.json")
    assert [(r.id, r.parent_run_id) for r in t.runs] == [("a1", None), ("a2", "a1"), ("a3", "a1")]
    assert t.runs[1].run_type == RunType.RETRIEVER


def test_single_span_attribute_map():
    t = load_trace(FIX / "otel_attribute_map.json")
    [run] = t.runs
    assert run.run_type == RunType.LLM
    assert run.inputs == {"input": "What is the refund window?"} and run.outputs == {"output": "30 days"}


@pytest.mark.parametrize("name", ["phoenix_spans.json", "phoenix_spans_otlpv1.json"])
def test_a_page_of_phoenix_spans_from_either_rest_endpoint(name):
    # what Phoenix's `GET /v1/projects/{p}/spans` and `…/spans/otlpv1` answered for spans this
    # project sent it: status and kind as top-level fields in one, protobuf's snake_case values in the other
    t = load_trace(FIX / name)
    assert t.trace_id == "68efeb5e0451d86531a041b5a9a372f9"
    agent, llm, tool = t.runs
    assert [r.run_type for r in t.runs] == [RunType.AGENT, RunType.LLM, RunType.TOOL]
    assert llm.parent_run_id == tool.parent_run_id == agent.id == "e4218576a7391dbf"
    assert agent.error == "agent gave up" and llm.error is None and not llm.is_failed
    assert tool.error.startswith("order 1234 not found in region EU\nValueError: order 1234 not found in region EU")
    assert tool.error.count("ValueError") == 1  # its one-line stack trace repeats that line: not shown twice
    [event] = tool.metadata["events"]  # plain values, whichever shape: no typed wrappers, no null fields
    assert event["name"] == "exception" and event["attributes"]["exception.type"] == "ValueError"
    assert "dropped_attributes_count" not in event and "time_unix_nano" not in event
    assert event["timestamp"].startswith("2026-12-01T10:44:44.18176")
    assert tool.inputs == {"input": {"order_id": "1234"}}
    assert llm.inputs["messages"] == [{"content": "Refund order 1234", "role": "user"}]
    assert llm.metadata["model"] == "gpt-4o"


def test_snake_case_any_values_take_the_one_kind_that_is_set():
    from refinery.traces.otel_attributes import otlp_value

    nulls = dict.fromkeys(("string_value", "int_value", "double_value", "bool_value", "array_value", "kvlist_value"))
    assert otlp_value({**nulls, "int_value": "7"}) == 7
    assert otlp_value({**nulls, "bool_value": False}) is False
    assert otlp_value({**nulls, "string_value": ""}) == ""
    assert otlp_value({**nulls, "array_value": {"values": [{**nulls, "double_value": 0.5}]}}) == [0.5]
    assert otlp_value({**nulls, "kvlist_value": {"values": [{"key": "k", "value": {"string_value": "v"}}]}}) == {
        "k": "v"
    }
    assert otlp_value(nulls) is None


def test_langfuse_export_with_error_level():
    t = load_trace(FIX / "langfuse_export.json")
    assert t.trace_id == "lf-trace-1"
    assert [r.id for r in t.runs] == ["obs-1", "obs-2", "obs-3"]
    root, tool, gen = t.runs
    assert root.run_type == RunType.AGENT and tool.run_type == RunType.TOOL and gen.run_type == RunType.LLM
    assert tool.error == "order 42 not found" and tool.parent_run_id == "obs-1"
    assert gen.metadata["warning"] == "slow" and not gen.is_failed
    assert root.inputs == {"input": "Refund order 42"}  # double-encoded JSON string decoded
    assert t.metadata["tags"] == ["prod"]


def test_plain_chat_log_of_a_multi_agent_run():
    t = load_trace(FIX / "plain_chat.json")
    assert [r.name for r in t.runs] == ["user", "triage", "billing", "lookup_order", "billing"]
    assert t.runs[3].run_type == RunType.TOOL and t.runs[3].error == "KeyError: 'order_id'"
    assert t.runs[2].outputs["tool_calls"][0]["name"] == "lookup_order"
    assert len({r.id for r in t.runs}) == 5
    assert load_trace(FIX / "plain_chat.json").trace_id == t.trace_id  # stable id


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("langsmith_runs.json", "langsmith"),
        ("langsmith_ingest.json", "langsmith"),
        ("otlp_trace.json", "otel"),
        ("otel_span_list.json", "otel"),
        ("otel_nested.json", "otel"),
        ("otel_attribute_map.json", "otel"),
        ("langfuse_export.json", "langfuse"),
        ("plain_chat.json", "plain"),
        ("clickhouse_snake_nested.json", "otel"),
        ("clickhouse_camel_rows.json", "otel"),
        ("step_log_wrapped.json", "plain"),
        ("phoenix_spans.json", "otel"),
        ("phoenix_spans_otlpv1.json", "otel"),
    ],
)
def test_format_detection(name, fmt):
    assert detect_format(json.loads((FIX / name).read_text())) == fmt


def test_unknown_shape_names_the_file(tmp_path):
    p = tmp_path / "weird.json"
    p.write_text('{"hello": "world"}')
    with pytest.raises(TraceFormatError, match=r"weird\.json: unrecognised trace format"):
        load_trace(p)


def test_not_json_names_the_file(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text("{not json")
    with pytest.raises(TraceFormatError, match=r"broken\.json: not JSON"):
        load_trace(p)


def test_bad_field_names_file_and_field(tmp_path):
    data = json.loads((FIX / "langfuse_export.json").read_text())
    data["observations"][1]["startTime"] = "yesterday-ish"
    p = tmp_path / "lf.json"
    p.write_text(json.dumps(data))
    with pytest.raises(
        TraceFormatError, match=r"lf\.json at observations\[1\]\.startTime: expected an ISO-8601 timestamp"
    ):
        load_trace(p)


def test_missing_id_names_the_field():
    with pytest.raises(TraceFormatError, match=r"observations\[0\]: missing required field 'id'"):
        load_trace({"trace": {"id": "x"}, "observations": [{"type": "SPAN"}]})


def test_forced_format_that_does_not_fit():
    with pytest.raises(TraceFormatError, match="expected a Langfuse export"):
        load_trace([{"role": "user", "content": "hi"}], format="langfuse")


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("2026-03-01T10:00:00Z", "2026-03-01T10:00:00+00:00"),
        (1772359200, "2026-03-01T10:00:00+00:00"),
        (1772359200000, "2026-03-01T10:00:00+00:00"),
        ("1772359200000000000", "2026-03-01T10:00:00+00:00"),
        ([1772359200, 500000000], "2026-03-01T10:00:00.500000+00:00"),
    ],
)
def test_timestamps_in_every_export_style(value, iso):
    assert parse_time(value).isoformat() == iso


SAMPLES = sorted((SHARED / "trace-samples").glob("*/*.json")) if (SHARED / "trace-samples").is_dir() else []


@pytest.mark.skipif(not SAMPLES, reason="../shared/trace-samples not present")
@pytest.mark.parametrize("path", SAMPLES, ids=[f"{p.parent.name}/{p.name}" for p in SAMPLES])
def test_every_shared_sample_loads(path):
    formats = {"langfuse": "langfuse", "langsmith": "langsmith", "openinference": "otel", "inspect": "inspect"}
    for t in load_traces(path):  # an Inspect log holds one trace a sample
        assert t.runs, "a sample trace loaded with no runs"
        assert t.trace_id
        assert all(r.id for r in t.runs)
        assert t.metadata["format"] == formats[path.parent.name]


def test_a_message_repeated_across_llm_spans_is_held_once():
    """OpenInference LLM spans repeat the conversation so far; parsed, each copy was its own string."""
    history = "You are a refund agent. " * 40

    def span(i: int) -> dict:
        attrs = [
            {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
            {"key": "llm.input_messages.0.message.role", "value": {"stringValue": "system"}},
            {"key": "llm.input_messages.0.message.content", "value": {"stringValue": history}},
        ]
        return {"traceId": "ab" * 16, "spanId": f"{i:016x}", "name": f"llm {i}", "attributes": attrs}

    data = json.loads(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span(1), span(2)]}]}]}))
    a, b = load_trace(data).runs
    assert a.inputs["messages"][0]["content"] == history
    assert a.inputs["messages"][0]["content"] is b.inputs["messages"][0]["content"]
