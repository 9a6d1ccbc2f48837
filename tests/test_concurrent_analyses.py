"""One analyst, many runs at once: the analyst is configuration; each analysis keeps its own store,
usage and redaction counts, and one failing never touches the others."""

from __future__ import annotations

import asyncio

from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.core.models import RunType, Trace, TraceRun
from refinery.errors import ServerError
from refinery.testing.faults import Fault
from refinery.testing.server import OpenAITestServer
from refinery.wire.responses_client import ResponsesClient
from refinery.wire.transport import RetryPolicy
from tests.fixtures_traces import EXPECTATION


def trace(n: int, secret: bool = False) -> Trace:
    text = f"order {n} lookup" + (" with key sk-proj-" + "a1B2c3D4" * 4 if secret else "")
    return Trace(
        trace_id=f"trace-{n}",
        runs=[
            TraceRun(id=f"t{n}-r{i}", name=f"tool_{i}", run_type=RunType.TOOL, outputs={"out": f"{text} step {i}"})
            for i in range(4)
        ],
    )


async def test_several_traces_through_one_analyst_at_once_keep_their_own_stores_and_usage(tmp_path):
    async with (
        OpenAITestServer(latency_s=0.05) as server,
        ResponsesClient(api_key="sk-x", base_url=server.base_url) as client,
    ):
        analyst = StagedFailureAnalyst(store="hosted", client=client)
        traces = [trace(n, secret=n == 1) for n in range(4)]
        results = await asyncio.gather(*(analyst.analyze(t, EXPECTATION) for t in traces))
        assert (
            server.stores == {} and server.files == {}
        )  # every analysis deleted its own store and files, only its own
    assert [r.trace_id for r in results] == [t.trace_id for t in traces]
    assert len({r.store_id for r in results}) == 4
    for r, t in zip(results, traces):
        assert {e.run_id for e in r.trace_analysis.timeline} <= {run.id for run in t.runs}  # no other trace's runs
        assert r.usage["stage1"].total_tokens > 0 and r.synthesis is not None
    assert [bool(r.redactions) for r in results] == [False, True, False, False]  # counted where the secret was


async def test_one_analysis_failing_leaves_the_others_to_finish(tmp_path):
    async with (
        OpenAITestServer() as server,
        ResponsesClient(api_key="sk-x", base_url=server.base_url, retry=RetryPolicy(max_retries=0)) as client,
    ):
        server.inject(Fault("http_error", status=500, times=5, match="t2-r"))  # every stage-1 call of trace-2
        analyst = StagedFailureAnalyst(store="hosted", client=client)
        outcomes = await asyncio.gather(
            *(analyst.analyze(trace(n), EXPECTATION) for n in range(4)), return_exceptions=True
        )
    assert isinstance(outcomes[2], ServerError)
    assert all(o.synthesis is not None for i, o in enumerate(outcomes) if i != 2)
    assert server.stores == {}  # the failed one cleaned up too (no artifacts folder to resume in)


async def test_one_analysis_cleaning_up_never_deletes_another_ones_files():
    async with OpenAITestServer() as server, ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
        analyst = StagedFailureAnalyst(store="hosted", client=client)  # one vector store manager for both
        first = await analyst.analyze_trace(trace(1), EXPECTATION)
        second = await analyst.analyze_trace(trace(2), EXPECTATION)
        gap = await analyst.compare_to_expected(first, EXPECTATION)
        await analyst.diagnose_failure(first, gap)  # the first analysis ends: its store and files go
        kept = second.metadata["store_id"]
        assert list(server.stores) == [kept]
        assert set(server.stores[kept].files) == set(server.files)  # the second's files, every one
