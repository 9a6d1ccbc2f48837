"""The test server's Batch API: input files validated as the API does, batches run on the server's
clock, lines answered by its own endpoints, and the knobs a test sets (delay, line errors, expiry,
failed validation). Spoken to over HTTP, as any client would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from refinery.testing.openapi_spec import OpenAPISpec
from refinery.testing.server import OpenAITestServer
from tests.helpers import FakeClock

RESPONSES = "/v1/responses"
BODY = {"model": "gpt-4.1-mini", "input": "Answer PONG"}


def line(custom_id: str, *, url: str = RESPONSES, method: str = "POST", body: Any = None, **drop: bool) -> str:
    obj = {"custom_id": custom_id, "method": method, "url": url, "body": BODY if body is None else body}
    return json.dumps({k: v for k, v in obj.items() if not drop.get(f"no_{k}")})


def present(obj: dict[str, Any]) -> dict[str, Any]:
    """The fields that are set: the spec types a batch's times as integers, while the API (and the
    spec's own example) sends null for a moment not yet come."""
    return {k: v for k, v in obj.items() if v is not None}


def jsonl(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


class Http:
    """Raw HTTP to the server (what the API answers, not what a client makes of it)."""

    def __init__(self, server: OpenAITestServer, session: aiohttp.ClientSession) -> None:
        self.server, self.session = server, session
        self.headers = {"api-key": "k"} if server.azure else {"Authorization": "Bearer sk-test"}

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.server.base_url + path, headers=self.headers, **kw) as r:
            raw = await r.read()
            return r.status, json.loads(raw) if r.content_type == "application/json" else raw

    async def upload(self, data: bytes, purpose: str = "batch") -> str:
        form = aiohttp.FormData()
        form.add_field("purpose", purpose)
        form.add_field("file", data, filename="in.jsonl")
        status, obj = await self.call("POST", "/files", data=form)
        assert status == 200, obj
        return obj["id"]

    async def create(self, data: bytes, endpoint: str = RESPONSES, **extra: Any) -> dict[str, Any]:
        file_id = await self.upload(data)
        status, obj = await self.call(
            "POST",
            "/batches",
            json={"input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", **extra},
        )
        assert status == 200, obj
        return obj

    async def get(self, batch_id: str) -> dict[str, Any]:
        status, obj = await self.call("GET", f"/batches/{batch_id}")
        assert status == 200, obj
        return obj

    async def lines(self, file_id: str | None) -> dict[str, dict[str, Any]]:
        if file_id is None:
            return {}
        status, raw = await self.call("GET", f"/files/{file_id}/content")
        assert status == 200
        return {obj["custom_id"]: obj for obj in map(json.loads, raw.decode().splitlines())}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_server(clock: FakeClock, spec: OpenAPISpec, **options: Any) -> OpenAITestServer:
    """A server on the fake clock judging bodies by the session's spec (loaded once, not once a server)."""
    server = OpenAITestServer(clock=clock, validate_requests=False, **options)
    server.spec = spec
    return server


@pytest_asyncio.fixture
async def server(clock: FakeClock, spec: OpenAPISpec) -> AsyncIterator[OpenAITestServer]:
    async with make_server(clock, spec) as s:
        yield s


@pytest_asyncio.fixture
async def http(server: OpenAITestServer) -> AsyncIterator[Http]:
    async with aiohttp.ClientSession() as session:
        yield Http(server, session)


# --- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lines", "code", "at"),
    [
        ([line("a"), "{not json"], "invalid_json_line", 2),
        ([line("a"), '["a list"]'], "invalid_json_line", 2),
        ([line("a"), line("b", no_method=True)], "missing_required_parameter", 2),
        ([line("a"), line("a")], "duplicate_custom_id", 2),
        ([line("a", method="GET")], "invalid_method", 1),
        ([line("a"), line("b", url="/v1/chat/completions")], "url_mismatch", 2),
        ([line("a", body="text")], "invalid_body", 1),
        ([line("a"), line("b", body={**BODY, "model": "gpt-4.1"})], "model_mismatch", 2),
    ],
)
async def test_a_bad_input_line_fails_the_batch_naming_line_and_code(http, lines, code, at):
    made = await http.create(jsonl(*lines))
    assert made["status"] == "validating"
    batch = await http.get(made["id"])
    assert batch["status"] == "failed" and batch["failed_at"] is not None
    assert [(e["code"], e["line"]) for e in batch["errors"]["data"]] == [(code, at)]
    assert batch["output_file_id"] is None and batch["error_file_id"] is None
    assert http.server.stats["batch lines"] == 0  # nothing of a refused file is run


