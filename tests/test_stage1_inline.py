"""Stage 1 reads its group whole: each group's run files go into its prompt (every run is read),
`file_search` covers what is not inline (nothing, and no tool, when one call holds every file),
and the search-only way stays an option."""

from __future__ import annotations

import json
from pathlib import Path

from refinery.analysis.plan import measure, plan_summary, planned_requests
from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.app.cli import amain
from refinery.core.models import RunType, Trace, TraceRun
from refinery.testing.server import OpenAITestServer
from refinery.traces.render import RenderOptions
from refinery.wire.responses_client import ResponsesClient
from tests.fixtures_traces import EXPECTATION, make_trace


def user_text(body: dict) -> str:
    return body["input"][-1]["content"][0]["text"]


def tool_runs(n: int, size: int = 20) -> Trace:
    return Trace(
        trace_id="tools",
        runs=[
            TraceRun(
                id=f"run-{i}",
                name=f"tool_{i}",
                run_type=RunType.TOOL,
                outputs={"output": f"result {i} " + "word " * size},
            )
            for i in range(n)
        ],
    )


def test_every_run_file_of_the_group_is_in_the_stage1_prompt_and_the_search_covers_the_rest():
    trace = make_trace(n_runs=14)
    analyst = StagedFailureAnalyst(render_options=RenderOptions(runs_per_file=4), files_per_group=2)
    files = analyst.render(trace, EXPECTATION)
    [(name, body), *_] = planned_requests(analyst, trace, files, EXPECTATION)
    text = user_text(body)
    group = analyst.stage1_groups(files)[0]
    assert name == "stage1 (group 1/2)"
    for fname, _ in files:
        # the group's run files inline; the other group's, the index and expectations by search
        assert (f"===== file: {fname} =====" in text) == (fname in group.files)
    assert body["tools"][0]["filters"] == {"type": "ne", "key": "group", "value": 1}
    assert "Read every run in them" in text


def test_search_reading_sends_no_run_text():
    trace = make_trace(n_runs=14)
    analyst = StagedFailureAnalyst(stage1_reading="search")
    files = analyst.render(trace, EXPECTATION)
    [(_, body), *_] = planned_requests(analyst, trace, files, EXPECTATION)
    assert "[run_id:" not in user_text(body) and "filters" not in body["tools"][0]


def test_groups_are_sized_so_each_inline_request_fits_the_input_budget():
    trace = tool_runs(60, size=300)
    analyst = StagedFailureAnalyst(
        context_window=40_000, render_options=RenderOptions(runs_per_file=2), max_num_results=4
    )
    files = analyst.render(trace, EXPECTATION)
    bodies = [(n, b) for n, b in planned_requests(analyst, trace, files, EXPECTATION) if n.startswith("stage1")]
    plan = plan_summary(analyst, trace, files, measure(bodies))
    assert len(bodies) > 1 and not any("read by search" in n for n, _ in bodies)
    assert plan["stages"]["stage1"]["largest_request"] <= analyst.calls.input_budget and plan["warnings"] == []


def test_a_group_too_big_to_inline_is_read_by_search():
    trace = Trace(trace_id="huge", runs=[TraceRun(id="r1", name="llm", outputs={"text": "word " * 40_000})])
    analyst = StagedFailureAnalyst(context_window=20_000, max_num_results=2)
    files = analyst.render(trace, EXPECTATION)
    [(name, body), *_] = planned_requests(analyst, trace, files, EXPECTATION)
    assert name == "stage1 (read by search)" and "===== file:" not in user_text(body)


async def test_an_inline_analysis_puts_every_run_on_the_timeline_though_the_search_returns_one_chunk(tmp_path):
    trace = tool_runs(8)  # the stand-in lists at most eight runs
    opts = RenderOptions(runs_per_file=2)
    async with OpenAITestServer() as server, ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
        analyst = StagedFailureAnalyst(
            store="hosted", client=client, artifacts_dir=tmp_path, max_num_results=1, render_options=opts
        )
        result = await analyst.analyze(trace, EXPECTATION, until_stage=1)
        searched = StagedFailureAnalyst(
            store="hosted",
            client=client,
            artifacts_dir=tmp_path / "search",
            max_num_results=1,
            stage1_reading="search",
            render_options=opts,
        )
        by_search = await searched.analyze(trace, EXPECTATION, until_stage=1)
    assert {e.run_id for e in result.trace_analysis.timeline} == {r.id for r in trace.runs}
    assert len({e.run_id for e in by_search.trace_analysis.timeline}) < len(trace.runs)  # the keyhole
    meta = json.loads((Path(result.artifacts_dir) / "stage1_trace_analysis.json").read_text())["meta"]
    assert meta["stage1_reading"] == "inline"
    assert (
        json.loads((Path(by_search.artifacts_dir) / "stage1_trace_analysis.json").read_text())["meta"]["stage1_reading"]
        == "search"
    )


async def test_plan_compares_both_readings_on_request(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = tmp_path / "log.json"
    path.write_text(
        json.dumps(
            {
                "question": "Refund order 42",
                "history": [{"role": "user", "content": f"step {i} " + "text " * 50} for i in range(30)],
            }
        )
    )
    assert await amain(["plan", str(path), "--compare-reading", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["stage1_reading"] == "inline" and data["stage1_other_reading"]["reading"] == "search"
    # a small trace read whole, with no file_search, costs less than the search's eight chunks
    assert data["stages"]["stage1"]["input_tokens"] < data["stage1_other_reading"]["input_tokens"]
    assert await amain(["plan", str(path), "--stage1-reading", "search", "--compare-reading"]) == 0
    assert "stage 1 read search (this plan) vs inline:" in capsys.readouterr().out
