"""Agent frameworks' logs (SWE-agent, OpenHands, the OpenAI Agents SDK) and the fallback for an
unknown shape with messages inside: each loads from its content, with no flag."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from refinery.core.models import RunType
from refinery.errors import TraceFormatError
from refinery.traces import load_trace

FIX = Path(__file__).parent / "fixtures"


def test_a_swe_agent_trajectory_is_one_run_per_step_with_the_issue_as_its_task():
    trace = load_trace(FIX / "swe_agent.traj")
    assert trace.metadata["format"] == "swe_agent" and trace.trace_id == "calc__calc-7"
    assert [r.name for r in trace.runs] == ["open", "edit", "submit"] and [r.step for r in trace.runs] == [0, 1, 2]
    first = trace.runs[0]
    assert first.inputs["thought"] == "Let me look at the file." and "def divide" in first.outputs["observation"]
    assert first.metadata["state"]["open_file"] == "/repo/src/calc.py"
    assert "ZeroDivisionError" in trace.metadata["task"] and trace.metadata["info"]["exit_status"] == "submitted"


def test_an_openhands_action_holds_its_observation_and_an_error_observation_fails_it():
    trace = load_trace(FIX / "openhands_events.json")
    assert trace.metadata["format"] == "openhands"
    names = [r.name for r in trace.runs]
    assert names == ["user message", "agent run", "agent edit", "agent finish"]
    run = trace.runs[1]
    assert run.inputs["command"] == "pytest -q" and "ZeroDivisionError" in run.outputs["content"]
    assert run.outputs["extras"]["exit_code"] == 1 and run.run_type == RunType.TOOL
    edit = trace.runs[2]
    assert edit.error == "File src/calc.py not found in the workspace"
    assert trace.metadata["task"] == "Fix the failing test in tests/test_calc.py"


def test_an_agents_sdk_trace_is_one_run_per_span_nested_by_parent():
    trace = load_trace(FIX / "openai_agents_trace.json")
    assert trace.trace_id == "trace_0a1b2c3d4e5f" and trace.project_name == "Refund workflow"
    by_id = {r.id: r for r in trace.runs}
    assert by_id["span_agent1"].run_type == RunType.AGENT and by_id["span_gen1"].run_type == RunType.LLM
    fn = by_id["span_fn1"]
    assert fn.name == "lookup_order" and fn.inputs["input"] == {"order_id": 24} and fn.parent_run_id == "span_agent1"
    assert fn.error == "Error running tool lookup_order" and fn.metadata["span_type"] == "function"
    assert by_id["span_handoff1"].name == "handoff Triage agent → Refund agent"
    assert trace.metadata["task"] == "Refund my order 42"
    assert [r.id for r in trace.runs][0] == "span_agent1"  # the parent first


def test_an_unknown_shape_with_messages_inside_loads_them_and_says_from_where(caplog):
    with caplog.at_level(logging.WARNING, logger="refinery.traces"):
        trace = load_trace(FIX / "unknown_with_messages.json")
    assert [r.outputs or r.inputs for r in trace.runs][1] == {"content": "Booked a table for four at 9pm."}
    assert trace.metadata["loaded_from"] == "$.record.conversation.turns"
    assert "loaded messages from $.record.conversation.turns; use --format to choose" in caplog.text


def test_an_unknown_shape_without_messages_lists_what_is_accepted_and_what_it_saw(tmp_path):
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({"alpha": 1, "beta": [1, 2, 3]}))
    with pytest.raises(
        TraceFormatError, match=r"unrecognised trace format \(keys 'alpha', 'beta'\); expected .*SWE-agent"
    ):
        load_trace(path)


@pytest.mark.parametrize(
    "name",
    [
        "inspect_log.json",
        "taubench_results.json",
        "swe_agent.traj",
        "openhands_events.json",
        "openai_agents_trace.json",
        "openai_tool_transcript.json",
        "anthropic_tool_transcript.json",
        "unknown_with_messages.json",
    ],
)
def test_plan_works_as_is_on_every_new_shape(name, capsys, monkeypatch):
    """Offline, no flag: the format detected, the task found, every request built."""
    import asyncio

    from refinery.app.cli import amain

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert asyncio.run(amain(["plan", str(FIX / name), "--json"])) == 0
    out = json.loads(capsys.readouterr().out)
    plans = out.get("traces", [out])
    assert plans and all(p["runs"] > 0 and p["task"]["text"] and p["total"]["calls"] >= 4 for p in plans)
