"""Verified citations: a made-up run id or a misquote is caught, asked about once, and what still
fails is kept but counted and marked unverified."""

from __future__ import annotations

import copy

import pytest

from refinery.agents.verification import RunTexts, claims_of, normalise, verify
from refinery.integrations.responses_client import ResponsesClient
from refinery.orchestrator import AnalysisOrchestrator
from refinery.traces.render import RenderOptions, render_trace_files
from tests.fake_openai import SAMPLES, FakeOpenAI
from tests.fixtures_traces import EXPECTATION, make_trace

RUNS = RunTexts(render_trace_files(make_trace()))


def diagnosis(**change):
    data = copy.deepcopy(SAMPLES["stage3"])
    data["errors"][0].update(change)
    return data


def test_claims_are_every_run_id_with_the_quote_beside_it():
    claims = claims_of(SAMPLES["stage3"])
    assert [(c.path, c.run_id, c.quote) for c in claims] == [("decisive_step", "run-2", None), ("errors[0]", "run-2", "KeyError: 'order_id'")]


def test_a_real_run_and_a_true_quote_verify():
    result = verify(SAMPLES["stage3"], RUNS)
    assert (result.cited, result.verified, result.unverified) == (2, 2, [])


def test_a_made_up_run_id_is_caught():
    result = verify(diagnosis(run_id="run-99"), RUNS)
    assert result.verified == 1 and result.unverified == [{"path": "errors[0]", "run_id": "run-99", "problem": "run id 'run-99' is not in the trace"}]


def test_a_misquote_is_caught():
    result = verify(diagnosis(evidence="ValueError: order id missing"), RUNS)
    assert [u["problem"] for u in result.unverified] == ["the quote is not in run run-2's text"]


def test_a_quote_found_only_in_a_retrieved_chunk_verifies():
    data = diagnosis(evidence="the order service answered 503")
    assert verify(data, RUNS).unverified
    assert verify(data, RUNS, ["... later the order service answered 503 twice"]).unverified == []


def test_quotes_match_across_white_space_markers_and_quotation_marks():
    long_text = "\n".join(f"line {i} of the tool output" for i in range(400))
    trace = make_trace(n_runs=1)
    trace.runs[0].outputs = {"log": long_text}
    runs = RunTexts(render_trace_files(trace, options=RenderOptions(marker_every_chars=300)))
    quote = "“line 120 of the tool output line 121 of the tool output line 122 of the tool output”"
    assert verify({"run_id": "run-1", "evidence": quote}, runs).unverified == []
    assert "continued]" not in normalise("a\n[run_id: run-1 · Run 001 · continued]\nb") and normalise("a\n```\nb") == "a b"


@pytest.mark.parametrize("bad", [{"run_id": "run-99"}, {"evidence": "words the run never said"}], ids=["made-up id", "misquote"])
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
