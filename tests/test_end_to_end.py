"""`refinery run` over real sockets against refinery.testing's server, one trace per format."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from refinery.analysis.staged_failure_analyst import STAGE_ARTIFACTS, StagedFailureAnalyst
from refinery.analysis.staged_schemas import STAGE_SCHEMAS
from refinery.app.cli import amain
from refinery.traces import load_trace
from refinery.wire.responses_client import ResponsesClient
from tests.fixtures_traces import EXPECTATION

FIX = Path(__file__).parent / "fixtures"
FORMATS = [
    "langsmith_runs.json",
    "langsmith_runs.jsonl",
    "langsmith_ingest.json",
    "otlp_trace.json",
    "otel_span_list.json",
    "otel_nested.json",
    "otel_attribute_map.json",
    "langfuse_export.json",
    "plain_chat.json",
    "clickhouse_snake_nested.json",
    "clickhouse_camel_rows.json",
    "step_log_wrapped.json",
]


@pytest.mark.parametrize("name", FORMATS)
async def test_run_on_each_format(openai_env, tmp_path, name, spec):
    out = tmp_path / "out"
    rc = await amain(
        ["run", str(FIX / name), "--expect", str(FIX / "expectation.json"), "--out", str(out), "--store", "hosted"]
    )
    assert rc == 0
    for stage, artifact in STAGE_ARTIFACTS.items():
        data = json.loads((out / artifact).read_text())
        jsonschema.validate(data["output"], STAGE_SCHEMAS[stage])
    assert (out / "report.md").read_text().startswith("# Why the run failed")
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert len(openai_env.response_bodies) == 4
    assert all(spec.validate(b) == [] for b in openai_env.response_bodies)
    assert openai_env.stores == {}  # deleted after the run
    trace = load_trace(FIX / name)
    stage1 = json.loads((out / "stage1_trace_analysis.json").read_text())["output"]
    assert {e["run_id"] for e in stage1["timeline"]} <= {r.id for r in trace.runs} | {"unknown-run"}


async def test_big_trace_is_analysed_by_group_with_server_side_filters(openai_server, tmp_path):
    messages = [
        {"role": "assistant" if i % 2 else "user", "name": f"agent{i % 3}", "content": f"step {i} about refunds"}
        for i in range(100)
    ]
    trace = load_trace({"messages": messages, "trace_id": "big"})
    client = ResponsesClient(api_key="sk-x", base_url=openai_server.base_url)
    async with client:
        analyst = StagedFailureAnalyst(store="hosted", client=client, artifacts_dir=tmp_path, files_per_group=8)
        result = await analyst.analyze(trace, EXPECTATION, until_stage=1)
    stage1_bodies = openai_server.response_bodies
    assert len(stage1_bodies) == 3  # 100 runs, 6 a file = 17 files, 8 files a group
    # one request a group; groups are sent concurrently, so they may leave in any order
    assert sorted(b["tools"][0]["filters"]["value"] for b in stage1_bodies) == [1, 2, 3]
    ids = [e.run_id for e in result.trace_analysis.timeline]
    steps = [int(i.removeprefix("step-")) for i in ids]  # a step log's run ids keep its 0-based numbering
    assert steps == sorted(steps) and ids[0] == "step-0"
    assert len(ids) == len(set(ids))
