"""refinery.testing's local server speaks the API's shapes over real sockets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import aiohttp
import jsonschema
import pytest

from refinery.analysis.staged_schemas import TRACE_ANALYSIS_SCHEMA
from refinery.errors import (
    BadRequestError,
    FileIndexingError,
    IndexingTimeoutError,
    RateLimitError,
)
from refinery.testing.retrieval import chunk_text, chunking_window, count_tokens, token_starts
from refinery.testing.server import OpenAITestServer
from refinery.traces.render import RenderOptions, render_trace_files
from refinery.wire.response_output import (
    citations,
    file_search_results,
    output_text,
    parse_json_output,
)
from refinery.wire.responses_client import ResponsesClient
from refinery.wire.responses_request_builder import (
    build_responses_body,
    build_responses_body_no_tools,
)
from refinery.wire.transport import ApiSettings, OpenAITransport, RetryPolicy
from refinery.wire.vector_store_manager import VectorStoreManager
from tests.fixtures_traces import make_trace


def transport(server, **retry):
    return OpenAITransport(ApiSettings(api_key="sk-local", base_url=server.base_url), retry=RetryPolicy(**retry))


async def upload_trace(server, tmp_path, trace=None, attributes=None, **poll):
    files = render_trace_files(trace or make_trace(n_runs=12), options=RenderOptions(runs_per_file=4))
    paths = []
    for name, text in files:
        (tmp_path / name).write_text(text)
        paths.append(tmp_path / name)
    t = transport(server)
    async with t:
        vsm = VectorStoreManager(t)
        store = await vsm.create_store("test", expires_after_days=1)
        await vsm.upload_files(store, paths, attributes=attributes)
        await vsm.poll_ready(store, timeout_s=poll.get("timeout_s", 10), poll_s=poll.get("poll_s", 0.05))
    return store, files


async def test_indexing_goes_in_progress_then_completed(tmp_path):
    async with OpenAITestServer(indexing_delay_s=1.0) as server:  # longer than any upload here
        seen = []
        files = render_trace_files(make_trace())
        paths = []
        for name, text in files:
            (tmp_path / name).write_text(text)
            paths.append(tmp_path / name)
        async with transport(server) as t:
            vsm = VectorStoreManager(t)
            store = await vsm.create_store("s")
            await vsm.upload_files(store, paths)
            counts = await vsm.poll_ready(
                store, timeout_s=5, poll_s=0.05, on_progress=lambda c: seen.append(c["in_progress"])
            )
        assert seen[0] == len(paths) and seen[-1] == 0
        assert counts["completed"] == len(paths)
        assert server.stores[store].expires_after == {"anchor": "last_active_at", "days": 1}


async def test_a_file_that_fails_indexing_is_named(tmp_path):
    async with OpenAITestServer(fail_indexing=["_index.md"]) as server:
        with pytest.raises(FileIndexingError, match="t1_index.md: invalid_file"):
            await upload_trace(server, tmp_path)


async def test_poll_times_out_while_indexing(tmp_path):
    async with OpenAITestServer(indexing_delay_s=30) as server:
        with pytest.raises(IndexingTimeoutError, match="still in progress"):
            await upload_trace(server, tmp_path, timeout_s=0.2, poll_s=0.05)


async def test_responses_runs_file_search_with_filters_and_citations(tmp_path, spec):
    async with OpenAITestServer() as server:
        trace = make_trace(n_runs=12)
        attrs = {f"t1_runs_{a:03d}-{a + 3:03d}.md": {"group": g} for g, a in enumerate((1, 5, 9), start=1)}
        store, _ = await upload_trace(server, tmp_path, trace, attributes=attrs)
        body = build_responses_body(
            "gpt-4o",
            store,
            "sys",
            "find run input output error",
            TRACE_ANALYSIS_SCHEMA,
            filters={"type": "eq", "key": "group", "value": 2},
            max_output_tokens=4000,
        )
        async with ResponsesClient(transport=transport(server)) as client:
            resp = await client.create(body)
        assert spec.validate(resp, "Response") == []
        assert resp["output"][0]["type"] == "file_search_call"
        results = file_search_results(resp)
        assert results and {r["filename"] for r in results} == {"t1_runs_005-008.md"}
        data = parse_json_output(resp)
        jsonschema.validate(data, TRACE_ANALYSIS_SCHEMA)
        assert [e["run_id"] for e in data["timeline"]] == ["run-5", "run-6", "run-7", "run-8"]
        assert {c["filename"] for c in citations(resp)} == {"t1_runs_005-008.md"}
        usage = resp["usage"]
        assert usage["input_tokens"] > 0 and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


async def test_a_chat_completions_shaped_body_gets_the_apis_400(spec):
    async with OpenAITestServer() as server:
        body = build_responses_body_no_tools("gpt-4o", "s", "u", TRACE_ANALYSIS_SCHEMA)
        body["response_format"] = {"type": "json_schema"}
        async with ResponsesClient(transport=transport(server)) as client:
            with pytest.raises(BadRequestError) as exc:
                await client.create(body)
        assert exc.value.code == "unknown_parameter" and "response_format" in exc.value.message


async def test_a_non_strict_schema_gets_the_apis_400():
    async with OpenAITestServer() as server:
        body = build_responses_body_no_tools("gpt-4o", "s", "u", TRACE_ANALYSIS_SCHEMA)
        body["text"]["format"]["schema"] = {
            "type": "object",
            "properties": {"a": {"type": "array"}},
            "required": ["a"],
            "additionalProperties": False,
        }
        async with ResponsesClient(transport=transport(server)) as client:
            with pytest.raises(BadRequestError, match="Invalid schema"):
                await client.create(body)


async def test_small_budget_gives_an_incomplete_response():
    async with OpenAITestServer() as server:
        body = build_responses_body_no_tools("gpt-4o", "s", "u", TRACE_ANALYSIS_SCHEMA, max_output_tokens=16)
        async with ResponsesClient(transport=transport(server)) as client:
            resp = await client.create(body)
        assert resp["status"] == "incomplete" and resp["incomplete_details"] == {"reason": "max_output_tokens"}
        assert resp["usage"]["output_tokens"] <= 16


async def test_tpm_limit_answers_429_with_real_headers_then_recovers():
    # A request is admitted when the bucket holds its worst case (input estimate plus
    # max_output_tokens) and charged what it used. Here the worst case is just under the whole
    # per-minute budget, so the second request must wait about a second of refill.
    input_estimate = count_tokens("su" + json.dumps(TRACE_ANALYSIS_SCHEMA))  # the server counts its own way
    async with OpenAITestServer(tpm=30000) as server:
        body = build_responses_body_no_tools(
            "gpt-4o", "s", "u", TRACE_ANALYSIS_SCHEMA, max_output_tokens=29900 - input_estimate
        )
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-x"}) as s:
            async with s.post(f"{server.base_url}/responses", json=body) as r1:
                assert r1.status == 200
                used = (await r1.json())["usage"]["total_tokens"]
                assert r1.headers["x-ratelimit-limit-tokens"] == "30000"
                # worst case taken on admission, the unused part given back on completion
                assert 30000 - used <= int(r1.headers["x-ratelimit-remaining-tokens"]) <= 30000
            async with s.post(f"{server.base_url}/responses", json=body) as r2:
                assert r2.status == 429
                err = (await r2.json())["error"]
                assert err["code"] == "rate_limit_exceeded" and "tokens per min (TPM): Limit 30000" in err["message"]
                assert 0 < float(r2.headers["retry-after-ms"]) <= 3000 and r2.headers["x-ratelimit-reset-tokens"]
        async with ResponsesClient(transport=transport(server, max_rate_limit_retries=0)) as client:
            with pytest.raises(RateLimitError) as exc:
                await client.create(body)
        assert exc.value.headers["x-ratelimit-limit-tokens"] == "30000"
        async with ResponsesClient(transport=transport(server)) as client:  # retries wait what the server says
            assert (await client.create(body))["status"] == "completed"
        assert server.stats["429 rate_limit_exceeded"] >= 2


async def test_server_cli_prints_its_base_url_first_and_serves():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "refinery.testing.server", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert line.startswith("http://127.0.0.1:") and line.endswith("/v1")
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-x"}) as s:
            async with s.post(f"{line}/vector_stores", json={"name": "x"}) as r:
                assert r.status == 200 and (await r.json())["object"] == "vector_store"
            async with s.post(line.replace("/v1", "/_refinery/faults"), json={"kind": "quota"}) as r:
                assert (await r.json()) == {"armed": 1}
            async with s.post(
                f"{line}/responses", json=build_responses_body_no_tools("gpt-4o", "s", "u", TRACE_ANALYSIS_SCHEMA)
            ) as r:
                assert r.status == 429 and (await r.json())["error"]["code"] == "insufficient_quota"
    finally:
        proc.terminate()
        await proc.wait()


async def test_canary_against_the_server_answers_pong(openai_server):
    async with ResponsesClient(transport=transport(openai_server)) as client:
        result = await client.canary("gpt-4o-mini")
    assert result.ok and result.reply == "PONG"


async def test_missing_api_key_is_401():
    async with OpenAITestServer() as server:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{server.base_url}/vector_stores/vs_x") as r:
                assert r.status == 401


async def test_text_output_for_a_plain_request():
    async with OpenAITestServer() as server:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-x"}) as s:
            async with s.post(f"{server.base_url}/responses", json={"model": "gpt-4o", "input": "Reply PONG"}) as r:
                resp = await r.json()
        assert output_text(resp) == "PONG"


def test_chunks_are_800_token_windows_overlapping_by_400():
    text = " ".join(f"w{i}" for i in range(5000))  # about 10 k approximate tokens
    starts = token_starts(text)
    chunks = chunk_text(text)
    assert all(len(token_starts(c)) <= 800 for c in chunks)
    assert text.startswith(chunks[0]) and text.endswith(chunks[-1])
    # each window starts 400 tokens after the previous one
    assert [text.index(c) for c in chunks[:3]] == [starts[0], starts[400], starts[800]]
    assert len(chunks) == -(-(len(starts) - 800) // 400) + 1


def test_a_static_chunking_strategy_sets_the_window():
    text = " ".join(f"w{i}" for i in range(3000))
    assert len(chunk_text(text, 200, 100)) > 3 * len(chunk_text(text, 800, 400))
    assert chunking_window({"type": "static", "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 0}}) == (
        300,
        0,
    )
    assert chunking_window({"type": "auto"}) == chunking_window(None) == (800, 400)


async def test_the_server_honours_chunking_strategy_and_answers_vector_store_search(tmp_path):
    big = tmp_path / "big.md"
    big.write_text("\n".join(f"row {i} mentions the refund ledger" for i in range(1200)))
    async with OpenAITestServer() as server:
        t = transport(server)
        async with t:
            vsm = VectorStoreManager(
                t,
                chunking_strategy={
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 100},
                },
            )
            store = await vsm.create_store("s", expires_after_days=1)
            await vsm.upload_files(store, [big])
            await vsm.poll_ready(store, timeout_s=10, poll_s=0.05)
            listed = await t.request("GET", f"/vector_stores/{store}/files")
            found = await t.request(
                "POST", f"/vector_stores/{store}/search", json={"query": "row 1100 refund", "max_num_results": 3}
            )
    assert listed.data["data"][0]["chunking_strategy"]["static"] == {
        "max_chunk_size_tokens": 200,
        "chunk_overlap_tokens": 100,
    }
    assert len(found.data["data"]) == 3 and found.data["object"] == "vector_store.search_results.page"
    assert "row 1100 " in found.data["data"][0]["content"][0]["text"]
    assert all(len(token_starts(r["content"][0]["text"])) <= 200 for r in found.data["data"])


async def test_a_file_batch_over_2000_files_gets_the_apis_400():
    async with OpenAITestServer() as server:
        t = transport(server, max_retries=0)
        async with t:
            store = await VectorStoreManager(t).create_store("s", expires_after_days=1)
            with pytest.raises(BadRequestError, match="a file batch holds 1 to 2000 files, got 2001"):
                await t.request(
                    "POST",
                    f"/vector_stores/{store}/file_batches",
                    json={"file_ids": [f"file-{i}" for i in range(2001)]},
                )


async def test_a_chunking_strategy_out_of_bounds_gets_the_apis_400():
    async with OpenAITestServer() as server:
        t = transport(server, max_retries=0)
        async with t:
            with pytest.raises(BadRequestError, match="chunk_overlap_tokens must be"):
                await t.request(
                    "POST",
                    "/vector_stores",
                    json={
                        "name": "s",
                        "chunking_strategy": {
                            "type": "static",
                            "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 401},
                        },
                    },
                )


async def test_the_server_lists_files_and_stores_as_the_api_does():
    import aiohttp

    async with OpenAITestServer() as server, aiohttp.ClientSession(headers={"Authorization": "Bearer sk-x"}) as http:
        form = aiohttp.FormData()
        form.add_field("purpose", "assistants")
        form.add_field("file", b"hello", filename="a.md")
        async with http.post(f"{server.base_url}/files", data=form) as r:
            file_id = (await r.json())["id"]
        async with http.post(f"{server.base_url}/vector_stores", json={"name": "s"}) as r:
            store_id = (await r.json())["id"]
        async with http.get(f"{server.base_url}/files") as r:
            files = await r.json()
        async with http.get(f"{server.base_url}/vector_stores") as r:
            stores = await r.json()
    assert [f["id"] for f in files["data"]] == [file_id] and files["object"] == "list"
    assert [s["id"] for s in stores["data"]] == [store_id] and stores["first_id"] == store_id
