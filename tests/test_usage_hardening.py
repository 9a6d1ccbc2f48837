"""Usage and costs a server cannot bend: token counts that are negative, not numbers, NaN or
absurd are counted as unknown (never as a saving against `--max-cost`), input caps count what
is read, and a server's error text prints on one line."""

from __future__ import annotations

import math

import pytest

from refinery.analysis.cost_ceiling import CostCeiling
from refinery.errors import InputFileError
from refinery.wire.response_output import CallUsage, parse_json_text
from refinery.wire.transport import _decode, _total_tokens, error_from_response

BAD_USAGE = [
    {"input_tokens": -250_000_000, "output_tokens": 10},
    "lots",
    {"input_tokens": "lots", "output_tokens": 10},
    {"input_tokens": math.nan, "output_tokens": 10},
    {"input_tokens": 10**15, "output_tokens": 10},
    {"input_tokens": 10, "output_tokens": 2.5},
    {"input_tokens": 10, "output_tokens": 10, "input_tokens_details": {"cached_tokens": -5}},
    {"input_tokens": True, "output_tokens": 10},
]


@pytest.mark.parametrize("usage", BAD_USAGE, ids=[str(i) for i in range(len(BAD_USAGE))])
def test_usage_that_is_no_count_is_unknown_with_no_tokens(usage):
    u = CallUsage.from_response({"id": "resp_1", "model": "gpt-4o", "usage": usage})
    assert u.unknown and u.counts() == dict.fromkeys(u.counts(), 0)


def test_sound_usage_is_read_as_stated():
    u = CallUsage.from_response({"usage": {"input_tokens": 1200, "output_tokens": 300.0, "total_tokens": 1500}})
    assert not u.unknown and (u.input_tokens, u.output_tokens, u.total_tokens) == (1200, 300, 1500)


def test_unknown_usage_is_kept_through_a_sum_and_left_out_of_artifacts():
    summed = CallUsage.total([CallUsage(input_tokens=5), CallUsage.from_response({"usage": "lots"})], "stage1")
    assert summed.unknown and "unknown" not in summed.model_dump()


async def test_a_call_with_unknown_usage_is_charged_its_worst_case_against_the_ceiling():
    ceiling = CostCeiling(1.0, "gpt-4o")
    reserved = await ceiling.admit(100_000, 4_000)
    await ceiling.settle(reserved, CallUsage.from_response({"usage": {"input_tokens": -(10**8), "output_tokens": 1}}))
    assert ceiling.spent_usd == pytest.approx(reserved) and reserved > 0


async def test_negative_usage_never_lowers_what_was_spent():
    ceiling = CostCeiling(1.0, "gpt-4o")
    await ceiling.settle(await ceiling.admit(1000, 100), CallUsage(input_tokens=1000, output_tokens=100))
    before = ceiling.spent_usd
    await ceiling.settle(await ceiling.admit(1000, 100), CallUsage(input_tokens=-(10**9)))
    assert ceiling.spent_usd >= before > 0


def test_the_usage_summary_says_unknown_for_a_stage_whose_usage_was_no_count():
    from refinery.analysis.stage_results import StagedAnalysisResult
    from refinery.report.outputs import usage_summary

    result = StagedAnalysisResult.model_construct(
        trace_id="t", usage={"stage1": CallUsage(label="stage1", input_tokens=10), "stage2": CallUsage(unknown=True)}
    )
    summary = usage_summary(result, "gpt-4o")
    assert summary["stages"]["stage2"]["estimated_cost_usd"] is None
    assert summary["total"]["estimated_cost_usd"] is None


@pytest.mark.parametrize("total", [math.nan, -5, "many", math.inf, True])
def test_the_transport_takes_no_token_count_from_a_total_that_is_no_count(total):
    assert _total_tokens({"usage": {"total_tokens": total}}) is None


def test_an_answer_nested_past_the_stack_is_read_as_not_json():
    deep = b"[" * 200_000 + b"]" * 200_000
    assert isinstance(_decode(deep), str)
    with pytest.raises(Exception) as err:
        parse_json_text(deep.decode())
    assert "nested too deeply" in str(err.value)


@pytest.mark.parametrize(
    "payload",
    [
        {"error": {"message": "upstream failed\nretry later\r\n  please", "type": "server\nerror"}},
        "<html>\n<body>\n502 Bad Gateway\n</body>\n</html>",
    ],
)
def test_a_server_error_prints_on_one_line(payload):
    exc = error_from_response(500, {}, payload)
    assert "\n" not in str(exc) and "\r" not in str(exc) and str(exc).startswith("HTTP 500: ")


def test_an_input_file_is_capped_by_what_is_read_not_by_its_stated_size(monkeypatch):
    import refinery.app.inputs as inputs

    environ = "/proc/self/environ"  # its size says 0, whatever it holds
    with open(environ, "rb") as f:
        held = len(f.read())
    if held < 2:
        pytest.skip("this process has no environment to read")
    monkeypatch.setattr(inputs, "MAX_INPUT_BYTES", max(held - 1, 1))
    with pytest.raises(InputFileError) as err:
        inputs.read_text(environ)
    assert "more than" in str(err.value)


@pytest.mark.parametrize("usage", ["lots", {"input_tokens": math.nan, "output_tokens": 5}, {"input_tokens": -9}])
async def test_a_response_whose_usage_is_no_count_is_answered_and_its_usage_unknown(make_transport, mocked, usage):
    from refinery.wire.responses_client import ResponsesClient
    from refinery.wire.responses_request_builder import build_responses_body
    from tests.helpers import BASE, response_json

    answer = response_json('{"answer": "42"}')
    answer["usage"] = usage
    # aioresponses sends JSON as Python writes it: NaN as `NaN`, which `json.loads` reads back
    mocked.post(f"{BASE}/responses", payload=answer)
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    body = build_responses_body("gpt-4o", "vs_1", "sys", "find the bug", schema)
    async with ResponsesClient(transport=make_transport()) as client:
        data = await client.create(body, label="stage1")
        assert data["output"] and client.usage_for("stage1").unknown
