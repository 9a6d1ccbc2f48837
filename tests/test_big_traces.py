"""Big traces: every request inside the context budget, Stage 1 condensed (the full result kept in
the store), groups sized by tokens and run concurrently, and a cost ceiling that stops in time."""

from __future__ import annotations

import json

import pytest

from refinery.analysis.analysis_run import plan_groups
from refinery.analysis.condense import condense_stage1, json_tokens
from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.analysis.staged_schemas import TraceAnalysisOutput
from refinery.core.context_windows import chunk_allowance, context_window, input_budget
from refinery.core.models import Trace, TraceRun
from refinery.core.tokens import estimate_body_tokens
from refinery.errors import ContextBudgetError, CostLimitError
from refinery.testing.server import OpenAITestServer
from refinery.traces.render import RenderedFiles, RenderOptions
from refinery.traces.source_text import FileLayout
from refinery.wire.responses_client import ResponsesClient
from tests.fixtures_traces import EXPECTATION


def big_stage1(entries: int) -> TraceAnalysisOutput:
    timeline = [
        {
            "sequence": i + 1,
            "run_id": f"r{i}",
            "run_name": f"step {i}",
            "action": "did things " * 40,
            "status": "error" if i % 50 == 7 else "ok",
            "key_inputs": "input " * 60,
            "key_outputs": "output " * 60,
            "tool_calls": ["search"] * 5,
            "citations": [{"file": "f.md", "section_or_lines": f"Run {i}"}] * 4,
        }
        for i in range(entries)
    ]
    events = [
        {"kind": "failure", "run_id": f"r{i}", "description": f"run {i} failed", "citations": []}
        for i in range(7, entries, 50)
    ]
    return TraceAnalysisOutput.model_validate(
        {
            "timeline": timeline,
            "events": events,
            "coverage": {"files_scanned": [f"f{i}.md" for i in range(300)], "remaining": []},
            "evidence": [],
        }
    )


def test_context_windows_come_from_a_table_with_overrides():
    assert context_window("gpt-4o-2024-08-06") == 128_000 and context_window("gpt-4.1-mini") == 1_047_576
    assert context_window("my-finetune") == 128_000 and context_window("my-finetune", {"my-finetune": 32_000}) == 32_000
    assert input_budget("gpt-4o") == 64_000 and chunk_allowance(8) == 6400


def test_a_stage1_that_fits_is_left_alone():
    small = big_stage1(3)
    assert condense_stage1(small, 100_000) == (small, 0)


def test_an_oversized_stage1_is_condensed_to_fit_keeping_every_failure():
    full = big_stage1(600)
    fitted, level = condense_stage1(full, 20_000)
    assert json_tokens(full) > 20_000 >= json_tokens(fitted) and level >= 1
    assert {e.run_id for e in fitted.events} == {e.run_id for e in full.events}
    failed = {e.run_id for e in full.timeline if e.status == "error"}
    assert failed <= {e.run_id for e in fitted.timeline}
    assert fitted.timeline[0].run_id == "r0" and fitted.timeline[-1].run_id == "r599"


def test_groups_are_sized_by_tokens_not_run_count():
    files = RenderedFiles(
        [
            ("t_runs_001-001.md", "word " * 8_000, FileLayout(run_ids=["a"])),
            ("t_runs_002-003.md", "word " * 100, FileLayout(run_ids=["b", "c"])),
            ("t_runs_004-004.md", "word " * 100, FileLayout(run_ids=["d"])),
            ("t_index.md", "i", FileLayout()),
        ]
    )
    groups = plan_groups(files, files_per_group=8, group_tokens=5_000)
    assert [g.files for g in groups] == [("t_runs_001-001.md",), ("t_runs_002-003.md", "t_runs_004-004.md")]
    assert [(g.first_run, g.last_run) for g in groups] == [(1, 1), (2, 4)]


def test_which_files_hold_runs_is_the_renderers_word_not_their_names():
    files = RenderedFiles([("notes_runs_draft.md", "word", FileLayout()), ("x.md", "word", FileLayout(run_ids=["a"]))])
    assert [g.files for g in plan_groups(files, files_per_group=8)] == [("x.md",)]


def many_runs(n: int, size: int) -> Trace:
    return Trace(
        trace_id="big",
        runs=[
            TraceRun(id=f"run-{i}", name=f"tool {i}", outputs={"output": f"result {i} " + "data " * size})
            for i in range(n)
        ],
    )


async def test_stage1_groups_run_concurrently_and_later_stages_fit_the_budget(tmp_path):
    events: list[tuple[str, str]] = []
    async with OpenAITestServer(latency_s=0.2) as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
            analyst = StagedFailureAnalyst(
                store="hosted",
                client=client,
                artifacts_dir=tmp_path,
                render_options=RenderOptions(runs_per_file=2),
                group_tokens=2_000,
                stage1_concurrency=4,
                context_window=40_000,
                max_num_results=4,
                progress_callback=lambda stage, status, info: events.append((stage, status)),
            )
            result = await analyst.analyze(many_runs(60, 300), EXPECTATION)
        groups = [e for e in events if e[0] == "stage1.group"]
        assert len(groups) >= 16
        assert groups[:4] == [("stage1.group", "start")] * 4  # four calls in flight before the first answer
        budget = input_budget("gpt-4o", window=40_000)
        assert all(
            estimate_body_tokens(b) + (chunk_allowance(4) if b.get("tools") else 0) <= budget
            for b in server.response_bodies
        )
    assert result.synthesis is not None


