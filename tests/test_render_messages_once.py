"""Each chat message of an LLM call is read into its fields once a rendering (`text.message_fields`):
its plain view (the conversation's digests) and its marked view (the file) are both made from them
(the renderings are unchanged: the real-trace fingerprint)."""

from __future__ import annotations

from pathlib import Path

from refinery.traces import load_trace, render, text
from refinery.traces.render import render_trace_files

FIX = Path(__file__).parent / "fixtures"


def _messages(trace) -> int:
    count = 0
    for run in trace.runs:
        ins, outs = run.inputs.get("messages"), (run.outputs or {}).get("messages")
        count += len(ins) if isinstance(ins, list) else 0
        count += len(outs) if isinstance(outs, list) and outs else 0
    return count


def test_each_message_is_read_into_its_fields_once(monkeypatch):
    trace = load_trace(FIX / "clickhouse_snake_nested.json")  # two LLM calls of one conversation
    calls = []
    monkeypatch.setattr(render, "message_fields", lambda msg: calls.append(msg) or text.message_fields(msg))
    render_trace_files(trace)
    assert _messages(trace) == 8 and len(calls) == _messages(trace)
