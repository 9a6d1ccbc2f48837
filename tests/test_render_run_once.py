"""A run's section is made with each of its parts worked out once (heading and label in one format,
fields appended in place, a message's text with no parts to join, one hash a digest): what it shows
is unchanged — the real-trace fingerprint, and these edge cases of what a run holds."""

from __future__ import annotations

import hashlib
import random

from refinery.core.models import Trace, TraceRun
from refinery.traces.render import render_trace_files
from refinery.traces.source_text import CLOSE, OPEN
from refinery.traces.text import digest, message_fields, view_text


def _two_updates_a_text(*texts: str) -> str:
    h = hashlib.blake2b(digest_size=12)
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def test_a_digest_is_that_of_each_text_followed_by_a_nul():
    rng = random.Random(4)
    alphabet = ["a", "\x00", "\ud83d", "\ude00", "é", "\U0001f600", "\n", ""]
    for _ in range(3000):
        texts = tuple("".join(rng.choice(alphabet) for _ in range(rng.randrange(6))) for _ in range(rng.randrange(4)))
        assert digest(*texts) == _two_updates_a_text(*texts), texts


def test_a_message_of_content_alone_is_its_content_and_an_empty_one_is_empty():
    assert view_text(message_fields({"role": "user", "content": "hi"})) == "hi"
    assert view_text(message_fields({"role": "user", "content": "hi"}), mark=True) == f"{OPEN}hi{CLOSE}"
    assert view_text(message_fields({"role": "user", "content": ""}), mark=True) == ""
    assert view_text(message_fields({"role": "user"}), mark=True) == ""
    assert view_text(message_fields("bare"), mark=True) == f"{OPEN}bare{CLOSE}"
    assert view_text(message_fields({"role": "user", "content": [{"text": "a"}, {"text": "b"}]})) == "a\nb"


def _section(run: TraceRun) -> str:
    files = render_trace_files(Trace(trace_id="t", runs=[run]))
    return files[0][1]


def test_output_messages_that_are_not_a_list_of_messages_are_shown_last_among_the_outputs():
    text = _section(TraceRun(id="r1", name="n", outputs={"messages": [], "answer": "yes"}))
    assert "### Output messages" not in text
    assert text.index("answer: yes") < text.index("messages: []")


def test_output_messages_of_none_are_not_shown_and_other_outputs_are():
    text = _section(TraceRun(id="r1", name="n", outputs={"messages": None, "answer": "yes"}))
    assert "answer: yes" in text and "messages" not in text


def test_tools_that_are_not_a_list_are_left_out_of_the_inputs():
    text = _section(TraceRun(id="r1", name="n", inputs={"tools": "x", "q": "why"}))
    assert "q: why" in text and "tools" not in text


def test_a_step_and_a_numbered_run_carry_their_heading_label_and_fixed_lines():
    step = _section(TraceRun(id="r1", name="planner", step=4, status="ok"))
    assert "## Step 4: planner [run_id: r1]\n\n- run_id: r1\n- step: 4 (0-based, as numbered in the source)\n" in step
    assert "- agent: planner\n- type: unknown\n- status: ok" in step
    run = _section(TraceRun(id="r2", name="tool", metadata={"model": "m", "role": "x\ny", "k": 1}))
    assert "## Run 001: tool [run_id: r2]\n\n- run_id: r2\n- name: tool\n- type: unknown\n- status: not stated" in run
    assert "- model: m" in run and "- role:" not in run  # a multi-line value stays in the metadata block
    assert "### Metadata (r2)" in run and "role:" in run and "k: 1" in run
