"""An analysis is a value: the analyst holds configuration only, each `analyze()` makes its own
context (folder, rendered files, store, usage, redactions) and returns what it made, and nothing of
an analysis outlives it (issue 31)."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
from pathlib import Path

import pytest
from pydantic import BaseModel

from refinery.analysis.output_folder import OutputFolderBusyError
from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.core.models import RunType, Trace, TraceRun
from refinery.errors import UserInputError
from refinery.testing.server import OpenAITestServer
from refinery.traces import spool
from refinery.wire.responses_client import USAGE_KEPT, ResponsesClient
from tests.fixtures_traces import EXPECTATION


def trace(n: int) -> Trace:
    return Trace(
        trace_id=f"trace-{n}",
        runs=[
            TraceRun(id=f"t{n}-r{i}", name=f"tool_{i}", run_type=RunType.TOOL, outputs={"out": f"order {n} step {i}"})
            for i in range(4)
        ],
    )


def spool_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(f"{spool.SPOOL_PREFIX}{os.getpid()}-*")}


async def test_four_analyses_at_once_in_one_artifacts_dir_keep_a_folder_each_and_leave_nothing(tmp_path):
    async with OpenAITestServer() as server, ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
        analyst = StagedFailureAnalyst(store="hosted", client=client, artifacts_dir=tmp_path)
        results = await asyncio.gather(*(analyst.analyze(trace(n), EXPECTATION) for n in range(4)))
        assert server.stores == {} and server.files == {}  # nothing left on the account
    assert [r.trace_id for r in results] == [f"trace-{n}" for n in range(4)]
    for n, r in enumerate(results):
        folder = tmp_path / f"trace-{n}"
        assert r.artifacts_dir == str(folder)
        for artifact in ("stage1_trace_analysis.json", "stage2_gap_analysis.json", "stage4_synthesis.json"):
            assert json.loads((folder / artifact).read_text())["trace_id"] == f"trace-{n}"  # unmixed
        assert {e.run_id for e in r.trace_analysis.timeline} <= {f"t{n}-r{i}" for i in range(4)}
        assert r.synthesis is not None


async def test_a_second_analysis_of_the_same_trace_into_the_same_folder_is_refused_before_any_upload(tmp_path):
    async with OpenAITestServer(latency_s=0.2) as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
            analyst = StagedFailureAnalyst(store="hosted", client=client, artifacts_dir=tmp_path)
            first = asyncio.create_task(analyst.analyze(trace(1), EXPECTATION, until_stage=1))
            await asyncio.sleep(0.05)
            uploads = len(server.files)
            with pytest.raises(OutputFolderBusyError, match="being written by another run"):
                await analyst.analyze(trace(1), EXPECTATION, until_stage=1)
            assert len(server.files) <= uploads + 4  # the refused one sent nothing (the first's may go on)
            await first


async def test_a_long_lived_analyst_keeps_no_spool_and_a_bounded_usage_record():
    before = spool_folders()
    async with OpenAITestServer() as server, ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
        analyst = StagedFailureAnalyst(store="hosted", client=client)
        for n in range(20):
            result = await analyst.analyze(trace(n), EXPECTATION)
            assert result.files is not None  # the result holds what it sent, for the report
            result.release()
        assert spool_folders() == before
        assert len(analyst._open) == 0
        assert len(client.usage) <= USAGE_KEPT


async def test_results_dropped_without_release_leave_no_spool_folder_either():
    before = spool_folders()
    async with OpenAITestServer() as server, ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
        analyst = StagedFailureAnalyst(store="hosted", client=client)
        for n in range(3):
            await analyst.analyze(trace(n), EXPECTATION)
    assert spool_folders() == before


async def test_a_folder_analysis_releases_its_files_in_the_worker_and_leaves_no_spool(tmp_path, monkeypatch):
    from refinery.analysis.stage_results import StagedAnalysisResult
    from refinery.app import analyze_into
    from refinery.core.offload import worker_thread

    released_in: list[bool] = []  # whether each release ran in refinery's worker (a big spool's is long)
    real = StagedAnalysisResult.release

    def spy(self):
        released_in.append(worker_thread())
        real(self)

    monkeypatch.setattr(StagedAnalysisResult, "release", spy)
    before = spool_folders()
    async with OpenAITestServer() as server, ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
        done = await analyze_into(tmp_path / "out", trace(1), EXPECTATION, analyst=StagedFailureAnalyst(client=client))
    assert (tmp_path / "out" / "report.md").is_file() and done.result.files is None
    assert released_in == [True]
    assert spool_folders() == before


def _spied_in_worker(monkeypatch, cls: type, name: str) -> list[tuple[bool, int]]:
    """Each call of `cls.name`: whether it ran in refinery's worker, and the runs its index held after."""
    from refinery.core.offload import worker_thread

    calls: list[tuple[bool, int]] = []
    real = getattr(cls, name)

    def spy(self):
        real(self)
        calls.append((worker_thread(), len(self.texts.where) if self.texts is not None else -1))

    monkeypatch.setattr(cls, name, spy)
    return calls


