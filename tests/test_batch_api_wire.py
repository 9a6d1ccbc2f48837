"""`BatchAPI` against the local server (upload → create → poll → download → outcomes; cancel; find;
delete; a create that may have made its batch; a download cut short) and, through aioresponses,
the bodies it sends (judged by the spec) and the URLs and shapes of Azure OpenAI's v1 API."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from refinery.errors import BatchError, NotFoundError, ServerError
from refinery.testing.faults import Fault
from refinery.testing.openapi_spec import OpenAPISpec
from refinery.testing.server import OpenAITestServer
from refinery.wire import batch_api as batch_api_module
from refinery.wire.batch_api import AZURE_MIN_FILE_EXPIRY_S, Batch, BatchAPI
from refinery.wire.batch_jsonl import read_outcomes, request_line
from refinery.wire.transport import ApiSettings, OpenAITransport, RetryPolicy
from tests.helpers import FakeClock, sent

BODY = {"model": "gpt-4.1-mini", "input": "Answer PONG"}


def write_input(path: Path, *custom_ids: str, url: str = "/v1/responses") -> Path:
    path.write_text("".join(request_line(c, url, BODY) + "\n" for c in custom_ids))
    return path


@pytest_asyncio.fixture
async def server(clock: FakeClock, spec: OpenAPISpec) -> AsyncIterator[OpenAITestServer]:
    s = OpenAITestServer(clock=clock, validate_requests=False)
    s.spec = spec  # the session's loaded spec: one load for the file, not one a server
    async with s:
        yield s


def transport_to(server: OpenAITestServer, clock: FakeClock, **kw: Any) -> OpenAITransport:
    return OpenAITransport(
        ApiSettings(api_key="sk-local", base_url=server.base_url), sleep=clock.sleep, clock=clock, rng=lambda: 0.5, **kw
    )


@pytest_asyncio.fixture
async def api(server: OpenAITestServer, clock: FakeClock) -> AsyncIterator[BatchAPI]:
    async with transport_to(server, clock) as t:
        yield BatchAPI(t)


async def poll(api: BatchAPI, batch_id: str, clock: FakeClock, step_s: float = 30) -> Batch:
    for _ in range(100):
        batch = await api.retrieve(batch_id)
        if batch.done:
            return batch
        await api.transport.sleep(step_s)  # the fake clock moves: the server's batch goes on
    raise AssertionError("the batch never finished")


async def test_a_batch_goes_from_upload_to_outcomes(api, server, clock, tmp_path):
    server.batch_knobs.completion_delay_s = 120
    server.batch_knobs.fail_lines("t2", 500)
    input_path = write_input(tmp_path / "in.jsonl", "t1", "t2", "t3")
    file_id = await api.upload_input(input_path)
    assert server.files[file_id].purpose == "batch" and server.files[file_id].data == input_path.read_bytes()

    made = await api.create(file_id, endpoint=api.endpoint_path("responses"), metadata={"refinery_run": "r1"})
    assert (made.status, made.input_file_id, made.metadata) == ("validating", file_id, {"refinery_run": "r1"})
    assert not made.done

    batch = await poll(api, made.id, clock)
    assert batch.status == "completed" and batch.completed_at is not None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (3, 2, 1)

    assert batch.output_file_id is not None and batch.error_file_id is not None
    out = await api.download(batch.output_file_id, tmp_path / "results" / "out.jsonl")
    err = await api.download(batch.error_file_id, tmp_path / "results" / "err.jsonl")
    outcomes = {**read_outcomes(out.read_text().splitlines()), **read_outcomes(err.read_text().splitlines())}
    assert {c: (o.status_code, o.ok) for c, o in outcomes.items()} == {
        "t1": (200, True),
        "t2": (500, False),
        "t3": (200, True),
    }
    assert outcomes["t1"].body is not None and outcomes["t1"].body["object"] == "response"
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["err.jsonl", "out.jsonl"]  # no temporaries


async def test_every_file_of_a_batch_can_be_deleted_and_a_second_delete_is_fine(api, server, tmp_path):
    file_id = await api.upload_input(write_input(tmp_path / "in.jsonl", "a"))
    batch = await poll(api, (await api.create(file_id, endpoint="/v1/responses")).id, FakeClock())
    for fid in (file_id, batch.output_file_id):
        assert fid is not None
        await api.delete_file(fid)
        await api.delete_file(fid)  # 404: already gone, what was wanted
    assert server.files == {}


async def test_cancel_leaves_the_answered_lines_in_the_output(api, server, clock, tmp_path):
    server.batch_knobs.completion_delay_s = 100
    made = await api.create(
        await api.upload_input(write_input(tmp_path / "in.jsonl", "a", "b", "c", "d")), endpoint="/v1/responses"
    )
    await api.retrieve(made.id)
    clock.now += 50
    cancelling = await api.cancel(made.id)
    assert cancelling.status == "cancelling" and not cancelling.done
    batch = await api.retrieve(made.id)
    assert batch.status == "cancelled" and batch.done and batch.request_counts.completed == 2


async def test_a_failed_validation_is_read_with_its_lines(api, server, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(request_line("a", "/v1/responses", BODY) + "\n" + request_line("a", "/v1/responses", BODY) + "\n")
    batch = await api.retrieve((await api.create(await api.upload_input(path), endpoint="/v1/responses")).id)
    assert batch.status == "failed" and batch.done
    assert [(e.code, e.line) for e in batch.errors.data] == [("duplicate_custom_id", 2)]  # type: ignore[union-attr]
    assert batch.error_summary().startswith("line 2: duplicate_custom_id: The custom_id")


async def test_find_returns_the_newest_batch_with_the_metadata(api, server, clock, tmp_path):
    ids = []
    for run in ("r1", "r2", "r1"):
        fid = await api.upload_input(write_input(tmp_path / "in.jsonl", "a"))
        ids.append((await api.create(fid, endpoint="/v1/responses", metadata={"run": run, "stage": "1"})).id)
        clock.now += 1
    found = await api.find(metadata={"run": "r1", "stage": "1"})
    assert found is not None and found.id == ids[2]
    assert await api.find(metadata={"run": "r3"}) is None


async def test_find_by_input_file_pages_through_the_list(api, server, clock, tmp_path, monkeypatch):
    monkeypatch.setattr(batch_api_module, "LIST_PAGE", 2)
    file_ids = []
    for _ in range(5):
        file_ids.append(await api.upload_input(write_input(tmp_path / "in.jsonl", "a")))
        await api.create(file_ids[-1], endpoint="/v1/responses")
    found = await api.find(input_file_id=file_ids[0])  # the oldest: on the third page
    assert found is not None and found.input_file_id == file_ids[0]
    assert server.stats["GET /v1/batches"] == 3


async def test_find_stops_at_the_first_batch_older_than_created_after(api, server, tmp_path, monkeypatch):
    monkeypatch.setattr(batch_api_module, "LIST_PAGE", 1)
    fid = await api.upload_input(write_input(tmp_path / "in.jsonl", "a"))
    old = await api.create(fid, endpoint="/v1/responses")
    await api.create(await api.upload_input(write_input(tmp_path / "in.jsonl", "a")), endpoint="/v1/responses")
    assert old.created_at is not None
    assert await api.find(input_file_id=fid, created_after=old.created_at + 3600) is None
    assert server.stats["GET /v1/batches"] == 1  # the newest is older already: no further page asked
    assert (await api.find(input_file_id=fid, created_after=old.created_at)) is not None


async def test_find_needs_something_to_find_by(api):
    with pytest.raises(BatchError, match="neither was given"):
        await api.find()


async def test_a_create_refused_with_a_5xx_is_looked_for_then_made_once(api, server, clock, tmp_path):
    fid = await api.upload_input(write_input(tmp_path / "in.jsonl", "a"))
    server.inject(Fault("http_error", path="POST /v1/batches", status=503))
    batch = await api.create(fid, endpoint="/v1/responses")
    assert [b.id for b in server.batches.values()] == [batch.id]
    assert server.stats["POST /v1/batches"] == 2 and server.stats["GET /v1/batches"] == 1
    assert clock.sleeps  # it waited before trying again


async def test_a_create_whose_answer_never_came_finds_the_batch_instead_of_making_another(api, server, clock, tmp_path):
    fid = await api.upload_input(write_input(tmp_path / "in.jsonl", "a"))
    server.inject(Fault("answer_late", path="POST /v1/batches", delay_s=2.0))  # made, then answered too late
    async with transport_to(server, clock, timeout=aiohttp.ClientTimeout(total=1.0)) as t:
        batch = await BatchAPI(t).create(fid, endpoint="/v1/responses")
    assert list(server.batches) == [batch.id] and server.stats["POST /v1/batches"] == 1


async def test_an_upload_retried_after_a_timeout_leaves_one_copy_on_the_server(server, clock, tmp_path):
    server.inject(Fault("answer_late", path="/v1/files", delay_s=2.0))  # made, then answered too late
    async with transport_to(server, clock, timeout=aiohttp.ClientTimeout(total=1.0)) as t:
        fid = await BatchAPI(t).upload_input(write_input(tmp_path / "in.jsonl", "a"), filename="run-r1-p1.jsonl")
    assert server.stats["POST /v1/files"] == 2  # the first attempt's file was made, its id never heard
    assert list(server.files) == [fid] and server.files[fid].filename == "run-r1-p1.jsonl"


async def test_find_uploads_lists_the_batch_files_of_that_name_made_since(api, server, clock, tmp_path):
    path = write_input(tmp_path / "in.jsonl", "a")
    old = await api.upload_input(path, filename="run-r1-p1.jsonl")
    server.files[old].created_at -= 3600
    new = await api.upload_input(path, filename="run-r1-p1.jsonl")
    await api.upload_input(path, filename="run-r2-p1.jsonl")
    since = server.files[new].created_at - 60
    found = await api.find_uploads("run-r1-p1.jsonl", created_after=since)
    assert [f["id"] for f in found] == [new] and found[0]["bytes"] == path.stat().st_size


async def test_a_create_that_keeps_failing_gives_up_with_the_error(api, server, tmp_path):
    fid = await api.upload_input(write_input(tmp_path / "in.jsonl", "a"))
    server.inject(Fault("http_error", path="POST /v1/batches", status=500, times=10))
    with pytest.raises(ServerError):
        await api.create(fid, endpoint="/v1/responses")
    assert server.batches == {} and server.stats["POST /v1/batches"] == batch_api_module.CREATE_ATTEMPTS


async def test_a_download_cut_short_is_fetched_again_whole(api, server, clock, tmp_path):
    batch = await poll(
        api,
        (
            await api.create(
                await api.upload_input(write_input(tmp_path / "in.jsonl", "a", "b")), endpoint="/v1/responses"
            )
        ).id,
        clock,
    )
    assert batch.output_file_id is not None
    server.inject(Fault("drop_connection", path=f"GET /v1/files/{batch.output_file_id}/content"))
    dest = await api.download(batch.output_file_id, tmp_path / "out.jsonl")
    assert dest.read_bytes() == server.files[batch.output_file_id].data
    assert server.stats["fault drop_connection"] == 1 and server.stats["GET /v1/files/{file_id}/content"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]


async def test_a_download_that_fails_leaves_nothing_behind(api, tmp_path):
    with pytest.raises(NotFoundError):
        await api.download("file-missing", tmp_path / "out.jsonl")
    assert list(tmp_path.iterdir()) == []


async def test_metadata_beyond_the_api_rules_is_refused_before_sending(api):
    with pytest.raises(BatchError, match="at most 16"):
        await api.create("file-x", endpoint="/v1/responses", metadata={str(i): "v" for i in range(17)})
    with pytest.raises(BatchError, match="values ≤ 512"):
        await api.create("file-x", endpoint="/v1/responses", metadata={"k": "v" * 513})


def test_endpoint_path_is_the_v1_path_of_either_api():
    api = BatchAPI(OpenAITransport(ApiSettings(api_key="k")))
    assert (api.endpoint_path("responses"), api.endpoint_path("chat")) == ("/v1/responses", "/v1/chat/completions")
    with pytest.raises(BatchError, match="api must be one of"):
        api.endpoint_path("embeddings")  # type: ignore[arg-type]


# --- what is sent, judged by the spec; Azure's URLs and shapes ---------------------------------------
BATCH = {
    "id": "batch_1",
    "object": "batch",
    "endpoint": "/v1/responses",
    "input_file_id": "file-1",
    "completion_window": "24h",
    "status": "validating",
    "created_at": 1_700_000_000,
    "request_counts": {"total": 0, "completed": 0, "failed": 0},
}


async def test_the_create_body_is_a_valid_create_batch_request(mocked, make_transport, spec):
    mocked.post("https://api.test/v1/batches", payload=BATCH)
    async with make_transport() as t:
        await BatchAPI(t).create("file-1", endpoint="/v1/responses", metadata={"refinery_run": "r1"})
    body = sent(mocked, "POST")[0].kwargs["json"]
    assert body == {
        "input_file_id": "file-1",
        "endpoint": "/v1/responses",
        "completion_window": "24h",
        "metadata": {"refinery_run": "r1"},
    }
    assert spec.validate(body, "CreateBatchRequest") == [] and set(body) <= spec.declared("CreateBatchRequest")


async def test_the_upload_is_multipart_with_purpose_batch(mocked, make_transport, tmp_path):
    mocked.post("https://api.test/v1/files", payload={"id": "file-9", "object": "file", "purpose": "batch"})
    async with make_transport() as t:
        assert await BatchAPI(t).upload_input(write_input(tmp_path / "in.jsonl", "a")) == "file-9"
    fields = {f[0]["name"]: f for f in sent(mocked, "POST")[0].kwargs["data"]._fields}
    assert fields["purpose"][2] == "batch"
    assert fields["file"][0]["filename"] == "in.jsonl" and fields["file"][1]["Content-Type"] == "application/jsonl"


AZURE = "https://res.openai.azure.com/openai/v1"


@pytest.fixture
def azure_transport(clock: FakeClock):
    env = {"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com", "AZURE_OPENAI_API_KEY": "az-key"}
    return OpenAITransport(ApiSettings.from_env(env=env), sleep=clock.sleep, clock=clock, retry=RetryPolicy())


async def test_azure_batches_go_to_openai_v1_with_the_api_key_and_read_its_shapes(mocked, azure_transport, tmp_path):
    azure_batch = {  # as Azure's docs show it: ISO times, a capitalised status, null counts
        **BATCH,
        "id": "batch_fe3f",
        "status": "Validating",
        "created_at": "2024-07-19T17:13:57.2491382+00:00",
        "expires_at": "2024-07-20T17:13:57.1918498+00:00",
        "request_counts": {"total": None, "completed": None, "failed": None},
    }
    mocked.post(f"{AZURE}/files", payload={"id": "file-az", "object": "file", "purpose": "batch"})
    mocked.post(f"{AZURE}/batches", payload=azure_batch)
    mocked.get(f"{AZURE}/batches/batch_fe3f", payload={**azure_batch, "status": "Completed", "output_file_id": "f-o"})
    mocked.post(f"{AZURE}/batches/batch_fe3f/cancel", payload={**azure_batch, "status": "Cancelling"})
    mocked.get(re.compile(rf"^{re.escape(AZURE)}/batches\?"), payload={"object": "list", "data": [azure_batch]})
    mocked.get(f"{AZURE}/files/f-o/content", body=b'{"custom_id": "a", "response": {"status_code": 200, "body": {}}}\n')
    mocked.delete(f"{AZURE}/files/f-o", payload={"id": "f-o", "deleted": True})
    async with azure_transport as t:
        api = BatchAPI(t)
        file_id = await api.upload_input(write_input(tmp_path / "in.jsonl", "a"), expires_after_s=3600)
        made = await api.create(file_id, endpoint=api.endpoint_path("chat"))
        assert (made.status, made.created_at, made.request_counts.total) == ("validating", 1721409237, 0)
        assert made.expires_at == 1721495637
        assert (await api.retrieve(made.id)).done
        assert (await api.cancel(made.id)).status == "cancelling"
        found = await api.find(input_file_id="file-1")
        assert found is not None and found.id == "batch_fe3f"
        await api.download("f-o", tmp_path / "out.jsonl")
        await api.delete_file("f-o")
    assert read_outcomes((tmp_path / "out.jsonl").read_text().splitlines())["a"].ok
    calls = [(m, str(u)) for (m, u), cs in mocked.requests.items() for _ in cs]
    assert all(u.startswith(f"{AZURE}/") for _, u in calls) and len(calls) == 7
    for (_, _), cs in mocked.requests.items():
        assert all(c.kwargs["headers"] == {"api-key": "az-key"} for c in cs)
    create = sent(mocked, "POST", f"{AZURE}/batches")[0].kwargs["json"]
    assert create["endpoint"] == "/v1/chat/completions"  # as each line's url: /v1/… on Azure's v1 API too
    upload = {f[0]["name"]: f[2] for f in sent(mocked, "POST", f"{AZURE}/files")[0].kwargs["data"]._fields}
    assert upload["expires_after[seconds]"] == str(AZURE_MIN_FILE_EXPIRY_S)  # Azure's floor: 14 days


def test_a_batch_with_unknown_fields_keeps_them():
    batch = Batch.model_validate({**BATCH, "usage": {"input_tokens": 5}, "model": "gpt-4.1-mini"})
    assert batch.model_extra is not None
    assert (batch.model_extra["usage"], batch.model_extra["model"]) == ({"input_tokens": 5}, "gpt-4.1-mini")
    assert json.loads(batch.model_dump_json())["usage"] == {"input_tokens": 5}