async def test_a_condensed_stage1_is_uploaded_whole_and_the_later_prompt_says_so(tmp_path):
    async with OpenAITestServer() as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
            analyst = StagedFailureAnalyst(
                store="hosted",
                client=client,
                artifacts_dir=tmp_path,
                keep_store=True,
                context_window=60_000,
                max_num_results=4,
            )
            begun = await analyst.analyze_trace(many_runs(4, 20), EXPECTATION)  # the analysis, kept open
            big = begun.model_copy(update={"raw": big_stage1(400).model_dump(mode="json")})
            stage2 = await analyst.compare_to_expected(big, EXPECTATION)
        [body] = [b for b in server.response_bodies if b["text"]["format"]["name"] == "stage2_output"]
        text = body["input"][-1]["content"][0]["text"]
        assert "too large to paste whole" in text and "_stage1_full.md" in text
        names = {f.filename for f in server.files.values()}
        assert "big_stage1_full.md" in names
    assert stage2 is not None
    meta = json.loads((tmp_path / "big" / "stage2_gap_analysis.json").read_text())["meta"]
    assert meta["stage1_condensed"] >= 1


async def test_a_request_over_the_budget_is_refused_before_it_is_sent(tmp_path):
    async with OpenAITestServer() as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
            analyst = StagedFailureAnalyst(
                store="hosted", client=client, context_window=8_000, max_num_results=8, stage1_reading="search"
            )  # 4,000 budget < 6,400 of chunks
            with pytest.raises(ContextBudgetError, match="over the budget of 4000 for gpt-4o"):
                await analyst.analyze(many_runs(3, 10), EXPECTATION)
        assert server.response_bodies == []


async def test_max_cost_stops_before_a_call_could_cross_it_and_keeps_what_was_done(tmp_path):
    trace = many_runs(30, 200)
    async with OpenAITestServer() as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
            analyst = StagedFailureAnalyst(store="hosted", client=client, artifacts_dir=tmp_path, max_cost_usd=0.05)
            with pytest.raises(CostLimitError, match=r"stopped before exceeding --max-cost \$0.05"):
                await analyst.analyze(trace, EXPECTATION)
            assert 0 < analyst.cost_ceiling.spent_usd <= 0.05
            assert json.loads((tmp_path / "big" / "store.json").read_text())["ready"] is True  # kept for the rerun
            rerun = StagedFailureAnalyst(store="hosted", client=client, artifacts_dir=tmp_path, max_cost_usd=5.0)
            result = await rerun.analyze(trace, EXPECTATION)
        assert result.synthesis is not None
        assert server.stats["POST /v1/vector_stores"] == 1  # the rerun continued where the first stopped


async def test_plan_prints_totals_cost_and_duration_and_lists_files_only_when_verbose(capsys, monkeypatch):
    from pathlib import Path

    from refinery.app.cli import amain

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    trace = str(Path(__file__).parent / "fixtures" / "clickhouse_snake_nested.json")
    expect = str(Path(__file__).parent / "fixtures" / "expectation.json")
    assert await amain(["plan", trace, "--expect", expect, "--latency", "2"]) == 0
    compact = capsys.readouterr().out
    assert "stage    calls  input tokens  output tokens  largest request  est. cost" in compact
    assert "estimated cost (worst case): ~$" in compact and "duration at 2 s a call" in compact
    assert "files to upload:" not in compact
    assert await amain(["plan", trace, "--expect", expect, "--verbose"]) == 0
    assert "files to upload:" in capsys.readouterr().out
    assert await amain(["plan", trace, "--expect", expect, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # one group holds every file: Stage 1 reads them all, with nothing to retrieve
    assert data["total"]["calls"] == 4 and data["stages"]["stage1"]["input_tokens"] >= data["file_tokens"]
    assert data["total"]["estimated_cost_usd"] > 0 and data["warnings"] == []


async def test_plan_strict_fails_when_a_request_would_not_fit(capsys, monkeypatch):
    from pathlib import Path

    from refinery.app.cli import amain

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    trace = str(Path(__file__).parent / "fixtures" / "clickhouse_snake_nested.json")
    args = [
        "plan",
        trace,
        "--expect",
        str(Path(__file__).parent / "fixtures" / "expectation.json"),
        "--context-window",
        "8000",
    ]
    assert await amain(args) == 0 and "warning: stage3: about" in capsys.readouterr().out
    assert await amain([*args, "--strict"]) == 2
    assert "--strict: 1 request(s) would exceed the context budget" in capsys.readouterr().err


def test_when_even_the_tightest_level_is_too_big_as_many_items_as_fit_are_kept():
    full = big_stage1(3000)
    full = full.model_copy(
        update={
            "events": [
                *full.events,
                *[e.model_copy(update={"run_id": f"r{i}"}) for i in range(3000) for e in full.events[:1]],
            ]
        }
    )
    fitted, level = condense_stage1(full, 3_000)
    assert json_tokens(fitted) <= 3_000 and level == 5
    assert fitted.timeline and "left out here" in fitted.coverage.remaining[-1]


def test_a_big_logs_runs_behave_as_a_small_ones_for_what_a_host_reads_and_sets(tmp_path, monkeypatch):
    from refinery.traces import json_stream, load_trace

    path = tmp_path / "log.json"
    path.write_text(
        json.dumps({"history": [{"role": "assistant", "name": "a", "content": f"step {i}"} for i in range(50)]})
    )
    small = load_trace(path)
    monkeypatch.setattr(json_stream, "LAZY_BYTES", 0)
    big = load_trace(path)
    assert type(big.runs).__name__ == "LazyRuns" and isinstance(small.runs, list)
    for trace in (small, big):
        assert trace.runs[0] is trace.runs[0]
        trace.runs[3].error = "boom"
        assert trace.runs[3].error == "boom" and [r.id for r in trace.runs if r.error] == ["step-3"]
        assert trace.runs[2:4][1].error == "boom" and trace.runs[-1].id == "step-49"
