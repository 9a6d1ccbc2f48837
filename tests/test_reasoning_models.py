"""Reasoning models (o-series, gpt-5): their thinking counts against `max_output_tokens`, so each
stage's answer budget gets a reasoning allowance, `reasoning.effort` goes to them only, and a
response cut off by the budget is retried once with a larger one."""

from __future__ import annotations

import json

import pytest

from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.analysis.stages import STAGE_BY_KEY
from refinery.app.cli import amain
from refinery.core.model_families import REASONING_ALLOWANCE, output_budget
from refinery.errors import IncompleteResponseError, UserInputError
from refinery.testing.server import OpenAITestServer
from refinery.wire.responses_client import ResponsesClient
from refinery.wire.responses_request_builder import build_responses_body_no_tools
from tests.fixtures_traces import EXPECTATION, make_trace

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False}


def test_a_reasoning_model_gets_its_allowance_on_top_of_the_answer_budget():
    assert output_budget("gpt-4o", 2000, "high") == 2000
    assert output_budget("gpt-5-mini", 2000) == 2000 + REASONING_ALLOWANCE["medium"]
    assert output_budget("o4-mini", 2000, "low") == 2000 + REASONING_ALLOWANCE["low"]
    assert output_budget("gpt-5-chat-latest", 2000) == 2000  # the chat snapshot does not reason


def test_reasoning_effort_goes_to_reasoning_models_only_and_the_bodies_are_spec_valid(spec):
    thinking = build_responses_body_no_tools("gpt-5-mini", "sys", "user", SCHEMA, reasoning_effort="low")
    plain = build_responses_body_no_tools("gpt-4o", "sys", "user", SCHEMA, reasoning_effort="low")
    assert thinking["reasoning"] == {"effort": "low"} and "temperature" not in thinking
    assert "reasoning" not in plain and plain["temperature"] == 0.2
    assert spec.validate(thinking) == [] and spec.validate(plain) == []


def test_an_unknown_effort_is_refused_with_the_values_it_takes():
    with pytest.raises(UserInputError, match="reasoning effort must be one of none, minimal, low, medium, high"):
        StagedFailureAnalyst(model="gpt-5-mini", reasoning_effort="extreme")


def test_the_analysts_bodies_carry_effort_and_the_larger_budget():
    analyst = StagedFailureAnalyst(model="gpt-5-mini", reasoning_effort="high")
    body = analyst.build_stage_body("stage4", "prior JSON")
    assert body["reasoning"] == {"effort": "high"}
    assert body["max_output_tokens"] == STAGE_BY_KEY["stage4"].max_output_tokens + REASONING_ALLOWANCE["high"]


async def test_the_server_answers_incomplete_when_reasoning_spends_the_budget():
    async with (
        OpenAITestServer(reasoning_tokens=500) as server,
        ResponsesClient(api_key="sk-x", base_url=server.base_url) as client,
    ):
        raw = await client.create(build_responses_body_no_tools("o4-mini", "", "hello", SCHEMA, max_output_tokens=400))
    assert raw["status"] == "incomplete" and raw["incomplete_details"] == {"reason": "max_output_tokens"}
    assert raw["usage"]["output_tokens_details"]["reasoning_tokens"] == 400
    assert [item["type"] for item in raw["output"]] == ["reasoning"]  # no message: nothing was written


async def test_an_answer_cut_by_reasoning_completes_on_the_one_retry_with_a_larger_budget():
    async with (
        OpenAITestServer(reasoning_tokens=500) as server,
        ResponsesClient(api_key="sk-x", base_url=server.base_url) as client,
    ):
        answer = await client.create_json(
            build_responses_body_no_tools("o4-mini", "", "hello", SCHEMA, max_output_tokens=400), SCHEMA
        )
        assert [b["max_output_tokens"] for b in server.response_bodies] == [400, 800]
    assert set(answer.data) == {"a"} and answer.usage.reasoning_tokens == 400 + 500


async def test_when_the_retry_is_cut_too_the_error_says_why():
    async with (
        OpenAITestServer(reasoning_tokens=5000) as server,
        ResponsesClient(api_key="sk-x", base_url=server.base_url) as client,
    ):
        with pytest.raises(
            IncompleteResponseError,
            match=r"max_output_tokens.*retry with max_output_tokens 800, of which 800 went to reasoning",
        ):
            await client.create_json(
                build_responses_body_no_tools("o4-mini", "", "hello", SCHEMA, max_output_tokens=400), SCHEMA
            )


async def test_the_server_refuses_what_the_api_refuses():
    async with OpenAITestServer() as server, ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
        body = build_responses_body_no_tools("gpt-4o", "", "hello", SCHEMA)
        with pytest.raises(Exception, match="reasoning.effort"):
            await client.create({**body, "reasoning": {"effort": "low"}})
        with pytest.raises(Exception, match="temperature"):
            await client.create({**body, "model": "o3"})


async def test_an_analysis_with_gpt5_mini_completes_against_a_server_that_reasons(tmp_path, monkeypatch):
    async with OpenAITestServer(reasoning_tokens=3000) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        trace = tmp_path / "trace.json"
        trace.write_text(
            json.dumps(
                {
                    "question": "Refund order 42",
                    "history": [
                        {"role": "user", "content": "Refund order 42"},
                        {"role": "tool", "name": "lookup", "content": "ERROR: order 42 not found"},
                    ],
                }
            )
        )
        out = tmp_path / "out"
        assert (
            await amain(["run", str(trace), "--model", "gpt-5-mini", "--reasoning-effort", "low", "--out", str(out)])
            == 0
        )
        bodies = server.response_bodies
    assert all(b["reasoning"] == {"effort": "low"} for b in bodies)
    # each stage's answer budget + 2,000 for low effort; stage 4's 3,000 all went to thinking,
    # so it was asked once more with 6,000
    assert [b["max_output_tokens"] for b in bodies] == [4000, 3500, 4500, 3000, 6000]
    usage = json.loads((out / "usage.json").read_text())
    assert (
        usage["total"]["reasoning_tokens"] == 5 * 3000
        and json.loads((out / "stage4_synthesis.json").read_text())["output"]["summary"]
    )


def test_plan_counts_the_reasoning_allowance_in_output_tokens():
    trace = make_trace()
    analyst = StagedFailureAnalyst(model="gpt-5-mini", reasoning_effort="low")
    from refinery.analysis.plan import measure, plan_summary, planned_requests

    files = analyst.render(trace, EXPECTATION)
    plan = plan_summary(analyst, trace, files, measure(planned_requests(analyst, trace, files, EXPECTATION)))
    assert (
        plan["stages"]["stage1"]["output_tokens"]
        == STAGE_BY_KEY["stage1"].max_output_tokens + REASONING_ALLOWANCE["low"]
    )
