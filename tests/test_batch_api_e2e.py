"""`refinery batch DIR --batch-api` end to end against the local test server's `/v1/batches`.

The server validates each input line as the API does and answers it with the synchronous path's
stand-in model; a test sets line errors and an expiry on it (`server.batch_knobs`). The process
"killed" at a chosen point is a `BaseException` raised there; the rerun is the same command.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from refinery.app.batch import analyze_many, discover
from refinery.app.batch_api_run import analyze_by_batch
from refinery.app.batch_api_state import load_state
from refinery.app.batch_api_submit import Poll
from refinery.app.cli import amain
from refinery.core.pricing import estimate_cost_usd
from refinery.testing.faults import Fault
from refinery.wire.batch_api import BatchAPI
from refinery.wire.responses_client import ResponsesClient
from refinery.wire.transport import ApiSettings, OpenAITransport
from tests.batch_api_fake import Stop
from tests.test_batch_api_run import _stage_outputs, chat_trace

FIX = Path(__file__).parent / "fixtures"
TRACES = 100


@pytest.fixture
def many(tmp_path):
    src = tmp_path / "traces"
    src.mkdir()
    for i in range(TRACES):
        chat_trace(src / f"t{i:03d}.json", 2, words=8)
    shutil.copy(FIX / "expectation.json", tmp_path / "expect.json")
    return src


def _submissions(out: Path) -> Counter[str]:
    """How many batches each custom id went into."""
    return Counter(cid for s in load_state(out, "").submissions for cid in s.requests)


async def test_a_hundred_traces_with_line_errors_and_an_expiry_each_request_once_failed_ones_once_more(
    openai_env, many, tmp_path, capsys
):
    server = openai_env
    server.batch_knobs.fail_lines("rf-", times=3)  # the first three lines answered: a 500
    server.batch_knobs.expire_next_batch(finished=60)  # stage 1's batch expires, 40 lines unanswered
    out = tmp_path / "out"
    argv = ["batch", str(many), "--batch-api", "--out", str(out), "--expect", str(tmp_path / "expect.json")]
    rc = await amain([*argv, "--no-llm", "--poll-every", "0.01"])
    assert rc == 0, capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["outcomes"]) == TRACES and {o["status"] for o in summary["outcomes"].values()} == {"done"}
    sent = _submissions(out)
    assert len(sent) == 4 * TRACES  # every stage's request of every trace …
    again = [cid for cid, n in sent.items() if n == 2]
    assert max(sent.values()) == 2 and len(again) == 40 + 3  # … in one batch; failed and expired ones once more
    assert server.stats["POST /v1/batches"] == len(server.batches) == len(load_state(out, "").submissions)
    assert server.files == {}  # input, output and error files all deleted
    stages = summary["batch_api"]["stages"]
    s2 = stages["stage2"]
    full = estimate_cost_usd({"input_tokens": s2["input_tokens"], "output_tokens": s2["output_tokens"]}, "gpt-4o")
    assert s2["cost_usd"] == pytest.approx(full / 2) and stages["stage1"]["failed_lines"] == 43
    # each report says what the synchronous path's says for the same stand-in answers (costs aside)
    client = ResponsesClient(api_key="sk-x", base_url=server.base_url)
    items = discover(many, tmp_path / "expect.json")
    await analyze_many(items, out_dir=tmp_path / "sync", client=client, store="none", name_patterns=False)
    await client.close()
    for item in items:
        batch, sync = out / item.name, tmp_path / "sync" / item.name
        assert len(_stage_outputs(batch)) == 4 and _stage_outputs(batch) == _stage_outputs(sync), item.name
        assert _report_content(batch) == _report_content(sync), item.name


def _report_content(folder: Path) -> str:
    """`report.md` with its money figures masked (the batch path's are at half the rate)."""
    return re.sub(r"\$?\d+\.\d{4}", "$", (folder / "report.md").read_text())


def _api(server) -> BatchAPI:
    return BatchAPI(OpenAITransport(ApiSettings(api_key="sk-test", base_url=server.base_url)))


class _Killed(BatchAPI):
    """The real client, the process killed once at `at`: `create` (after the server made the
    batch, before the id came back) or `retrieve` (while polling)."""

    def __init__(self, transport, at: str) -> None:
        super().__init__(transport)
        self.at = at

    async def create(self, *args, **kwargs):
        made = await super().create(*args, **kwargs)
        if self.at == "create":
            self.at = ""
            raise Stop("killed before the id came back")
        return made

    async def retrieve(self, batch_id):
        if self.at == "retrieve":
            self.at = ""
            raise Stop("killed while polling")
        return await super().retrieve(batch_id)


@pytest.mark.parametrize("at", ["create", "retrieve"])
async def test_killed_after_submitting_the_rerun_submits_nothing_twice(openai_env, at, tmp_path):
    src = tmp_path / "traces"
    src.mkdir()
    for name in ("otlp_trace.json", "plain_chat.json"):
        shutil.copy(FIX / name, src / name)
    items, out = discover(src, FIX / "expectation.json"), tmp_path / "out"
    transport = OpenAITransport(ApiSettings(api_key="sk-test", base_url=openai_env.base_url))
    poll = Poll(first=0.01, most=0.05)
    with pytest.raises(Stop):
        await analyze_by_batch(items, out_dir=out, api=_Killed(transport, at), poll=poll)
    assert len(openai_env.batches) == 1
    summary = await analyze_by_batch(items, out_dir=out, api=_Killed(transport, ""), poll=poll)
    await transport.close()
    assert {o.status for o in summary.outcomes.values()} == {"done"}
    assert openai_env.stats["POST /v1/batches"] == len(openai_env.batches) == 4  # one a stage, none twice
    assert max(_submissions(out).values()) == 1 and openai_env.files == {}


async def test_reports_equal_the_synchronous_paths_through_the_emulated_batch_api(openai_env, tmp_path):
    src = tmp_path / "traces"
    src.mkdir()
    for name in ("langsmith_runs.json", "otlp_trace.json", "plain_chat.json"):
        shutil.copy(FIX / name, src / name)
    items = discover(src, FIX / "expectation.json")
    transport = OpenAITransport(ApiSettings(api_key="sk-test", base_url=openai_env.base_url))
    await analyze_by_batch(items, out_dir=tmp_path / "batch", api=BatchAPI(transport), poll=Poll(0.01, 0.05))
    await transport.close()
    client = ResponsesClient(api_key="sk-x", base_url=openai_env.base_url)
    await analyze_many(items, out_dir=tmp_path / "sync", client=client, store="none", name_patterns=False)
    await client.close()
    for item in items:
        assert _stage_outputs(tmp_path / "batch" / item.name) == _stage_outputs(tmp_path / "sync" / item.name)


async def test_cancel_on_the_command_line_cancels_the_open_batch_and_deletes_its_files(openai_env, tmp_path, capsys):
    openai_env.batch_knobs.completion_delay_s = 3600  # the batch stays in progress
    src = tmp_path / "traces"
    src.mkdir()
    shutil.copy(FIX / "plain_chat.json", src / "plain_chat.json")
    items, out = discover(src, FIX / "expectation.json"), tmp_path / "out"
    transport = OpenAITransport(ApiSettings(api_key="sk-test", base_url=openai_env.base_url))
    with pytest.raises(Stop):
        await analyze_by_batch(items, out_dir=out, api=_Killed(transport, "retrieve"), poll=Poll(0.01, 0.05))
    await transport.close()
    assert await amain(["batch", str(out), "--cancel", "--poll-every", "0.01"]) == 0
    [batch] = openai_env.batches.values()
    assert batch.status == "cancelled" and openai_env.files == {}
    assert "cancelled 1 batch(es)" in capsys.readouterr().out


async def test_a_batch_that_fails_validation_twice_fails_its_traces_with_the_apis_reason(openai_env, tmp_path):
    for _ in range(2):
        openai_env.batch_knobs.fail_next_batch("invalid_json_line", "Forced failure.", line=1)
    src = tmp_path / "traces"
    src.mkdir()
    shutil.copy(FIX / "plain_chat.json", src / "plain_chat.json")
    items, out = discover(src, FIX / "expectation.json"), tmp_path / "out"
    transport = OpenAITransport(ApiSettings(api_key="sk-test", base_url=openai_env.base_url))
    summary = await analyze_by_batch(items, out_dir=out, api=BatchAPI(transport), poll=Poll(0.01, 0.05))
    await transport.close()
    failed = summary.outcomes["plain_chat"]
    assert failed.status == "failed" and "no answer after 2 batches" in failed.error
    assert "failed: line 1: invalid_json_line: Forced failure." in failed.error
    assert len(openai_env.batches) == 2 and openai_env.files == {}


async def _stopped_once_its_upload_reached_the_server(server, tmp_path) -> tuple[list, Path, OpenAITransport]:
    """One trace's run stopped after its first input file was made on the server, before the
    file's id came back (the server answers the upload late); the items, folder and transport."""
    server.inject(Fault("answer_late", path="/v1/files", delay_s=2))
    src = tmp_path / "traces"
    src.mkdir()
    shutil.copy(FIX / "plain_chat.json", src / "plain_chat.json")
    items, out = discover(src, FIX / "expectation.json"), tmp_path / "out"
    transport = OpenAITransport(ApiSettings(api_key="sk-test", base_url=server.base_url))
    run = asyncio.ensure_future(analyze_by_batch(items, out_dir=out, api=BatchAPI(transport), poll=Poll(0.01, 0.05)))
    while not server.files and not run.done():  # the upload has reached the server …
        await asyncio.sleep(0.01)
    run.cancel()  # … and the process is stopped before its id comes back
    with pytest.raises(asyncio.CancelledError):
        await run
    first = load_state(out, "").submissions[0]
    assert first.uploading and first.input_file_id is None and len(server.files) == 1
    return items, out, transport


async def test_killed_after_an_upload_reached_the_server_the_rerun_uses_that_copy_and_leaves_none(openai_env, tmp_path):
    items, out, transport = await _stopped_once_its_upload_reached_the_server(openai_env, tmp_path)
    [lost] = openai_env.files
    summary = await analyze_by_batch(items, out_dir=out, api=BatchAPI(transport), poll=Poll(0.01, 0.05))
    await transport.close()
    assert summary.outcomes["plain_chat"].status == "done"
    state = load_state(out, "")
    assert state.submissions[0].input_file_id == lost  # the copy the stop left, used
    assert openai_env.stats["POST /v1/files"] == state.rounds == 4  # one input file a round, ever
    assert openai_env.stats["POST /v1/batches"] == 4 and openai_env.files == {}


async def test_a_damaged_copy_left_by_a_stop_is_deleted_and_the_input_uploaded_again(openai_env, tmp_path):
    items, out, transport = await _stopped_once_its_upload_reached_the_server(openai_env, tmp_path)
    [lost] = openai_env.files.values()
    lost.data = lost.data[: len(lost.data) // 2]  # not the whole input file
    summary = await analyze_by_batch(items, out_dir=out, api=BatchAPI(transport), poll=Poll(0.01, 0.05))
    await transport.close()
    assert summary.outcomes["plain_chat"].status == "done"
    assert load_state(out, "").submissions[0].input_file_id != lost.id
    assert openai_env.stats["POST /v1/files"] == 5 and openai_env.files == {}  # the damaged copy gone too
