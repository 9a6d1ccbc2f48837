"""The vector store across interrupted and resumed runs: recorded as ready only once indexed,
re-polled or re-created on a rerun, cleaned up after resumed runs too, named as asked."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.app.cli import amain
from refinery.errors import BadRequestError, IndexingTimeoutError
from refinery.testing.server import OpenAITestServer
from refinery.traces import load_trace
from refinery.wire.responses_client import ResponsesClient
from tests.fixtures_traces import EXPECTATION

FIX = Path(__file__).parent / "fixtures"
TRACE = FIX / "clickhouse_snake_nested.json"


async def analyse(server: OpenAITestServer, out: Path, until: int = 4, **kw):
    async with ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
        analyst = StagedFailureAnalyst(store="hosted", client=client, **kw)
        return await analyst.analyze(load_trace(TRACE), EXPECTATION, until_stage=until, artifacts_dir=out)


async def test_a_run_stopped_while_indexing_resumes_into_an_indexed_store(tmp_path):
    out = tmp_path / "out"
    async with OpenAITestServer(indexing_delay_s=0.6) as server:
        with pytest.raises(IndexingTimeoutError):
            await analyse(server, out, poll_timeout_s=0.05)
        recorded = json.loads((out / "store.json").read_text())
        assert recorded["ready"] is False and len(recorded["file_ids"]) == len(recorded["files"])
        result = await analyse(server, out, poll_timeout_s=10)
        assert server.stats["POST /v1/vector_stores"] == 1  # the rerun waited for the same store
        cited = {e.run_id for e in result.trace_analysis.timeline}
        assert cited & {r.id for r in load_trace(TRACE).runs}  # it retrieved the trace, not an empty store
        assert server.stores == {} and server.files == {}  # and cleaned up after itself


async def test_a_store_that_is_gone_is_made_again_and_stage_artifacts_are_kept(tmp_path, caplog):
    out = tmp_path / "out"
    async with OpenAITestServer() as server:
        await analyse(server, out, until=1)  # stops after stage 1 with the store kept for the rest
        stage1 = (out / "stage1_trace_analysis.json").read_text()
        server.stores.clear()  # expired, deleted, or another server
        with caplog.at_level(logging.WARNING, logger="refinery"):
            result = await analyse(server, out)
        assert result.synthesis is not None
        assert (out / "stage1_trace_analysis.json").read_text() == stage1  # not paid for again
        assert server.stats["POST /v1/vector_stores"] == 2
        [line] = [r.getMessage() for r in caplog.records if "re-creating" in r.getMessage()]
        assert "is gone (not found" in line and "stage artifacts are kept" in line


async def test_a_resumed_run_deletes_its_store_and_files(tmp_path):
    out = tmp_path / "out"
    async with OpenAITestServer() as server:
        await analyse(server, out, until=2)
        assert len(server.stores) == 1 and server.files
        await analyse(server, out)
        assert server.stores == {} and server.files == {}
        assert not (out / "store.json").exists()


async def test_a_finished_analysis_rerun_uploads_nothing(tmp_path):
    out = tmp_path / "out"
    async with OpenAITestServer() as server:
        await analyse(server, out)
        before = dict(server.stats)
        await analyse(server, out)
        assert server.stats == before


async def test_init_names_the_store_as_asked(openai_env, tmp_path):
    assert await amain(["init", str(TRACE), "--name", "my-store", "--json"]) == 0
    [store] = openai_env.stores.values()
    assert store.name == "my-store"


async def test_analyze_on_a_store_that_is_gone_says_what_to_do(openai_env, tmp_path, capsys):
    rc = await amain(
        ["analyze", "--store", "vs_gone", "--expect", str(FIX / "expectation.json"), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert (
        "vector store vs_gone is gone (not found: deleted, or made on another server); prepare it again with "
        "`refinery init TRACE`" in err
    )


async def test_uploaded_files_expire_with_the_store_and_a_failed_upload_leaves_nothing_behind(tmp_path):
    """Files stay on the account until deleted unless they carry an expiry; an upload that fails
    part-way deletes what it made before the error goes on."""
    from refinery.testing.faults import Fault

    async with OpenAITestServer() as server:
        await analyse(server, tmp_path / "ok")
        assert server.files == {} and server.stores == {}  # a finished run deletes its own
        server.inject(Fault("http_error", path="/v1/files", status=400, match="_index.md"))
        with pytest.raises(BadRequestError):
            await analyse(server, tmp_path / "failed")
        assert server.files == {} and server.stores == {}
        assert not (tmp_path / "failed" / "store.json").exists()


async def test_an_upload_already_sent_when_another_fails_is_heard_and_deleted(tmp_path):
    """One upload refused while another is still on its way: the other is waited for, not
    abandoned, so its file is known and deleted and nothing is left for a later run to sweep."""
    import asyncio

    from refinery.testing.faults import Fault

    async with OpenAITestServer() as server:
        server.inject(Fault("delay", path="/v1/files", delay_s=0.5, match="_runs_001"))
        server.inject(Fault("http_error", path="/v1/files", status=400, match="_index.md"))
        with pytest.raises(BadRequestError):
            await analyse(server, tmp_path / "failed")
        await asyncio.sleep(0.7)  # past the delayed upload's answer
        assert server.stats["POST /v1/files"] >= 2
        assert server.files == {} and server.stores == {}
        assert not (tmp_path / "failed" / "store.json").exists()


async def test_each_file_id_is_recorded_and_carries_an_expiry(tmp_path):
    async with OpenAITestServer() as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
            analyst = StagedFailureAnalyst(store="hosted", client=client, artifacts_dir=tmp_path, expires_after_days=2)
            await analyst.prepare(load_trace(TRACE), EXPECTATION)
        trace_id = load_trace(TRACE).trace_id  # the analyst's folder holds a subfolder a trace
        recorded = json.loads((tmp_path / trace_id / "store.json").read_text())
        assert sorted(recorded["file_ids"]) == sorted(server.files)
        assert all(f.expires_at == f.created_at + 2 * 86_400 for f in server.files.values())


async def test_an_upload_that_times_out_leaves_no_file_even_those_whose_ids_never_came_back(tmp_path):
    """The server made the file, but its answer came after the client gave up (every retry too):
    the upload fails, and the clean-up finds those files by name on the account and deletes them."""
    import aiohttp

    from refinery.errors import APITimeoutError
    from refinery.testing.faults import Fault

    async with OpenAITestServer() as server:
        server.inject(Fault("answer_late", path="/v1/files", delay_s=3, times=20, match="_index.md"))
        timeout = aiohttp.ClientTimeout(total=0.5)
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url, timeout=timeout) as client:
            analyst = StagedFailureAnalyst(store="hosted", client=client)
            with pytest.raises(APITimeoutError):
                await analyst.analyze(load_trace(TRACE), EXPECTATION, artifacts_dir=tmp_path / "out")
        assert server.stats["fault answer_late"] >= 1  # files were made whose ids nobody heard
        assert server.files == {} and server.stores == {}
        server.faults.clear()
        await analyse(server, tmp_path / "out")  # the rerun completes and cleans up after itself
        assert server.files == {} and server.stores == {}


async def test_a_run_killed_during_upload_leaves_no_live_file_after_the_rerun(tmp_path):
    """SIGKILL while files are being uploaded (some made, their answers pending): the rerun deletes
    the recorded store and files, and those whose ids the killed run never heard."""
    import asyncio
    import os
    import signal
    import sys

    from refinery.testing.faults import Fault

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "refinery", "run", str(TRACE), "--expect", str(FIX / "expectation.json")]
    cmd += ["--out", str(out), "--store", "hosted"]
    async with OpenAITestServer() as server:
        env = {**os.environ, "OPENAI_API_KEY": "sk-local", "OPENAI_BASE_URL": server.base_url}
        server.inject(Fault("answer_late", path="/v1/files", delay_s=4, times=1, match="_index.md"))
        proc = await asyncio.create_subprocess_exec(*cmd, env=env, stderr=asyncio.subprocess.PIPE)
        for _ in range(600):  # until some files exist on the server, one of them unanswered
            if server.stats["fault answer_late"] and len(server.files) > 1:
                break
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert server.files  # left behind by the killed run
        rerun = await asyncio.create_subprocess_exec(*cmd, env=env, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(rerun.communicate(), 60)
        assert rerun.returncode == 0, err.decode()
        assert server.files == {} and server.stores == {}


async def test_files_a_timed_out_upload_makes_after_the_run_gave_up_are_deleted_by_the_rerun(tmp_path):
    """The server is slow to take each file (it makes it after the client's timeout): the failed
    run's sweep comes too early, so its record stays, and the rerun sweeps again."""
    import asyncio

    import aiohttp

    from refinery.errors import APITimeoutError

    # Each upload takes the server `latency` s: 2 s past the end of the failed run's sweep, which
    # looks for late files for twice the request timeout (`StoreKeeper.straggler_wait_s`). With a
    # margin of 0.1 s (latency 1.0 s, timeout 0.3 s), a loaded CI machine's sweep outlasted the
    # uploads once, deleted every file, and left none for the rerun to find.
    timeout = 0.5
    latency = 2 * timeout + 2.0
    async with OpenAITestServer(upload_latency_s=latency) as server:
        async with ResponsesClient(
            api_key="sk-x", base_url=server.base_url, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as client:
            analyst = StagedFailureAnalyst(store="hosted", client=client)
            with pytest.raises(APITimeoutError):
                await analyst.analyze(load_trace(TRACE), EXPECTATION, artifacts_dir=tmp_path / "out")
        # the server finishes the uploads the client gave up on: wait (by a deadline, not a fixed
        # sleep that a loaded machine outruns) until it has made files and made no new one for longer
        # than its upload latency
        loop, seen, quiet_since = asyncio.get_running_loop(), -1, 0.0
        deadline = loop.time() + 60
        while loop.time() < deadline and not (server.files and loop.time() - quiet_since > latency):
            if len(server.files) != seen:
                seen, quiet_since = len(server.files), loop.time()
            await asyncio.sleep(0.05)
        assert server.files  # made after the failed run's sweep
        server.upload_latency_s = 0.0
        await analyse(server, tmp_path / "out")
        assert server.files == {} and server.stores == {}
