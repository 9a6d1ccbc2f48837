"""Nothing is left on the account, whatever is killed when: a real `refinery run` process is
killed at each request of the store's creation and of the clean-up (the server did the work, the
answer never reached the client), or its requests time out while the server makes the object
late; then the same command (or the failed run itself) leaves the server holding no file and no
vector store."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from refinery.testing.faults import Fault
from refinery.testing.server import OpenAITestServer

FIX = Path(__file__).parent / "fixtures"
TRACE = FIX / "clickhouse_snake_nested.json"


def command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "refinery", "run", str(TRACE), "--expect", str(FIX / "expectation.json")] + [
        "--out",
        str(out),
        "--store",
        "hosted",  # the test server plays OpenAI on 127.0.0.1: the hosted path is asked for
        *extra,
    ]


async def start(server: OpenAITestServer, cmd: list[str]) -> asyncio.subprocess.Process:
    env = {**os.environ, "OPENAI_API_KEY": "sk-local", "OPENAI_BASE_URL": server.base_url}
    return await asyncio.create_subprocess_exec(
        *cmd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def until(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the request never came")


async def rerun_to_the_end(server: OpenAITestServer, out: Path) -> None:
    proc = await start(server, command(out))
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()


CREATION = ["POST /v1/vector_stores", "POST /v1/vector_stores/*", "GET /v1/vector_stores/*"]  # store, batch, poll
CLEANUP = ["DELETE /v1/vector_stores/*", "DELETE /v1/files/*"]


@pytest.mark.parametrize("request_", CREATION + CLEANUP)
async def test_a_run_killed_at_a_request_of_creation_or_cleanup_leaves_nothing_after_the_rerun(tmp_path, request_):
    out = tmp_path / "out"
    async with OpenAITestServer() as server:
        server.inject(Fault("answer_late", path=request_, delay_s=5))  # done on the server, answered too late
        proc = await start(server, command(out))
        await until(lambda: server.stats["fault answer_late"] == 1)
        await asyncio.sleep(0.2)  # the server does the work; the answer waits
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert server.stores or server.files  # left by the killed run
        await rerun_to_the_end(server, out)
        assert server.files == {} and server.stores == {}
        assert not (out / "store.json").exists()


@pytest.mark.parametrize("request_", CLEANUP)
async def test_sigterm_during_the_cleanup_of_a_finished_run_leaves_the_deletion_to_the_rerun(tmp_path, request_):
    """Every stage is done when the clean-up is stopped: the rerun has nothing to analyse, and it
    still finishes the deletion the record announced before it was sent."""
    out = tmp_path / "out"
    async with OpenAITestServer() as server:
        server.inject(Fault("delay", path=request_, delay_s=5))  # not done before the client is stopped
        proc = await start(server, command(out))
        await until(lambda: server.stats["fault delay"] == 1)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 143, err.decode()
        assert (out / "stage4_synthesis.json").exists()
        assert json.loads((out / "store.json").read_text())["deleting"] is True
        server.faults.clear()
        before = server.stats["POST /v1/responses"]
        await rerun_to_the_end(server, out)
        assert server.stats["POST /v1/responses"] == before  # nothing analysed again
        assert server.files == {} and server.stores == {}


async def test_uploads_that_time_out_while_the_server_makes_each_file_late_leave_no_file(tmp_path):
    """`--timeout 2` against a server answering uploads after 4 s: every attempt (retries too) makes
    a file after the client gave up on it; the failed run looks for them by name until found."""
    out = tmp_path / "out"
    async with OpenAITestServer(upload_latency_s=4) as server:
        proc = await start(server, command(out, "--timeout", "2"))
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 3 and "timed out" in err.decode()
        assert server.stats["POST /v1/files"] > 3  # each file was retried
        assert server.files == {} and server.stores == {}
        server.upload_latency_s = 0
        await rerun_to_the_end(server, out)
        assert server.files == {} and server.stores == {}


@pytest.mark.parametrize("slow_attempts", [2, 9], ids=["answered-at-last", "never-answered"])
async def test_a_store_creation_that_times_out_leaves_no_store_per_retry(tmp_path, slow_attempts):
    out = tmp_path / "out"
    async with OpenAITestServer() as server:
        server.inject(Fault("delay", path="POST /v1/vector_stores", delay_s=4, times=slow_attempts))
        proc = await start(server, command(out, "--timeout", "2"))
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert server.stats["POST /v1/vector_stores"] > 1  # retried: each slow attempt makes a store
        if slow_attempts > 4:  # every attempt timed out: the run fails, having waited for the late stores
            assert proc.returncode == 3, err.decode()
            assert server.stores == {} and server.files == {}
            server.faults.clear()
            await rerun_to_the_end(server, out)
        else:
            assert proc.returncode == 0, err.decode()
        assert server.stores == {} and server.files == {}


async def test_a_retried_upload_whose_first_attempt_timed_out_leaves_no_file_after_a_successful_run(tmp_path):
    """The first attempt's file is made, its answer comes after the client's timeout, the retry
    succeeds: the run ends well, and its clean-up finds the unanswered attempt's file by name."""
    import aiohttp

    from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
    from refinery.traces import load_trace
    from refinery.wire.responses_client import ResponsesClient
    from tests.fixtures_traces import EXPECTATION

    async with OpenAITestServer() as server:
        server.inject(Fault("answer_late", path="/v1/files", delay_s=2, times=1, match="_index.md"))
        timeout = aiohttp.ClientTimeout(total=1)
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url, timeout=timeout) as client:
            analyst = StagedFailureAnalyst(store="hosted", client=client, artifacts_dir=tmp_path / "out")
            result = await analyst.analyze(load_trace(TRACE), EXPECTATION)
        assert result.synthesis is not None and server.stats["fault answer_late"] == 1
        assert server.files == {} and server.stores == {}
