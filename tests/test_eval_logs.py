"""Eval logs (Inspect AI `.json` and `.eval`, τ-bench results): one trace per sample, runs from the
sample's events (model calls, tool calls, errors) or its messages, the task from its input, the
target as the expected output — and the scores, rewards and expected actions kept as labels, never
rendered."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from refinery.app.inputs import expectation_for
from refinery.core.models import RunType
from refinery.errors import TraceFormatError
from refinery.traces import load_trace, load_traces
from refinery.traces.render import render_trace_files

FIX = Path(__file__).parent / "fixtures"
INSPECT = FIX / "inspect_log.json"


def rendered(trace) -> str:
    return "\n".join(text for _, text in render_trace_files(trace))


def test_an_inspect_log_is_one_trace_per_sample_named_by_task_and_sample():
    traces = load_traces(INSPECT)
    assert [t.trace_id for t in traces] == ["refund_task-order-42", "refund_task-order-7"]
    assert [t.metadata["format"] for t in traces] == ["inspect", "inspect"]


def test_a_sample_with_events_has_a_run_per_model_and_tool_call():
    trace = load_trace(INSPECT, sample="order-42")
    kinds = [(r.name, r.run_type) for r in trace.runs]
    assert kinds == [("openai/gpt-4o", RunType.LLM), ("lookup_order", RunType.TOOL), ("openai/gpt-4o", RunType.LLM)]
    tool = trace.runs[1]
    assert tool.parent_run_id == "ev-model-1" and tool.inputs == {"order_id": 24}
    assert tool.outputs == {"result": "order 24: $24.00, paid"}
    assert trace.metadata["task"] == "Refund order 42 and tell me the amount."
    expectation = expectation_for(None, trace)
    assert expectation.expected_output == "Refunded $19.99"


def test_a_samples_scores_are_labels_never_rendered():
    trace = load_trace(INSPECT, sample="order-42")
    assert trace.metadata["labels"]["scores"]["match"]["value"] == "I"
    assert "expected Refunded $19.99" not in rendered(trace)


def test_a_sample_without_events_reads_its_messages_with_tool_calls_linked():
    trace = load_trace(INSPECT, sample="order-7")
    tool = next(r for r in trace.runs if r.run_type == RunType.TOOL)
    assert tool.name == "cancel_order" and tool.inputs["arguments"] == {"order_id": 7}
    assert tool.error == "cancel_order timed out after 30 s" and tool.parent_run_id == "step-1"
    assert trace.metadata["task"] == "Cancel order 7."


def test_a_log_of_several_samples_needs_one_named_to_load_one():
    with pytest.raises(TraceFormatError, match=r"holds 2 traces \(samples order-42, order-7\); pick one with --sample"):
        load_trace(INSPECT)
    with pytest.raises(TraceFormatError, match="no sample 'nope'"):
        load_trace(INSPECT, sample="nope")


def test_an_eval_zip_reads_its_header_and_each_sample(tmp_path):
    data = json.loads(INSPECT.read_text())
    path = tmp_path / "log.eval"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("header.json", json.dumps({k: v for k, v in data.items() if k != "samples"}))
        for s in data["samples"]:
            z.writestr(f"samples/{s['id']}_epoch_1.json", json.dumps(s))
        z.writestr("summaries.json", "[]")
    traces = load_traces(path)
    assert sorted(t.trace_id for t in traces) == ["refund_task-order-42", "refund_task-order-7"]
    assert load_trace(path, sample="order-42").runs[1].name == "lookup_order"


def test_a_taubench_results_file_is_one_trace_per_record():
    traces = load_traces(FIX / "taubench_results.json")
    assert [t.trace_id for t in traces] == ["tau-task12-trial0", "tau-task13-trial0"]
    first = traces[0]
    assert first.metadata["task"].startswith("You want to exchange your laptop")
    tool = next(r for r in first.runs if r.run_type == RunType.TOOL)
    assert tool.name == "find_user_id_by_name_zip" and tool.inputs["arguments"]["zip"] == "94107"
    assert first.metadata["labels"]["reward"] == 0.0 and first.metadata["labels"]["expected_actions"]
    text = rendered(first)
    assert "exchange_delivered_order_items" not in text and "reward" not in text  # the answer key stays out


def test_plan_plans_every_sample_of_a_log_offline(tmp_path, capsys, monkeypatch):
    import asyncio

    from refinery.app.cli import amain

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert asyncio.run(amain(["plan", str(INSPECT), "--json"])) == 0
    out = json.loads(capsys.readouterr().out)
    assert [t["sample_id"] for t in out["traces"]] == ["order-42", "order-7"] and out["estimated_cost_usd"] > 0


async def test_batch_analyses_every_sample_of_a_log(openai_env, tmp_path):
    from refinery.app.batch import analyze_many, discover
    from refinery.wire.responses_client import ResponsesClient

    items = discover(INSPECT)
    assert [(i.name, i.sample) for i in items] == [
        ("inspect_log-order-42", "order-42"),
        ("inspect_log-order-7", "order-7"),
    ]
    async with ResponsesClient(api_key="sk-x", base_url=openai_env.base_url) as client:
        summary = await analyze_many(items, out_dir=tmp_path / "out", client=client)
    assert [o.status for o in summary.outcomes.values()] == ["done", "done"]
    assert (tmp_path / "out" / "inspect_log-order-7" / "report.md").is_file()
