"""A client nobody here wrote (the official `openai` package) parses every reply of the server."""

from __future__ import annotations

import io
import json

import pytest

from refinery.analysis.staged_schemas import GAP_ANALYSIS_SCHEMA
from refinery.traces.render import render_trace_files
from tests.fixtures_traces import make_trace

openai = pytest.importorskip("openai", reason="the conformance test needs the openai package (test extra)")


async def test_sdk_runs_files_vector_stores_and_responses(openai_server):
    client = openai.AsyncOpenAI(api_key="sk-sdk", base_url=openai_server.base_url, max_retries=0)
    try:
        file_ids = []
        for name, text in render_trace_files(make_trace()):
            f = await client.files.create(file=(name, io.BytesIO(text.encode())), purpose="assistants")
            assert f.filename == name and f.purpose == "assistants" and f.bytes == len(text.encode())
            file_ids.append(f.id)
        store = await client.vector_stores.create(name="sdk", expires_after={"anchor": "last_active_at", "days": 1})
        assert store.expires_after.days == 1
        batch = await client.vector_stores.file_batches.create_and_poll(
            vector_store_id=store.id, file_ids=file_ids, poll_interval_ms=10
        )
        assert batch.status == "completed" and batch.file_counts.completed == len(file_ids)
        listed = await client.vector_stores.files.list(vector_store_id=store.id)
        assert {f.id for f in listed.data} == set(file_ids) and all(f.status == "completed" for f in listed.data)
        fetched = await client.vector_stores.retrieve(store.id)
        assert fetched.file_counts.total == len(file_ids)

        resp = await client.responses.create(
            model="gpt-4o",
            input=[
                {
                    "role": "user",
                    "content": [{"type": "input_text", "text": "compare run output error with expectations"}],
                }
            ],
            tools=[{"type": "file_search", "vector_store_ids": [store.id], "max_num_results": 4}],
            include=["file_search_call.results"],
            text={
                "format": {
                    "type": "json_schema",
                    "name": "stage2_output",
                    "schema": GAP_ANALYSIS_SCHEMA,
                    "strict": True,
                }
            },
            max_output_tokens=3000,
        )
        assert resp.status == "completed"
        assert resp.output[0].type == "file_search_call" and resp.output[0].results
        assert resp.output[-1].type == "message"
        annotation = resp.output[-1].content[0].annotations[0]
        assert annotation.type == "file_citation" and annotation.filename.endswith(".md")
        data = json.loads(resp.output_text)  # the SDK's convenience, computed from `output`
        assert set(data) == set(GAP_ANALYSIS_SCHEMA["required"])
        assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0

        deleted = await client.vector_stores.delete(store.id)
        assert deleted.deleted
        assert (await client.files.delete(file_ids[0])).deleted
    finally:
        await client.close()


async def test_sdk_surfaces_the_servers_400_as_its_own_error(openai_server):
    client = openai.AsyncOpenAI(api_key="sk-sdk", base_url=openai_server.base_url, max_retries=0)
    try:
        with pytest.raises(openai.BadRequestError) as exc:
            await client.responses.create(
                model="gpt-4o",
                input="hi",
                text={"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": True}},
            )
        assert "Invalid schema" in str(exc.value)
    finally:
        await client.close()
