"""Stage logic through the model seam: a `FunctionModel` answers each stage's request, so what the
stages build and how they read the answers is tested with no HTTP at all (issue 31, point 8)."""

from __future__ import annotations

import copy

import pytest

from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.errors import ConfigurationError, OutputFormatError, StageError
from refinery.wire.responses_client import ResponsesClient
from refinery.wire.structured_model import FunctionModel, StructuredModel
from tests.fake_openai import SAMPLES
from tests.fixtures_traces import EXPECTATION, make_trace


def by_stage(answers=SAMPLES):
    def answer(body, schema):
        return copy.deepcopy(answers[body["text"]["format"]["name"].split("_")[0]])

    return answer


def test_the_live_client_and_the_function_model_are_both_structured_models():
    assert isinstance(FunctionModel(by_stage()), StructuredModel)
    assert isinstance(ResponsesClient(api_key="sk-x", base_url="http://127.0.0.1:9/v1"), StructuredModel)


async def test_four_stages_run_on_a_function_model_and_chain_their_outputs():
    model = FunctionModel(by_stage())
    analyst = StagedFailureAnalyst(client=model, vector_store_id="vs_given")
    result = await analyst.analyze(make_trace(), EXPECTATION)
    names = [b["text"]["format"]["name"].split("_")[0] for b in model.requests]
    assert names == ["stage1", "stage2", "stage3", "stage4"]
    assert all(b["text"]["format"]["strict"] is True for b in model.requests)
    assert result.diagnosis.root_cause == SAMPLES["stage3"]["root_cause"]
    assert result.synthesis.summary == SAMPLES["stage4"]["summary"]
    assert result.usage["stage2"].input_tokens > 0 and result.usage["stage2"].model == "function-model"
    # Stage 1 read the trace's run files inline: run-2's error is in its request
    assert "KeyError: 'order_id'" in model.requests[0]["input"][-1]["content"][0]["text"]


async def test_a_cited_run_the_trace_lacks_is_asked_about_once_and_counted_unverified():
    wrong = copy.deepcopy(SAMPLES)
    wrong["stage1"]["timeline"][1]["run_id"] = "run-99"  # not in the trace
    model = FunctionModel(by_stage(wrong))
    result = await StagedFailureAnalyst(client=model, vector_store_id="vs_given").analyze(
        make_trace(), EXPECTATION, until_stage=1
    )
    assert len(model.requests) == 2  # the answer, then one re-ask naming what failed
    assert "run-99" in str(model.requests[1]["input"])
    assert result.verification["stage1"]["unverified"]


async def test_an_answer_breaking_the_stage_schema_is_an_output_format_error():
    model = FunctionModel(lambda body, schema: {"not": "a stage answer"})
    with pytest.raises((OutputFormatError, StageError)):
        await StagedFailureAnalyst(client=model, vector_store_id="vs_given").analyze(
            make_trace(), EXPECTATION, until_stage=1
        )


async def test_an_analysis_that_needs_a_store_says_so_when_the_model_has_none():
    with pytest.raises(ConfigurationError, match="vector_store_id"):
        await StagedFailureAnalyst(client=FunctionModel(by_stage()), store="hosted").analyze(make_trace(), EXPECTATION)


async def test_a_model_that_cannot_make_a_store_reads_the_trace_inline_by_default():
    model = FunctionModel(by_stage())
    result = await StagedFailureAnalyst(client=model).analyze(make_trace(), EXPECTATION)
    assert result.diagnosis.root_cause == SAMPLES["stage3"]["root_cause"]
    assert all("tools" not in b for b in model.requests)
    # stage 2 reads the failed run itself, inline: its error is in the request
    assert "KeyError: 'order_id'" in model.requests[1]["input"][-1]["content"][0]["text"]
