"""Rendering that keeps what decides a failure: new messages only, head+tail cuts, run-id markers
that reach every chunk, and an index holding what runs share."""

from __future__ import annotations

import re
from pathlib import Path

from refinery.core.models import RunType, Trace, TraceRun
from refinery.testing.retrieval import chunk_text
from refinery.traces import load_trace
from refinery.traces.render import (
    CHUNK_OVERLAP_TOKENS,
    CHUNK_SIZE_TOKENS,
    CHUNKING_STRATEGY,
    RenderOptions,
    render_trace_files,
    truncate,
    with_markers,
)

FIX = Path(__file__).parent / "fixtures"


def rendered(trace: Trace, **opts) -> dict[str, str]:
    return dict(render_trace_files(trace, options=RenderOptions(**opts) if opts else None))


def section(text: str, run_id: str) -> str:
    start = text.index(f"[run_id: {run_id}]\n")
    end = text.find("\n## ", start)
    return text[start : end if end >= 0 else len(text)]


def llm(i: int, messages: list[tuple[str, str]], answer: str) -> TraceRun:
    return TraceRun(
        id=f"llm-{i}",
        name="chat",
        run_type=RunType.LLM,
        inputs={"messages": [{"role": r, "content": c} for r, c in messages]},
        outputs={"messages": [{"role": "assistant", "content": answer}]},
    )


def test_an_llm_call_shows_only_the_messages_new_since_the_previous_call():
    system = "You are a careful agent. " * 40
    first = [("system", system), ("user", "Find the refund policy.")]
    second = [*first, ("assistant", "Calling search('refund policy')"), ("tool", "Observation: policy says 30 days")]
    trace = Trace(
        trace_id="t", runs=[llm(1, first, "Calling search('refund policy')"), llm(2, second, "Answer: 30 days")]
    )
    text = rendered(trace)["t_runs_001-002.md"]
    later = section(text, "llm-2")
    assert "Messages 0–2 of 4 are the conversation already shown up to Run 001 [run_id: llm-1]" in later
    assert "Observation: policy says 30 days" in later and "Find the refund policy." not in later
    assert text.count("Find the refund policy.") == 1


def test_a_system_prompt_is_shown_once_in_the_index_and_referenced_from_the_run():
    system = "You are a careful agent. " * 40
    files = rendered(Trace(trace_id="t", runs=[llm(1, [("system", system), ("user", "hi")], "hello")]))
    assert system.strip() not in files["t_runs_001-001.md"]
    assert "(system prompt P1, shown once in the index file)" in files["t_runs_001-001.md"]
    assert "### System prompt P1 (first used in Run 001 [run_id: llm-1])" in files["t_index.md"]
    assert system.strip() in files["t_index.md"]


def test_input_value_is_not_rendered_beside_the_same_llm_input_messages():
    text = "".join(rendered(load_trace(FIX / "clickhouse_snake_nested.json")).values())
    assert text.count("New task:\nWhat year did the bridge open?") == 1
    assert '"messages"' not in text  # the serialised input.value copy is gone


def test_text_is_shown_as_text_not_json_escaped():
    run = TraceRun(id="r", name="tool", outputs={"output": 'line one\nhe said "stop"'})
    text = rendered(Trace(trace_id="t", runs=[run]))["t_runs_001-001.md"]
    assert 'line one\n  he said "stop"' in text and "\\n" not in text and '\\"' not in text


def test_the_newest_message_is_never_cut_while_older_ones_keep_head_and_tail():
    old = "OLD-HEAD " + "a" * 9000 + " OLD-TAIL"
    newest = "NEW-HEAD " + "b" * 9000 + " NEW-TAIL"
    trace = Trace(trace_id="t", runs=[llm(1, [("user", old), ("tool", newest)], "ok")])
    text = section(rendered(trace, max_field_chars=1000)["t_runs_001-001.md"], "llm-1")
    assert "OLD-HEAD" in text and "OLD-TAIL" in text and "[truncated: 8018 of 9018 characters cut here" in text
    assert "b" * 400 in text.replace("\n", "") and "NEW-TAIL" in text and text.count("[truncated:") == 1


