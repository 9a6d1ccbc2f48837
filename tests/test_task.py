"""The task, found where traces keep it: the top agent span's input (smolagents writes
`{"task": …}`), else the first user message of the first LLM call, else the root run's inputs,
else the trace's input (Langfuse); `refinery plan` says where."""

from __future__ import annotations

import json

import pytest

from refinery.app.cli import amain
from refinery.traces import load_trace
from tests.helpers import SHARED  # noqa: E402


def _trail_like(agent_input: str | None, llm_user: str | None = None) -> dict:
    """A TRAIL-shaped export (ClickHouse columns, spans nested under the root)."""
    llm = {
        "span_id": "s3",
        "parent_span_id": "s2",
        "trace_id": "t",
        "span_name": "LiteLLMModel.__call__",
        "status_code": "Ok",
        "timestamp": "2025-03-01T10:00:02Z",
        "span_attributes": {"openinference.span.kind": "LLM"},
    }
    if llm_user:
        llm["span_attributes"].update(
            {
                "llm.input_messages.0.message.role": "system",
                "llm.input_messages.0.message.content": "You are an agent.",
                "llm.input_messages.1.message.role": "user",
                "llm.input_messages.1.message.content": llm_user,
            }
        )
    agent = {
        "span_id": "s2",
        "parent_span_id": "s1",
        "trace_id": "t",
        "span_name": "CodeAgent.run",
        "status_code": "Ok",
        "timestamp": "2025-03-01T10:00:01Z",
        "span_attributes": {"openinference.span.kind": "AGENT"},
        "child_spans": [llm],
    }
    if agent_input:
        agent["span_attributes"]["input.value"] = agent_input
    root = {
        "span_id": "s1",
        "parent_span_id": None,
        "trace_id": "t",
        "span_name": "main",
        "status_code": "Unset",
        "timestamp": "2025-03-01T10:00:00Z",
        "span_attributes": {},
        "child_spans": [agent],
    }
    return {"trace_id": "t", "spans": [root]}


def test_the_top_agent_spans_task_is_found():
    trace = load_trace(
        _trail_like(json.dumps({"task": "How many moons has Mars?", "stream": False}), llm_user="other text")
    )
    assert trace.metadata["task"] == "How many moons has Mars?"
    assert trace.metadata["task_source"] == "the input of the top agent span 'CodeAgent.run' [run_id: s2]"


def test_without_an_agent_input_the_first_llm_calls_user_message_is_the_task():
    trace = load_trace(_trail_like(None, llm_user="Find the refund policy."))
    assert trace.metadata["task"] == "Find the refund policy."
    assert trace.metadata["task_source"].startswith("the first user message of the first LLM call")


def test_a_langsmith_root_runs_inputs_hold_the_task():
    runs = [
        {"id": "r1", "name": "agent", "run_type": "chain", "inputs": {"question": "Refund order 42"}, "trace_id": "r1"},
        {
            "id": "r2",
            "name": "lookup",
            "run_type": "tool",
            "inputs": {"order": "42"},
            "parent_run_id": "r1",
            "trace_id": "r1",
        },
    ]
    trace = load_trace(runs)
    assert (trace.metadata["task"], trace.metadata["task_source"]) == (
        "Refund order 42",
        "the inputs of the root run 'agent' [run_id: r1]",
    )


def test_a_langfuse_traces_input_is_the_task():
    data = {
        "trace": {"id": "t", "input": "What is Langfuse?"},
        "observations": [{"id": "o1", "traceId": "t", "type": "SPAN", "input": {"x": 1}}],
    }
    trace = load_trace(data)
    assert (trace.metadata["task"], trace.metadata["task_source"]) == ("What is Langfuse?", "the trace's input")


def test_a_trace_without_a_task_states_none():
    trace = load_trace([{"spanId": "a1", "traceId": "t", "name": "tool", "attributes": []}])
    assert "task" not in trace.metadata


async def test_refinery_plan_works_on_a_trail_shaped_trace_without_expect_and_says_where_the_task_is(tmp_path, capsys):
    path = tmp_path / "trail.json"
    path.write_text(json.dumps(_trail_like(json.dumps({"task": "How many moons has Mars?"}))))
    assert await amain(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "task (from the input of the top agent span 'CodeAgent.run' [run_id: s2]): How many moons has Mars?" in out


@pytest.mark.skipif(not (SHARED / "eval-data" / "trail").is_dir(), reason="../shared/eval-data not present")
def test_every_real_trail_trace_states_its_task():
    paths = sorted((SHARED / "eval-data" / "trail" / "traces").glob("*/*.json"))
    found = [load_trace(p).metadata.get("task_source", "") for p in paths]
    assert paths and all(f.startswith("the input of the top agent span") for f in found)
