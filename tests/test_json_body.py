"""A big request body is serialised in refinery's worker, not on the event loop (`wire.json_body`).

Why: aiohttp's `json=` serialises on the loop, and a Stage 1 group read inline is about 4 MB of
JSON: its `json.dumps` held a host's loop over 50 ms. The bytes sent must be exactly what `json=`
would have sent, and a retry must send them again without serialising twice.
"""

from __future__ import annotations

import json

import pytest

from refinery.core.offload import worker_thread
from refinery.wire import json_body
from refinery.wire.json_body import BIG_BODY_CHARS, is_big
from refinery.wire.responses_client import ResponsesClient
from tests.helpers import BASE, json_sent, response_json, sent

URL = f"{BASE}/responses"
OK = response_json('{"answer": "42"}')


def body_of(chars: int) -> dict:
    return {"model": "gpt-4.1", "input": [{"role": "user", "content": [{"type": "input_text", "text": "é" * chars}]}]}


def test_a_body_whose_strings_reach_the_limit_is_big_and_a_smaller_one_is_not():
    assert is_big(body_of(BIG_BODY_CHARS))
    assert not is_big(body_of(BIG_BODY_CHARS - 1000))


def test_keys_and_strings_deep_in_lists_count_towards_the_limit():
    assert is_big({"a": [["x" * (BIG_BODY_CHARS // 2)], ("y" * (BIG_BODY_CHARS // 2),)]})
    assert is_big({"k" * BIG_BODY_CHARS: 1})
    assert not is_big({"n": list(range(1000)), "f": 1.5, "b": None})


@pytest.fixture
def serialised_in(monkeypatch) -> list[bool]:
    """Whether each serialisation of a big body ran in refinery's worker thread."""
    seen: list[bool] = []
    real = json_body._encoded

    def spy(body):
        seen.append(worker_thread())
        return real(body)

    monkeypatch.setattr(json_body, "_encoded", spy)
    return seen


async def test_a_big_body_is_sent_as_the_bytes_json_would_send_serialised_in_the_worker(
    make_transport, mocked, serialised_in
):
    mocked.post(URL, payload=OK)
    body = body_of(BIG_BODY_CHARS + 1)
    async with ResponsesClient(transport=make_transport()) as client:
        await client.create(body)
    [call] = sent(mocked, "POST", URL)
    assert call.kwargs["json"] is None
    assert call.kwargs["data"] == json.dumps(body).encode("utf-8")
    assert call.kwargs["headers"]["Content-Type"] == "application/json"
    assert call.kwargs["headers"]["Authorization"] == "Bearer sk-test-key"
    assert json_sent(call.kwargs) == body
    assert serialised_in == [True]


async def test_a_retried_big_body_is_serialised_once_and_sent_the_same_each_time(make_transport, mocked, serialised_in):
    mocked.post(URL, status=500, payload={"error": {"message": "boom", "type": "server_error"}})
    mocked.post(URL, payload=OK)
    body = body_of(BIG_BODY_CHARS + 1)
    async with ResponsesClient(transport=make_transport()) as client:
        await client.create(body)
    first, second = sent(mocked, "POST", URL)
    assert first.kwargs["data"] == second.kwargs["data"] == json.dumps(body).encode("utf-8")
    assert serialised_in == [True]


async def test_a_small_body_is_left_to_aiohttps_json(make_transport, mocked, serialised_in):
    mocked.post(URL, payload=OK)
    body = body_of(10)
    async with ResponsesClient(transport=make_transport()) as client:
        await client.create(body)
    [call] = sent(mocked, "POST", URL)
    assert call.kwargs["json"] == body
    assert "Content-Type" not in call.kwargs["headers"]
    assert serialised_in == []


LONG = json_body.PIECE_CHARS * 2 + 7


@pytest.mark.parametrize(
    "body",
    [
        {"text": "a" * LONG},
        {"text": ('é"\\\n\t\u2028😀\ud800 ' * LONG)[:LONG]},  # escapes, a character past the BMP, a lone surrogate
        {"input": [{"content": [{"text": "x" * LONG}, {"text": "short"}]}, ("y" * LONG, 1.5, None, True)]},
        {"a": "z" * LONG, "b": {"c": "q" * LONG}, "n": [1, -0.0, 10**20], "s": '"marker-like":0"'},
        ["w" * (json_body.PIECE_CHARS + 1)],
        {"exact": "e" * json_body.PIECE_CHARS},
    ],
)
def test_a_big_body_is_encoded_a_piece_at_a_time_to_the_bytes_json_dumps_gives(body):
    assert json_body._encoded(body) == json.dumps(body).encode("utf-8")


def test_a_text_holding_the_marker_of_the_encoding_still_encodes_right(monkeypatch):
    class Fixed:
        hex = "f" * 32

    monkeypatch.setattr(json_body.uuid, "uuid4", lambda: Fixed)
    body = {"a": ("f" * 32 + ":0") * (json_body.PIECE_CHARS // 30), "b": '"' + "f" * 32 + ':0"'}
    assert json_body._encoded(body) == json.dumps(body).encode("utf-8")