async def test_an_empty_input_file_fails_validation(http):
    batch = await http.get((await http.create(b"\n\n"))["id"])
    assert [e["code"] for e in batch["errors"]["data"]] == ["empty_file"]


async def test_more_requests_than_the_limit_fail_validation(http):
    http.server.batch_knobs.max_requests = 2
    batch = await http.get((await http.create(jsonl(line("a"), line("b"), line("c"))))["id"])
    assert [e["code"] for e in batch["errors"]["data"]] == ["too_many_tasks"]


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"endpoint": "/v1/embeddings"}, 400, "endpoint"),
        ({"endpoint": "/v1/nowhere"}, 400, "endpoint"),
        ({"completion_window": "48h"}, 400, "completion_window"),
        ({"priority": "high"}, 400, "priority"),
        ({"input_file_id": "file-missing"}, 404, "file-missing"),
    ],
)
async def test_create_refuses_at_once_what_the_api_refuses(http, change, status, says):
    file_id = await http.upload(jsonl(line("a")))
    body = {"input_file_id": file_id, "endpoint": RESPONSES, "completion_window": "24h", **change}
    got, obj = await http.call("POST", "/batches", json=body)
    assert got == status and says in json.dumps(obj["error"])
    assert http.server.batches == {}


async def test_create_refuses_an_input_file_without_purpose_batch(http):
    file_id = await http.upload(jsonl(line("a")), purpose="assistants")
    got, obj = await http.call(
        "POST", "/batches", json={"input_file_id": file_id, "endpoint": RESPONSES, "completion_window": "24h"}
    )
    assert got == 400 and "purpose 'batch'" in obj["error"]["message"]


# --- processing ---------------------------------------------------------------------------------
async def test_a_batch_runs_on_the_server_clock_through_each_status(http, clock):
    http.server.batch_knobs.completion_delay_s = 100
    http.server.batch_knobs.finalizing_s = 10
    made = await http.create(jsonl(*(line(c) for c in "abcd")), metadata={"run": "r1"})
    seen = [made["status"]]
    for step in (0, 50, 50, 10):
        clock.now += step
        batch = await http.get(made["id"])
        seen.append((batch["status"], batch["request_counts"]["completed"]))
    assert seen == ["validating", ("in_progress", 0), ("in_progress", 2), ("finalizing", 4), ("completed", 4)]
    assert batch["created_at"] <= batch["in_progress_at"] <= batch["finalizing_at"] <= batch["completed_at"]
    assert batch["completed_at"] - batch["in_progress_at"] == 110
    assert batch["metadata"] == {"run": "r1"} and batch["model"] == "gpt-4.1-mini"
    out = await http.lines(batch["output_file_id"])
    bodies = [o["response"]["body"]["usage"] for o in out.values()]
    assert batch["usage"]["input_tokens"] == sum(u["input_tokens"] for u in bodies) > 0
    assert batch["usage"]["total_tokens"] == sum(u["total_tokens"] for u in bodies)
    assert batch["request_counts"] == {"total": 4, "completed": 4, "failed": 0}


async def test_each_line_is_answered_by_the_server_own_endpoint_in_the_output_shape(http, spec):
    batch = await http.get((await http.create(jsonl(line("a"), line("b"))))["id"])
    assert batch["status"] == "completed" and batch["error_file_id"] is None
    assert spec.validate(present(batch), "Batch") == []
    out = await http.lines(batch["output_file_id"])
    assert set(out) == {"a", "b"}
    first = out["a"]
    assert set(first) == {"id", "custom_id", "response", "error"} and first["error"] is None
    assert first["response"]["status_code"] == 200 and first["response"]["request_id"].startswith("req_")
    assert spec.validate(first["response"]["body"], "Response") == []
    assert first["response"]["body"]["output"][-1]["content"][0]["text"] == "PONG"
    assert http.server.response_bodies == [BODY, BODY]  # the same handler as POST /v1/responses saw them


async def test_chat_completions_lines_are_answered_by_the_chat_endpoint(http, spec):
    chat = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Answer PONG"}]}
    made = await http.create(jsonl(line("a", url="/v1/chat/completions", body=chat)), endpoint="/v1/chat/completions")
    out = await http.lines((await http.get(made["id"]))["output_file_id"])
    body = out["a"]["response"]["body"]
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"] == "PONG"
    assert spec.validate(body, "CreateChatCompletionResponse") == []


