"""Verified citations: a made-up run id or a misquote is caught, asked about once, and what still
fails is kept but counted and marked unverified."""

from __future__ import annotations

import copy

import pytest

from refinery.analysis.orchestrator import AnalysisOrchestrator
from refinery.analysis.verification import RunTexts, claims_of, normalise, verify
from refinery.core.models import RunType, Trace, TraceRun
from refinery.traces.render import RenderOptions, render_trace_files
from refinery.wire.responses_client import ResponsesClient
from tests.fake_openai import SAMPLES, FakeOpenAI
from tests.fixtures_traces import EXPECTATION, make_trace

RUNS = RunTexts(render_trace_files(make_trace()))


def diagnosis(**change):
    data = copy.deepcopy(SAMPLES["stage3"])
    data["errors"][0].update(change)
    return data


def test_claims_are_every_run_id_with_the_quote_beside_it():
    claims = claims_of(SAMPLES["stage3"])
    assert [(c.path, c.run_id, c.quote) for c in claims] == [
        ("decisive_step", "run-2", None),
        ("errors[0]", "run-2", "KeyError: 'order_id'"),
    ]
    assert claims[0].reason == SAMPLES["stage3"]["decisive_step"]["reason"]


def test_a_real_run_and_a_true_quote_verify():
    result = verify(SAMPLES["stage3"], RUNS)
    assert (result.cited, result.verified, result.unverified) == (2, 2, [])


def test_a_made_up_run_id_is_caught():
    result = verify(diagnosis(run_id="run-99"), RUNS)
    assert result.verified == 1 and result.unverified == [
        {"path": "errors[0]", "run_id": "run-99", "problem": "run id 'run-99' is not in the trace"}
    ]


def test_a_misquote_is_caught():
    result = verify(diagnosis(evidence="ValueError: order id missing"), RUNS)
    assert [u["problem"] for u in result.unverified] == [
        "the quote is not in run run-2's own text (its inputs, outputs, messages, error or events)"
    ]


def _chat_trace() -> Trace:
    """An LLM conversation over three calls (later calls repeat the earlier messages), a long
    tool output that gets cut, and a task in the index."""
    history = [
        {"role": "system", "content": "You are the refund agent."},
        {"role": "user", "content": "Refund order 42 please."},
    ]
    runs = []
    for i in range(3):
        answer = {"role": "assistant", "content": f"Answer number {i}: looking up the order."}
        runs.append(
            TraceRun(
                id=f"llm-{i}",
                name="llm",
                run_type=RunType.LLM,
                inputs={"messages": list(history)},
                outputs={"messages": [answer]},
            )
        )
        history += [answer, {"role": "user", "content": f"Follow-up question {i} from the customer."}]
    log = "HEAD of the lookup log. " + "filler words " * 900 + "TAIL says order 42 not found."
    runs.append(
        TraceRun(id="tool-1", name="lookup", run_type=RunType.TOOL, inputs={"order": "42"}, outputs={"log": log})
    )
    return Trace(trace_id="chat", runs=runs, metadata={"task": "Refund order 42 for the customer."})


CHAT = RunTexts(render_trace_files(_chat_trace(), options=RenderOptions(max_field_chars=1000, marker_every_chars=300)))


@pytest.mark.parametrize(
    ("run_id", "quote"),
    [
        ("llm-0", "- trace_id: chat"),  # a header line refinery writes
        ("llm-1", "- status: not stated"),  # a heading field
        ("llm-2", "[run_id: llm-0 · Run 001 · continued]"),  # another run's marker
        ("llm-2", "are the conversation already shown up to Run 002"),  # refinery's note about earlier messages
        ("tool-1", "characters cut here"),  # the note of a cut
        ("tool-1", "HEAD of the lookup log. filler words filler words TAIL says"),  # across the cut
        ("llm-0", "Refund order 42 for the customer."),  # the task, in the index only
        ("llm-0", "TAIL says order 42 not found."),  # another run's text
        ("tool-1", "Answer number 0: looking up the order."),  # another run's text
    ],
    ids=[
        "file header",
        "heading field",
        "marker",
        "earlier-messages note",
        "cut note",
        "across a cut",
        "index",
        "other run",
        "other run 2",
    ],
)
def test_a_quote_from_anything_but_the_cited_runs_own_text_is_unverified(run_id, quote):
    check = verify({"run_id": run_id, "evidence": quote}, CHAT)
    assert check.verified == 0 and check.unverified[0]["run_id"] == run_id


