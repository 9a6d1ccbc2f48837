"""ResponsesClient over mocked HTTP: the requests it sends and what it makes of each answer."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from refinery.app.exit_codes import hint_for
from refinery.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CanaryError,
    ConfigurationError,
    IncompleteResponseError,
    NotFoundError,
    OutputFormatError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RefusalError,
    ResponseFailedError,
    ServerError,
    UnprocessableEntityError,
)
from refinery.wire.response_output import (
    citations,
    file_search_results,
    output_text,
    parse_json_output,
)
from refinery.wire.responses_client import REASK_TEXT, ResponsesClient
from refinery.wire.responses_request_builder import build_responses_body
from refinery.wire.transport import ApiSettings, RetryPolicy
from tests.helpers import BASE, response_json, sent

URL = f"{BASE}/responses"
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}
BODY = build_responses_body("gpt-4o", "vs_1", "sys", "find the bug", SCHEMA)
OK = response_json('{"answer": "42"}')


def rl_error(code="rate_limit_exceeded"):
    return {
        "error": {
            "message": "Rate limit reached",
            "type": "requests" if code != "insufficient_quota" else "insufficient_quota",
            "param": None,
            "code": code,
        }
    }


@pytest.fixture
def client(make_transport):
    def factory(**retry):
        return ResponsesClient(transport=make_transport(**retry))

    return factory


# --- configuration --------------------------------------------------------------------------
def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("OPENAI_PROJECT", "proj_e")
    monkeypatch.setenv("OPENAI_ORG_ID", "org_e")
    s = ApiSettings.from_env()
    assert (s.api_key, s.base_url, s.project, s.organization) == ("sk-env", "http://127.0.0.1:9/v1", "proj_e", "org_e")
    assert "sk-env" not in repr(s)


def test_default_base_url_is_openai(no_env):
    assert ApiSettings.from_env("sk-x").base_url == "https://api.openai.com/v1"


def test_missing_key_is_a_configuration_error(no_env):
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        ResponsesClient()


# --- the request ----------------------------------------------------------------------------
async def test_create_posts_the_body_with_auth_and_project_headers(client, mocked):
    mocked.post(URL, payload=OK)
    async with client() as c:
        data = await c.create(BODY)
    assert data["id"] == "resp_1"
    [call] = sent(mocked, "POST", URL)
    assert call.kwargs["json"] == BODY
    headers = call.kwargs["headers"]
    assert headers["Authorization"] == "Bearer sk-test-key"
    assert headers["OpenAI-Project"] == "proj_1"
    assert headers["OpenAI-Organization"] == "org_1"


async def test_usage_is_recorded_per_label(client, mocked):
    mocked.post(URL, payload=OK)
    mocked.post(URL, payload=OK)
    async with client() as c:
        await c.create(BODY, label="stage1")
        await c.create(BODY, label="stage1")
        u = c.usage_for("stage1")
    assert (u.input_tokens, u.output_tokens, u.cached_tokens, u.total_tokens) == (200, 40, 20, 240)
    assert c.usage_for("stage2").total_tokens == 0


# --- rate limits ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "expected_wait"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "7"}, 7.0),
        ({"x-ratelimit-reset-tokens": "6m0s", "x-ratelimit-remaining-tokens": "0"}, 360.0),
        ({"x-ratelimit-reset-requests": "1.5s", "x-ratelimit-remaining-requests": "0"}, 1.5),
        ({}, 90.0),  # no hint: the plan's 60-120 s jittered sleep (rng fixed at 0.5)
    ],
    ids=["retry-after-ms", "retry-after", "reset-tokens", "reset-requests", "no-header"],
)
async def test_rate_limit_waits_what_the_server_says(client, mocked, clock, headers, expected_wait):
    mocked.post(URL, status=429, payload=rl_error(), headers=headers)
    mocked.post(URL, payload=OK)
    async with client() as c:
        data = await c.create(BODY)
    assert data["status"] == "completed"
    assert clock.sleeps == [pytest.approx(expected_wait)]
    assert len(sent(mocked, "POST", URL)) == 2


async def test_insufficient_quota_is_never_retried(client, mocked, clock):
    mocked.post(URL, status=429, payload=rl_error("insufficient_quota"), headers={"retry-after": "1"})
    async with client() as c:
        with pytest.raises(QuotaExceededError) as exc:
            await c.create(BODY)
    assert exc.value.code == "insufficient_quota" and exc.value.status == 429
    assert clock.sleeps == []
    assert len(sent(mocked, "POST", URL)) == 1


async def test_rate_limit_retries_are_bounded_by_count(client, mocked, clock):
    for _ in range(3):
        mocked.post(
            URL, status=429, payload=rl_error(), headers={"retry-after": "2", "x-ratelimit-remaining-tokens": "0"}
        )
    async with client(max_rate_limit_retries=2) as c:
        with pytest.raises(RateLimitError) as exc:
            await c.create(BODY)
    assert clock.sleeps == [2.0, 2.0]
    assert exc.value.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_rate_limit_retries_are_bounded_by_total_wait(client, mocked, clock):
    for _ in range(3):
        mocked.post(URL, status=429, payload=rl_error(), headers={"retry-after": "40"})
    async with client(max_rate_limit_wait_s=100) as c:
        with pytest.raises(RateLimitError):
            await c.create(BODY)
    assert clock.sleeps == [40.0, 40.0]


# --- transient failures ---------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_error_then_success(client, mocked, clock, status):
    mocked.post(
        URL, status=status, payload={"error": {"message": "oops", "type": "server_error", "param": None, "code": None}}
    )
    mocked.post(URL, payload=OK)
    async with client() as c:
        assert (await c.create(BODY))["id"] == "resp_1"
    assert len(clock.sleeps) == 1 and 0 < clock.sleeps[0] <= 8


async def test_server_errors_exhaust_the_retries(client, mocked, clock):
    for _ in range(3):
        mocked.post(
            URL,
            status=503,
            payload={"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}},
        )
    async with client(max_retries=2) as c:
        with pytest.raises(ServerError, match="overloaded") as exc:
            await c.create(BODY)
    assert exc.value.status == 503
    assert len(clock.sleeps) == 2 and clock.sleeps[1] > clock.sleeps[0]


async def test_x_should_retry_false_stops_retrying(client, mocked, clock):
    mocked.post(
        URL,
        status=500,
        payload={"error": {"message": "no", "type": "server_error", "param": None, "code": None}},
        headers={"x-should-retry": "false"},
    )
    async with client() as c:
        with pytest.raises(ServerError):
            await c.create(BODY)
    assert clock.sleeps == []


async def test_x_should_retry_true_retries_a_4xx(client, mocked, clock):
    mocked.post(
        URL,
        status=400,
        payload={"error": {"message": "flaky", "type": "x", "param": None, "code": None}},
        headers={"x-should-retry": "true"},
    )
    mocked.post(URL, payload=OK)
    async with client() as c:
        assert (await c.create(BODY))["id"] == "resp_1"
    assert len(clock.sleeps) == 1


async def test_timeouts_are_retried_then_raised(client, mocked, clock):
    for _ in range(3):
        mocked.post(URL, exception=asyncio.TimeoutError())
    async with client(max_retries=2) as c:
        with pytest.raises(APITimeoutError, match="timed out"):
            await c.create(BODY)
    assert len(clock.sleeps) == 2


async def test_timeout_then_success(client, mocked, clock):
    mocked.post(URL, exception=asyncio.TimeoutError())
    mocked.post(URL, payload=OK)
    async with client() as c:
        assert (await c.create(BODY))["id"] == "resp_1"


async def test_connection_errors_say_what_failed_and_leave_advice_to_the_command_line(client, mocked):
    for _ in range(4):
        mocked.post(URL, exception=aiohttp.ClientConnectionError("refused"))
    async with client() as c:
        with pytest.raises(APIConnectionError, match="failed: refused") as err:
            await c.create(BODY)
    assert "refinery canary" not in str(err.value) and hint_for(err.value) is not None


async def test_a_refused_connection_names_host_port_and_the_systems_reason():
    async with ResponsesClient(api_key="sk-x", base_url="http://127.0.0.1:9/v1", retry=RetryPolicy(max_retries=0)) as c:
        with pytest.raises(APIConnectionError) as err:
            await c.create(BODY)
    assert "cannot connect to 127.0.0.1:9: " in str(err.value) and "ssl:default" not in str(err.value)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, UnprocessableEntityError),
    ],
)
async def test_client_errors_are_typed_and_carry_the_api_fields(client, mocked, clock, status, cls):
    err = {
        "error": {
            "message": "Unknown parameter: 'response_format'.",
            "type": "invalid_request_error",
            "param": "response_format",
            "code": "unknown_parameter",
        }
    }
    mocked.post(URL, status=status, payload=err, headers={"x-request-id": "req_9"})
    async with client() as c:
        with pytest.raises(cls) as exc:
            await c.create(BODY)
    e = exc.value
    assert e.status == status
    assert e.message.startswith("Unknown parameter: 'response_format'.")
    assert (e.type, e.param, e.code, e.request_id) == (
        "invalid_request_error",
        "response_format",
        "unknown_parameter",
        "req_9",
    )
    assert clock.sleeps == []


async def test_auth_errors_leave_the_canary_advice_to_the_command_line(client, mocked):
    mocked.post(
        URL,
        status=401,
        payload={
            "error": {
                "message": "Incorrect API key provided",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
    )
    async with client() as c:
        with pytest.raises(AuthenticationError, match="Incorrect API key provided") as err:
            await c.create(BODY)
    assert "refinery canary" not in str(err.value) and "param=None" not in str(err.value)
    assert "refinery canary" in (hint_for(err.value) or "")


# --- reading the answer ---------------------------------------------------------------------
FILE_SEARCH_CALL = {
    "id": "fs_1",
    "type": "file_search_call",
    "status": "completed",
    "queries": ["error"],
    "results": [
        {"file_id": "file-1", "filename": "t_runs_001-006.md", "score": 0.9, "text": "run r1 failed", "attributes": {}}
    ],
}


def test_output_text_skips_file_search_call_and_joins_parts():
    resp = response_json("", extra_items=[FILE_SEARCH_CALL, {"id": "rs_1", "type": "reasoning", "summary": []}])
    resp["output"][-1]["content"] = [
        {"type": "output_text", "text": '{"answer": ', "annotations": []},
        {
            "type": "output_text",
            "text": '"42"}',
            "annotations": [
                {"type": "file_citation", "file_id": "file-1", "filename": "t_runs_001-006.md", "index": 3}
            ],
        },
    ]
    assert output_text(resp) == '{"answer": "42"}'
    assert parse_json_output(resp) == {"answer": "42"}
    assert file_search_results(resp)[0]["filename"] == "t_runs_001-006.md"
    assert citations(resp)[0]["file_id"] == "file-1"


def test_top_level_output_text_is_used_when_present():
    resp = response_json("ignored")
    resp["output_text"] = '{"answer": "sdk"}'
    assert output_text(resp) == '{"answer": "sdk"}'


def test_refusal_raises():
    resp = response_json("")
    resp["output"][-1]["content"] = [{"type": "refusal", "refusal": "I can't help with that."}]
    with pytest.raises(RefusalError, match="can't help") as exc:
        output_text(resp)
    assert exc.value.refusal == "I can't help with that."


def test_incomplete_raises_with_reason_and_partial_text():
    resp = response_json('{"answer": "4', status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    with pytest.raises(IncompleteResponseError) as exc:
        output_text(resp)
    assert exc.value.reason == "max_output_tokens" and exc.value.partial_text == '{"answer": "4'


def test_failed_status_in_a_200_raises_with_the_error():
    resp = response_json("", status="failed", error={"code": "server_error", "message": "boom"})
    with pytest.raises(ResponseFailedError, match="boom") as exc:
        output_text(resp)
    assert exc.value.code == "server_error"


# --- JSON recovery --------------------------------------------------------------------------
async def test_bad_json_then_good_reask(client, mocked):
    mocked.post(URL, payload=response_json("Sure! Here it is: {answer: 42"))
    mocked.post(URL, payload=OK)
    async with client() as c:
        answer = await c.create_json(BODY, SCHEMA, label="s1")
        assert answer.data == {"answer": "42"}
        assert answer.usage.total_tokens == 2 * 120 and answer.usage.label == "s1"  # the re-ask is counted with it
    first, reask = sent(mocked, "POST", URL)
    assert first.kwargs["json"] == BODY
    user = reask.kwargs["json"]["input"][-1]["content"][0]["text"]
    assert user.startswith(REASK_TEXT) and user.endswith("Sure! Here it is: {answer: 42")
    assert reask.kwargs["json"]["input"][0] == BODY["input"][0]
    assert reask.kwargs["json"]["text"] == BODY["text"]
    assert len(c.usage) == 2


async def test_bad_json_twice_raises_with_the_raw_text(client, mocked):
    mocked.post(URL, payload=response_json("not json"))
    mocked.post(URL, payload=response_json("still not json"))
    async with client() as c:
        with pytest.raises(OutputFormatError) as exc:
            await c.create_json(BODY, SCHEMA)
    assert exc.value.raw_text == "still not json"


async def test_schema_invalid_json_is_reasked_then_raised(client, mocked):
    mocked.post(URL, payload=response_json('{"answer": 42}'))
    mocked.post(URL, payload=response_json('{"wrong": true}'))
    async with client() as c:
        with pytest.raises(OutputFormatError) as exc:
            await c.create_json(BODY, SCHEMA)
    assert exc.value.raw_text == '{"wrong": true}'
    assert any("answer" in p for p in exc.value.problems)
    assert len(sent(mocked, "POST", URL)) == 2


async def test_truncated_output_is_retried_once_with_a_bigger_budget(client, mocked):
    mocked.post(
        URL, payload=response_json('{"ans', status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    )
    mocked.post(URL, payload=OK)
    async with client() as c:
        assert (await c.create_json(BODY, SCHEMA)).data == {"answer": "42"}
    first, second = sent(mocked, "POST", URL)
    assert first.kwargs["json"]["max_output_tokens"] == 1000
    assert second.kwargs["json"]["max_output_tokens"] == 2000


async def test_truncation_twice_gives_up(client, mocked):
    truncated = response_json('{"ans', status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    mocked.post(URL, payload=truncated)
    mocked.post(URL, payload=truncated)
    async with client() as c:
        with pytest.raises(IncompleteResponseError):
            await c.create_json(BODY, SCHEMA)


async def test_content_filter_incomplete_is_not_retried(client, mocked):
    mocked.post(URL, payload=response_json("", status="incomplete", incomplete_details={"reason": "content_filter"}))
    async with client() as c:
        with pytest.raises(IncompleteResponseError) as exc:
            await c.create_json(BODY, SCHEMA)
    assert exc.value.reason == "content_filter"
    assert len(sent(mocked, "POST", URL)) == 1


# --- canary ---------------------------------------------------------------------------------
async def test_canary_success(client, mocked):
    mocked.post(URL, payload=response_json('{"reply": "PONG"}'))
    async with client() as c:
        result = await c.canary("gpt-4o")
    assert result.ok and result.reply == "PONG"
    assert sent(mocked, "POST", URL)[0].kwargs["json"]["text"]["format"]["name"] == "canary"


async def test_canary_says_the_key_is_wrong(client, mocked):
    mocked.post(
        URL,
        status=401,
        payload={
            "error": {
                "message": "Incorrect API key provided: sk-tes***",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
    )
    async with client() as c:
        with pytest.raises(CanaryError, match="OPENAI_API_KEY"):
            await c.canary()


async def test_canary_says_the_model_or_url_is_wrong(client, mocked):
    mocked.post(
        URL,
        status=404,
        payload={
            "error": {
                "message": "The model `gpt-9` does not exist",
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            }
        },
    )
    async with client() as c:
        with pytest.raises(CanaryError, match="gpt-9.*OPENAI_BASE_URL"):
            await c.canary("gpt-9")


async def test_the_api_key_never_reaches_logs_or_errors(client, mocked, caplog):
    caplog.set_level("DEBUG")
    mocked.post(URL, status=429, payload=rl_error(), headers={"retry-after": "1"})
    mocked.post(
        URL,
        status=401,
        payload={
            "error": {"message": "bad key", "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}
        },
    )
    async with client() as c:
        with pytest.raises(AuthenticationError) as exc:
            await c.create(BODY)
    assert caplog.records, "the retry should have been logged"
    assert "sk-test-key" not in caplog.text
    assert "sk-test-key" not in str(exc.value) and "sk-test-key" not in repr(c.transport.settings)
