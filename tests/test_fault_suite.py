"""Every fault the server can inject: the run completes, or stops with the right typed error and
exit code, leaving the artifacts written before the fault intact and nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.app.cli import amain
from refinery.errors import (
    APITimeoutError,
    OutputFormatError,
    QuotaExceededError,
    RefusalError,
    ServerError,
)
from refinery.testing.faults import Fault
from refinery.wire.responses_client import ResponsesClient
from tests.fixtures_traces import EXPECTATION, make_trace

FIX = Path(__file__).parent / "fixtures"
ARGS = [str(FIX / "otlp_trace.json"), "--expect", str(FIX / "expectation.json")]
STAGES = ["stage1_trace_analysis.json", "stage2_gap_analysis.json", "stage3_diagnosis.json", "stage4_synthesis.json"]


def written(out: Path) -> list[str]:
    return [s for s in STAGES if (out / s).exists()]


def assert_clean(out: Path) -> None:
    assert not list(out.glob(".*.tmp")), "a half-written artifact was left behind"
    for s in written(out):
        json.loads((out / s).read_text())  # every artifact that exists is whole JSON


async def run(out: Path, *extra: str) -> int:
    return await amain(["run", *ARGS, "--out", str(out), "--store", "hosted", *extra])


@pytest.mark.parametrize(
    "fault",
    [
        Fault("rate_limit", match="stage2_output", retry_after_ms=20),
        Fault("http_error", status=500, match="stage1_output"),
        Fault("http_error", status=502, match="stage3_output"),
        Fault("http_error", status=503, match="stage4_output"),
        Fault("drop_connection", match="stage2_output"),
        Fault("incomplete", match="stage3_output"),
        Fault("not_json", match="stage1_output"),
        Fault("schema_violation", match="stage4_output"),
    ],
    ids=lambda f: f"{f.kind}-{f.status if f.kind == 'http_error' else f.match}",
)
async def test_recoverable_faults_complete(openai_env, tmp_path, fault):
    openai_env.inject(fault)
    assert await run(tmp_path) == 0
    assert fault.times == 0, "the fault never fired"
    assert written(tmp_path) == STAGES
    assert_clean(tmp_path)


async def test_response_delayed_past_the_timeout_is_retried(openai_env, tmp_path):
    fault = openai_env.inject(Fault("delay", delay_s=4.0, match="stage2_output"))
    assert await run(tmp_path, "--timeout", "2") == 0
    assert fault.times == 0 and written(tmp_path) == STAGES


@pytest.mark.parametrize(
    ("fault", "code", "message", "kept"),
    [
        (Fault("quota", match="stage1_output"), 3, "exceeded your current quota", 0),
        (Fault("http_error", status=503, times=10, match="stage3_output"), 4, "HTTP 503", 2),
        (Fault("refusal", match="stage3_output"), 4, "the model refused", 2),
        (Fault("schema_violation", times=2, match="stage2_output"), 4, "after one re-ask", 1),
        (Fault("incomplete", times=2, match="stage4_output"), 4, "max_output_tokens", 3),
    ],
    ids=["quota", "5xx-exhausted", "refusal", "schema-twice", "incomplete-twice"],
)
async def test_fatal_faults_stop_with_the_right_exit_code(openai_env, tmp_path, capsys, fault, code, message, kept):
    openai_env.inject(fault)
    assert await run(tmp_path) == code
    assert message in capsys.readouterr().err
    assert written(tmp_path) == STAGES[:kept]
    assert_clean(tmp_path)
    assert openai_env.stores, "the store is kept after a failure so the rerun can resume"


async def test_rerun_after_a_fatal_fault_resumes(openai_env, tmp_path):
    openai_env.inject(Fault("refusal", match="stage3_output"))
    assert await run(tmp_path) == 4
    calls_before = len(openai_env.response_bodies)
    assert await run(tmp_path) == 0
    resumed = [b["text"]["format"]["name"] for b in openai_env.response_bodies[calls_before:]]
    assert resumed == ["stage3_output", "stage4_output"]
    assert openai_env.stats["POST /v1/vector_stores"] == 1  # the store was reused, not re-uploaded


async def test_file_failing_indexing_stops_before_any_stage(openai_env, tmp_path, capsys):
    openai_env.fail_indexing.add("_index.md")
    assert await run(tmp_path) == 4
    err = capsys.readouterr().err
    assert "failed indexing" in err and "_index.md: invalid_file" in err
    assert written(tmp_path) == [] and openai_env.response_bodies == []


# --- the same faults seen by the library: typed errors --------------------------------------
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault("quota"), QuotaExceededError),
        (Fault("refusal"), RefusalError),
        (Fault("http_error", status=500, times=10), ServerError),
        (Fault("not_json", times=2), OutputFormatError),
        (Fault("delay", delay_s=3.0, times=10), APITimeoutError),
    ],
    ids=["quota", "refusal", "5xx", "not-json", "timeout"],
)
async def test_library_raises_typed_errors(openai_server, tmp_path, fault, error):
    from refinery.wire.transport import (
        ApiSettings,
        OpenAITransport,
        RetryPolicy,
    )

    async def no_wait(_: float) -> None:
        return None

    openai_server.inject(fault)
    transport = OpenAITransport(
        ApiSettings(api_key="sk-x", base_url=openai_server.base_url),
        timeout=aiohttp.ClientTimeout(total=1.5),
        retry=RetryPolicy(max_retries=1),
        sleep=no_wait,
    )
    async with ResponsesClient(transport=transport) as client:
        analyst = StagedFailureAnalyst(store="hosted", client=client, artifacts_dir=tmp_path)
        with pytest.raises(error):
            await analyst.analyze(make_trace(), EXPECTATION)