@pytest.mark.parametrize(
    ("run_id", "quote"),
    [
        ("llm-2", "Follow-up question 1 from the customer."),
        ("llm-2", "Answer number 2: looking up the order."),
        ("tool-1", "TAIL says order 42 not found."),
        ("tool-1", "HEAD of the lookup log."),
    ],
)
def test_a_quote_from_the_cited_runs_own_messages_and_outputs_verifies(run_id, quote):
    assert verify({"run_id": run_id, "evidence": quote}, CHAT).unverified == []


def test_the_decisive_steps_reason_is_checked_where_it_quotes():
    assert (
        verify(
            {"decisive_step": {"run_id": "tool-1", "reason": 'The lookup logged "TAIL says order 42 not found."'}}, CHAT
        ).unverified
        == []
    )
    made_up = verify(
        {"decisive_step": {"run_id": "tool-1", "reason": 'The lookup logged "order service timed out after 30 s"'}},
        CHAT,
    )
    assert made_up.unverified[0]["problem"] == "the reason quotes words that are not in run tool-1's own text"
    marker = verify({"decisive_step": {"run_id": "tool-1", "reason": "[run_id: tool-1 · Run 004 · continued]"}}, CHAT)
    assert marker.verified == 0


def test_quotes_match_across_white_space_markers_and_quotation_marks():
    long_text = "\n".join(f"line {i} of the tool output" for i in range(400))
    trace = make_trace(n_runs=1)
    trace.runs[0].outputs = {"log": long_text}
    runs = RunTexts(render_trace_files(trace, options=RenderOptions(marker_every_chars=300)))
    quote = "“line 120 of the tool output line 121 of the tool output line 122 of the tool output”"
    assert verify({"run_id": "run-1", "evidence": quote}, runs).unverified == []
    # a quote copied as it stands in the file, across a marker placed inside the log (with the fences around it)
    text = runs.files[0][1]
    at = text.index("[run_id: run-1 · Run 001 · continued]", text.index("line 0 of the tool output"))
    across = text[text.rindex("line", 0, at - 10) : text.index("output", at) + len("output")]
    assert "```\n[run_id: run-1 · Run 001 · continued]\n```" in across
    assert verify({"run_id": "run-1", "evidence": across}, runs).unverified == []
    assert normalise("a\n  b\u201cc\u201d") == 'a b"c"'


def test_a_code_fence_in_the_traces_own_text_is_part_of_a_quote():
    trace = make_trace(n_runs=1)
    trace.runs[0].outputs = {"plan": "Here is the plan:\n```\n1. Look up the order\n```"}
    runs = RunTexts(render_trace_files(trace))
    assert verify({"run_id": "run-1", "evidence": "Here is the plan: ``` 1. Look up the order"}, runs).unverified == []


@pytest.mark.parametrize(
    "bad", [{"run_id": "run-99"}, {"evidence": "words the run never said"}], ids=["made-up id", "misquote"]
)
async def test_the_model_is_asked_once_and_what_still_fails_is_marked(mocked, make_transport, bad):
    fake = FakeOpenAI(mocked)
    fake.answers["stage3"] = [diagnosis(**bad), diagnosis(**bad)]
    async with ResponsesClient(transport=make_transport()) as client:
        complete = await AnalysisOrchestrator(client=client).analyze_failure(make_trace(), EXPECTATION)
    assert fake.stages_called().count("stage3") == 2
    reask = [b for b in fake.bodies if fake.stage_of(b) == "stage3"][1]["input"][-1]["content"][0]["text"]
    assert "could not be checked against the trace" in reask and "errors[0]" in reask
    assert complete.diagnosis.errors[0]["verified"] is False and complete.diagnosis.decisive_step["verified"] is True
    check = complete.diagnosis.metadata["stage_metadata"]["verification"]
    assert (check["cited"], check["verified"]) == (2, 1)


async def test_a_fixed_answer_replaces_the_first(mocked, make_transport):
    fake = FakeOpenAI(mocked)
    fake.answers["stage3"] = [diagnosis(run_id="run-99"), diagnosis()]
    async with ResponsesClient(transport=make_transport()) as client:
        complete = await AnalysisOrchestrator(client=client).analyze_failure(make_trace(), EXPECTATION)
    assert complete.diagnosis.errors[0]["run_id"] == "run-2" and complete.diagnosis.errors[0]["verified"] is True


def test_an_error_without_a_quote_is_not_marked_verified():
    check = verify({"errors": [{"run_id": "run-2", "evidence": "  "}]}, RUNS)
    assert check.verified == 0 and check.unverified[0]["problem"].startswith("no quote was given")
    assert (
        verify({"timeline": [{"run_id": "run-2"}]}, RUNS).unverified == []
    )  # a claim with no evidence field: the run id is the check