async def test_an_analysis_lets_go_of_its_citation_index_in_the_worker(monkeypatch):
    from refinery.analysis.analysis_run import AnalysisRun

    calls = _spied_in_worker(monkeypatch, AnalysisRun, "let_go")
    async with OpenAITestServer() as server, ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
        result = await StagedFailureAnalyst(client=client).analyze(trace(1), EXPECTATION)
    assert result.synthesis is not None and result.verification  # citations were checked before it went
    assert calls == [(True, 0)]


async def test_the_three_call_interface_frees_its_analysis_in_the_worker(monkeypatch):
    from refinery.analysis.analysis_run import AnalysisRun

    calls = _spied_in_worker(monkeypatch, AnalysisRun, "let_go")
    async with OpenAITestServer() as server, ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
        analyst = StagedFailureAnalyst(store="hosted", client=client)
        ta = await analyst.analyze_trace(trace(1), EXPECTATION)
        await analyst.diagnose_failure(ta, await analyst.compare_to_expected(ta, EXPECTATION))
    assert calls == [(True, 0)]


async def test_the_three_call_interface_lets_go_of_its_analysis_after_diagnose_failure():
    async with OpenAITestServer() as server, ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
        analyst = StagedFailureAnalyst(store="hosted", client=client)
        ta = await analyst.analyze_trace(trace(1), EXPECTATION)
        assert len(analyst._open) == 1
        gap = await analyst.compare_to_expected(ta, EXPECTATION)
        diagnosis = await analyst.diagnose_failure(ta, gap)
        assert diagnosis.root_cause
        assert len(analyst._open) == 0 and server.stores == {}


class HostRun(BaseModel):
    id: str
    name: str
    run_type: str = "tool"
    outputs: dict[str, str] | None = None
    error: str | None = None


class HostTrace(BaseModel):
    trace_id: str
    runs: list[HostRun]


class HostExpectation(BaseModel):
    description: str


async def test_a_hosts_own_pydantic_models_analyse():
    host = HostTrace(trace_id="host-1", runs=[HostRun(id="h1", name="lookup", error="timeout after 30s")])
    async with OpenAITestServer() as server, ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
        result = await StagedFailureAnalyst(store="hosted", client=client).analyze(
            host, HostExpectation(description="finds it")
        )
    assert result.trace_id == "host-1" and result.synthesis is not None


async def test_a_host_model_that_does_not_fit_is_one_line_naming_the_field():
    class Broken(BaseModel):
        trace_id: str
        runs: list[dict[str, int]]

    with pytest.raises(UserInputError) as err:
        await StagedFailureAnalyst().analyze(Broken(trace_id="x", runs=[{"n": 1}]), EXPECTATION)
    assert "field runs.0.id" in str(err.value) and "\n" not in str(err.value)


async def test_rendering_runs_off_the_event_loop(monkeypatch):
    threads: list[int] = []
    real = spool.upload_files_for

    def spy(*args, **kwargs):
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr("refinery.analysis.staged_failure_analyst.upload_files_for", spy)
    async with OpenAITestServer() as server, ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
        await StagedFailureAnalyst(store="hosted", client=client).analyze(trace(1), EXPECTATION, until_stage=1)
    assert threads and threading.get_ident() not in threads


async def test_cancelling_an_analysis_while_it_renders_stops_the_rendering_and_removes_its_files(monkeypatch):
    rendering, release = threading.Event(), threading.Event()
    stopped: list[bool] = []
    real = spool.upload_files_for

    def slow(*args, stop=None, **kwargs):
        rendering.set()
        release.wait(5)
        try:
            return real(*args, stop=stop, **kwargs)
        except spool.Stopped:
            stopped.append(True)
            raise

    monkeypatch.setattr("refinery.analysis.staged_failure_analyst.upload_files_for", slow)
    before = spool_folders()
    task = asyncio.create_task(StagedFailureAnalyst().analyze(trace(1), EXPECTATION))
    await asyncio.to_thread(rendering.wait, 5)
    task.cancel()
    await asyncio.sleep(0.05)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stopped == [True]  # the worker saw the stop at its next file and ended
    assert spool_folders() == before


async def test_answers_are_parsed_and_validated_in_the_worker(monkeypatch):
    from refinery.core.offload import worker_thread
    from refinery.wire import responses_client

    checked_in: list[bool] = []
    real = responses_client.answer_problems

    def spy(text, schema):
        checked_in.append(worker_thread())
        return real(text, schema)

    monkeypatch.setattr(responses_client, "answer_problems", spy)
    async with OpenAITestServer() as server, ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
        result = await StagedFailureAnalyst(client=client).analyze(trace(1), EXPECTATION)
    assert result.synthesis is not None
    assert len(checked_in) >= 4 and all(checked_in)  # every stage's answer: its first use imports jsonschema
