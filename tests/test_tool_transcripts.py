"""Chat transcripts with tool calls (OpenAI and Anthropic shapes): each tool call is a run with its
name, arguments and result, nested under the assistant turn that made it; a result marked as an
error fails the run; every message keeps its step number."""

from __future__ import annotations

from pathlib import Path

from refinery.core.models import RunType
from refinery.traces import load_trace
from refinery.traces.render import render_trace_files

FIX = Path(__file__).parent / "fixtures"


def test_an_openai_tool_result_is_the_tools_run_under_its_caller():
    trace = load_trace(FIX / "openai_tool_transcript.json")
    by_id = {r.id: r for r in trace.runs}
    tool = by_id["step-3"]
    assert tool.name == "lookup_order" and tool.run_type == RunType.TOOL
    assert tool.inputs["arguments"] == {"order_id": 42} and "not found" in tool.outputs["content"]
    assert tool.parent_run_id == "step-2" and tool.metadata["tool_call_id"] == "call_lookup1"
    assert tool.is_failed  # the result says is_error
    assert [r.step for r in trace.runs] == [0, 1, 2, 3, 4]


def test_an_anthropic_tool_result_becomes_a_run_and_the_messages_keep_their_text():
    trace = load_trace(FIX / "anthropic_tool_transcript.json")
    ids = [r.id for r in trace.runs]
    assert ids == ["step-0", "step-1", "step-2", "toolu_01A", "step-3"]
    caller, tool = trace.runs[1], trace.runs[3]
    assert caller.outputs["content"] == "Let me check the weather."
    assert caller.outputs["tool_calls"] == [{"id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}}]
    assert tool.name == "get_weather" and tool.inputs["arguments"] == {"city": "Paris"}
    assert tool.parent_run_id == "step-1" and tool.step == 2 and tool.error == "upstream timeout after 30 s"
    assert trace.runs[4].outputs["content"] == "It is sunny in Paris."


def test_the_rendered_tool_run_shows_its_name_arguments_and_result_together():
    trace = load_trace(FIX / "anthropic_tool_transcript.json")
    text = "\n".join(t for _, t in render_trace_files(trace))
    section = text[text.index("[run_id: toolu_01A]") :]
    assert "get_weather" in text and '"city": "Paris"' in section[:2000] or "city: Paris" in section[:2000]
    assert "upstream timeout after 30 s" in section[:2000]