def test_truncate_keeps_head_and_tail_and_says_exactly_what_was_cut():
    out = truncate("H" * 50 + "m" * 900 + "T" * 50, 100)
    assert out.startswith("H" * 40) and out.endswith("T" * 50 + "m" * 0)
    assert "[truncated: 900 of 1000 characters cut here (characters 41–940); the first 40 and last 60 are shown]" in out
    assert truncate("short", 100) == "short"


def test_markers_repeat_the_run_id_at_least_every_interval():
    body = "\n".join(f"line {i} " + "word " * 30 for i in range(200))
    out = with_markers(f"## Run 001: x [run_id: r-1]\n```\n{body}\n```", "[run_id: r-1 · Run 001 · continued]", 1000)
    positions = [m.start() for m in re.finditer(re.escape("[run_id: r-1"), out)]
    gaps = [b - a for a, b in zip(positions, positions[1:])] + [len(out) - positions[-1]]
    assert len(positions) > 25 and max(gaps) <= 1000 + 60
    assert out.count("```") % 2 == 0  # each fence closed around a marker is reopened


def test_markers_prefer_a_boundary_between_messages_over_splitting_a_paragraph():
    para = "word " * 150  # 750 characters
    text = "\n".join(
        [
            "## Run 001: x [run_id: r]",
            "#### message 1 · user",
            "```",
            para,
            "```",
            "#### message 2 · tool",
            "```",
            "Observation:",
            para,
            "```",
        ]
    )
    out = with_markers(text, "[MARK]", 1000)
    assert "```\n[MARK]\n#### message 2 · tool" in out
    assert " ".join(("Observation: " + para).split()) in " ".join(out.split())  # wrapped, never split by a marker


def test_every_chunk_of_a_long_span_carries_its_run_id():
    long_output = "\n".join(f"result row {i}: " + "value " * 25 for i in range(400))  # ~70 k characters
    trace = Trace(
        trace_id="t",
        runs=[TraceRun(id="span-deadbeef", name="tool", run_type=RunType.TOOL, outputs={"output": long_output})],
    )
    text = rendered(trace)["t_runs_001-001.md"]
    chunks = chunk_text(text, CHUNK_SIZE_TOKENS, CHUNK_OVERLAP_TOKENS)
    assert len(chunks) > 10
    assert all("span-deadbeef" in c for c in chunks)


def test_the_upload_chunking_strategy_is_the_one_the_markers_are_spaced_for():
    assert CHUNKING_STRATEGY == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    }


def test_index_holds_task_agents_prompts_tools_and_failed_runs():
    step_index = rendered(load_trace(FIX / "step_log_wrapped.json"))["q-7_index.md"]
    assert "## Task\n```\nWhich café near the station" in step_index
    assert "- Orchestrator (thought): steps 1, 4, 6" in step_index
    assert "### System prompt of WebSurfer" in step_index
    assert "mistake" not in step_index and "Bean There\n" not in step_index  # the answer key is never rendered
    span_index = rendered(load_trace(FIX / "clickhouse_snake_nested.json"))["c0ffee00c0ffee00c0ffee00c0ffee00_index.md"]
    assert "- failed runs: 1 (2222222222222222)" in span_index
    assert (
        "- Run 004 [run_id: 2222222222222222] WebSearchTool: TimeoutError: search backend did not answer in 10 s"
        in span_index
    )
    assert "### Tool web_search" in span_index and span_index.count("### Tool ") == 1


def test_a_step_renders_under_its_own_number_and_agent_name():
    text = rendered(load_trace(FIX / "step_log_wrapped.json"))["q-7_runs_001-006.md"]
    assert "## Step 2: Orchestrator (-> WebSurfer) [run_id: step-2]" in text
    assert "- step: 2 (0-based, as numbered in the source)" in text
    assert "Run 003" not in text