async def test_a_line_the_endpoint_refuses_goes_in_the_error_file_with_its_status(http):
    made = await http.create(jsonl(line("good"), line("bad", body={**BODY, "not_a_param": 1})))
    batch = await http.get(made["id"])
    assert batch["status"] == "completed" and batch["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    assert set(await http.lines(batch["output_file_id"])) == {"good"}
    bad = (await http.lines(batch["error_file_id"]))["bad"]
    assert bad["response"]["status_code"] == 400 and bad["response"]["body"]["error"]["code"] == "unknown_parameter"


async def test_batch_lines_are_outside_the_online_limits_and_not_counted_as_requests(clock, spec):
    async with make_server(clock, spec, rpm=1) as server, aiohttp.ClientSession() as session:
        http = Http(server, session)
        batch = await http.get((await http.create(jsonl(*(line(c) for c in "abcde"))))["id"])
        assert batch["request_counts"]["completed"] == 5
        assert server.stats["POST /v1/responses"] == 0 and server.stats["429 rate_limit_exceeded"] == 0
        assert (server.stats["POST /v1/batches"], server.stats["batch lines"]) == (1, 5)


# --- knobs --------------------------------------------------------------------------------------
async def test_line_errors_hit_matching_custom_ids_the_times_they_are_set(http):
    http.server.batch_knobs.fail_lines("t2", 503, times=1)
    first = await http.get((await http.create(jsonl(line("t1"), line("t2"))))["id"])
    failed = (await http.lines(first["error_file_id"]))["t2"]
    assert failed["response"]["status_code"] == 503 and failed["response"]["body"]["error"]["type"] == "server_error"
    assert first["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    again = await http.get((await http.create(jsonl(line("t2"))))["id"])  # resubmitted: the knob is spent
    assert again["error_file_id"] is None and set(await http.lines(again["output_file_id"])) == {"t2"}


async def test_a_line_error_carries_the_body_it_is_given(http):
    error = {"error": {"message": "context too long", "type": "invalid_request_error", "code": "context_length"}}
    http.server.batch_knobs.fail_lines("a", 400, error, times=None)
    batch = await http.get((await http.create(jsonl(line("a"))))["id"])
    assert batch["output_file_id"] is None
    assert (await http.lines(batch["error_file_id"]))["a"]["response"]["body"] == error


async def test_an_expired_batch_keeps_finished_lines_and_expires_the_rest(http):
    http.server.batch_knobs.expire_next_batch(finished=2)
    batch = await http.get((await http.create(jsonl(*(line(c) for c in "abcd"))))["id"])
    assert batch["status"] == "expired" and batch["expired_at"] is not None
    assert set(await http.lines(batch["output_file_id"])) == {"a", "b"}
    errors = await http.lines(batch["error_file_id"])
    assert {cid: e["error"]["code"] for cid, e in errors.items()} == {"c": "batch_expired", "d": "batch_expired"}
    assert all(e["response"] is None for e in errors.values())
    assert batch["request_counts"] == {"total": 4, "completed": 2, "failed": 2}
    assert (await http.get((await http.create(jsonl(line("e"))))["id"]))["status"] == "completed"  # one batch only


async def test_a_batch_slower_than_the_window_expires_after_24_hours(http, clock):
    http.server.batch_knobs.completion_delay_s = 4 * 86_400
    made = await http.create(jsonl(*(line(c) for c in "abcd")))
    await http.get(made["id"])
    clock.now += 86_400
    batch = await http.get(made["id"])
    assert batch["status"] == "expired" and batch["request_counts"]["completed"] == 1


async def test_a_forced_validation_failure_fails_the_next_batch(http):
    http.server.batch_knobs.fail_next_batch("invalid_json_line", "This line is not parseable as valid JSON.", line=3)
    batch = await http.get((await http.create(jsonl(line("a"))))["id"])
    assert batch["status"] == "failed"
    assert batch["errors"]["data"] == [
        {"code": "invalid_json_line", "message": "This line is not parseable as valid JSON.", "param": None, "line": 3}
    ]


# --- cancel, list, files ------------------------------------------------------------------------
async def test_a_cancelled_batch_keeps_what_was_answered(http, clock):
    http.server.batch_knobs.completion_delay_s = 100
    made = await http.create(jsonl(*(line(c) for c in "abcd")))
    await http.get(made["id"])
    clock.now += 50
    status, cancelling = await http.call("POST", f"/batches/{made['id']}/cancel")
    assert status == 200 and cancelling["status"] == "cancelling" and cancelling["cancelling_at"] is not None
    clock.now += 50
    batch = await http.get(made["id"])
    assert batch["status"] == "cancelled" and batch["cancelled_at"] is not None
    assert set(await http.lines(batch["output_file_id"])) == {"a", "b"}
    assert {e["error"]["code"] for e in (await http.lines(batch["error_file_id"])).values()} == {"batch_cancelled"}


async def test_a_finished_batch_cannot_be_cancelled(http):
    made = await http.create(jsonl(line("a")))
    await http.get(made["id"])
    status, obj = await http.call("POST", f"/batches/{made['id']}/cancel")
    assert status == 400 and "completed" in obj["error"]["message"]


async def test_an_unknown_batch_is_404(http):
    status, obj = await http.call("GET", "/batches/batch_nope")
    assert status == 404 and "batch_nope" in obj["error"]["message"]


async def test_the_list_pages_newest_first_with_after_and_limit(http, clock, spec):
    ids = []
    for _ in range(5):
        ids.append((await http.create(jsonl(line("a"))))["id"])
        clock.now += 1
    status, page = await http.call("GET", "/batches", params={"limit": "2"})
    assert (
        status == 200
        and spec.validate({**page, "data": [present(b) for b in page["data"]]}, "ListBatchesResponse") == []
    )
    newest = sorted(ids, reverse=True)
    assert [b["id"] for b in page["data"]] == newest[:2] and page["has_more"] is True
    status, rest = await http.call("GET", "/batches", params={"limit": "100", "after": page["last_id"]})
    assert [b["id"] for b in rest["data"]] == newest[2:] and rest["has_more"] is False


@pytest.mark.parametrize("limit", ["0", "101", "x"])
async def test_the_list_refuses_a_limit_outside_1_to_100(http, limit):
    status, obj = await http.call("GET", "/batches", params={"limit": limit})
    assert status == 400 and obj["error"]["param"] == "limit"


async def test_file_content_is_the_bytes_uploaded_but_not_for_assistants_files(http):
    data = jsonl(line("a"))
    status, raw = await http.call("GET", f"/files/{await http.upload(data)}/content")
    assert (status, raw) == (200, data)
    status, obj = await http.call("GET", f"/files/{await http.upload(b'text', purpose='assistants')}/content")
    assert status == 400 and "assistants" in obj["error"]["message"]


async def test_azure_serves_batches_under_openai_v1_with_the_api_key_header(clock, spec):
    async with make_server(clock, spec, azure=True) as server, aiohttp.ClientSession() as session:
        http = Http(server, session)
        assert server.base_url.endswith("/openai/v1")
        batch = await http.get((await http.create(jsonl(line("a"))))["id"])
        assert batch["status"] == "completed" and server.stats["auth api-key"] >= 3


async def test_a_server_without_the_batch_api_answers_404(clock, spec):
    async with make_server(clock, spec, batch_api=False) as server, aiohttp.ClientSession() as session:
        status, _ = await Http(server, session).call("GET", "/batches")
        assert status == 404


async def test_the_knobs_can_be_set_over_http_for_the_server_run_as_a_process(http):
    knobs = {
        "completion_delay_s": 30,
        "fail_lines": [{"match": "x", "status": 429, "times": 2}],
        "expire_next_batch": [1],
        "fail_next_batch": [{"code": "empty_file", "message": "The batch input file is empty.", "line": 1}],
    }
    async with http.session.post(http.server.base_url.rsplit("/v1", 1)[0] + "/_refinery/batch_knobs", json=knobs) as r:
        assert r.status == 200
    set_ = http.server.batch_knobs
    assert set_.completion_delay_s == 30 and set_.expire_next == [1]
    assert [(k.match, k.status, k.times) for k in set_.line_errors] == [("x", 429, 2)]
    batch = await http.get((await http.create(jsonl(line("a"))))["id"])
    assert batch["status"] == "failed" and batch["errors"]["data"][0]["code"] == "empty_file"


async def test_the_official_sdk_runs_a_batch_against_the_server(server):
    openai = pytest.importorskip("openai", reason="the conformance test needs the openai package (test extra)")
    client = openai.AsyncOpenAI(api_key="sk-sdk", base_url=server.base_url, max_retries=0)
    try:
        f = await client.files.create(file=("in.jsonl", jsonl(line("a"), line("b"))), purpose="batch")
        made = await client.batches.create(
            input_file_id=f.id, endpoint="/v1/responses", completion_window="24h", metadata={"run": "sdk"}
        )
        assert made.status == "validating" and made.metadata == {"run": "sdk"}
        done = await client.batches.retrieve(made.id)
        assert done.status == "completed" and done.request_counts is not None and done.request_counts.completed == 2
        assert [b.id async for b in client.batches.list(limit=1)] == [made.id]
        content = await client.files.content(str(done.output_file_id))
        assert {json.loads(x)["custom_id"] for x in content.text.splitlines()} == {"a", "b"}
        server.batch_knobs.completion_delay_s = 100
        running = await client.batches.create(input_file_id=f.id, endpoint="/v1/responses", completion_window="24h")
        assert (await client.batches.cancel(running.id)).status == "cancelling"
        assert (await client.files.delete(f.id)).deleted
    finally:
        await client.close()
