"""Batch analysis: concurrent, one shared budget, per-trace folders, summary, failures, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from refinery.app.batch import BatchItem, analyze_many, discover
from refinery.app.cli import amain
from refinery.testing.faults import Fault
from refinery.wire.responses_client import ResponsesClient

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "traces"
    src.mkdir()
    for name in ("langsmith_runs.json", "otlp_trace.json", "langfuse_export.json", "plain_chat.json"):
        shutil.copy(FIX / name, src / name)
    (src / "plain_chat.expect.txt").write_text("The billing agent should find order 42.")
    return src


def test_discover_pairs_traces_with_their_expectations(folder):
    items = discover(folder, FIX / "expectation.json")
    assert [i.name for i in items] == ["langfuse_export", "langsmith_runs", "otlp_trace", "plain_chat"]
    assert items[3].expect.endswith("plain_chat.expect.txt") and items[0].expect.endswith("expectation.json")


def test_discover_keeps_same_stem_traces_apart(folder):
    shutil.copy(FIX / "langsmith_runs.jsonl", folder / "langsmith_runs.jsonl")
    names = [i.name for i in discover(folder, FIX / "expectation.json")]
    assert "langsmith_runs.json" in names and "langsmith_runs.jsonl" in names and len(set(names)) == len(names)


def test_discover_leaves_a_missing_expectation_to_the_traces_own_task(folder):
    items = {i.name: i.expect for i in discover(folder)}
    assert items["langsmith_runs"] is None and items["plain_chat"].endswith("plain_chat.expect.txt")


def test_the_shared_expectation_inside_the_folder_is_not_taken_for_a_trace(folder):
    shared = folder / "expectation.json"
    shutil.copy(FIX / "expectation.json", shared)
    items = discover(folder, shared)
    assert "expectation" not in [i.name for i in items] and all(i.expect for i in items)


async def test_each_trace_folder_holds_its_report_and_usage(openai_env, folder, tmp_path):
    out = tmp_path / "out"
    [item] = [i for i in discover(folder, FIX / "expectation.json") if i.name == "plain_chat"]
    client = ResponsesClient(api_key="sk-x", base_url=openai_env.base_url)
    summary = await analyze_many([item], out_dir=out, client=client)
    await client.close()
    usage = json.loads((out / "plain_chat" / "usage.json").read_text())
    assert usage["total"]["total_tokens"] == summary.outcomes["plain_chat"].tokens > 0
    assert (out / "plain_chat" / "report.md").read_text().startswith("# Why the run failed")
    assert (out / "plain_chat" / "report.html").is_file()
    assert '<a href="plain_chat/report.html">plain_chat</a>' in (out / "summary.html").read_text()


async def test_a_trace_with_no_expectation_and_no_task_fails_alone_with_a_clear_error(openai_env, folder, tmp_path):
    shutil.copy(FIX / "otel_span_list.json", folder / "no_task.json")  # spans that state no task anywhere
    client = ResponsesClient(api_key="sk-x", base_url=openai_env.base_url)
    summary = await analyze_many(discover(folder), out_dir=tmp_path / "out", client=client)
    await client.close()
    assert (
        summary.outcomes["plain_chat"].status == "done" and summary.outcomes["otlp_trace"].status == "done"
    )  # its agent span's input
    failed = summary.outcomes["no_task"]
    assert (
        failed.status == "failed"
        and failed.error_type == "InputFileError"
        and "no expectation: give --expect FILE" in failed.error
    )


def test_discover_reads_a_manifest(tmp_path):
    manifest = tmp_path / "batch.json"
    manifest.write_text(
        json.dumps([{"trace": str(FIX / "otlp_trace.json"), "expect": str(FIX / "expectation.json"), "name": "first"}])
    )
    [item] = discover(manifest)
    assert item.name == "first" and Path(item.trace).name == "otlp_trace.json"


async def test_batch_runs_everything_and_a_failure_never_stops_the_others(openai_env, folder, tmp_path, capsys):
    (folder / "broken.json").write_text('{"not": "a trace"}')
    openai_env.fail_indexing.add("lf-trace-1_index.md")  # the Langfuse trace fails at indexing
    out = tmp_path / "out"
    rc = await amain(
        ["batch", str(folder), "--expect", str(FIX / "expectation.json"), "--out", str(out), "--concurrency", "3"]
        + ["--store", "hosted"]  # the test server plays OpenAI on 127.0.0.1: the hosted path is asked for
    )
    assert rc == 5  # some traces failed, the others were analysed
    summary = json.loads((out / "summary.json").read_text())
    status = {n: o["status"] for n, o in summary["outcomes"].items()}
    assert status == {
        "broken": "failed",
        "langfuse_export": "failed",
        "langsmith_runs": "done",
        "otlp_trace": "done",
        "plain_chat": "done",
    }
    assert summary["outcomes"]["broken"]["error_type"] == "TraceFormatError"
    assert summary["outcomes"]["langfuse_export"]["error_type"] == "FileIndexingError"
    done = summary["outcomes"]["otlp_trace"]
    assert done["root_cause"] and done["confidence"] and done["tokens"] > 0 and done["cost_usd"] > 0
    for name in ("langsmith_runs", "otlp_trace", "plain_chat"):
        assert (out / name / "stage4_synthesis.json").is_file()
    md = (out / "summary.md").read_text()
    assert "| otlp_trace | done |" in md and "## Failures" in md and "**broken** — TraceFormatError: " in md
    printed = capsys.readouterr()
    assert "batch: " in printed.err
    # each failed trace named on the console, one line each, with its reason
    failed_lines = [line for line in printed.out.splitlines() if line.startswith("failed: ")]
    assert [line.split(" — ")[0] for line in failed_lines] == ["failed: broken", "failed: langfuse_export"]
    assert "FileIndexingError: file(s) failed indexing: lf-trace-1_index.md" in failed_lines[1]
    assert summary["throttled_429"] == 0 and openai_env.stats["429 rate_limit_exceeded"] == 0


async def test_rerun_skips_finished_traces_and_resumes_half_done_ones(openai_server, folder, tmp_path):
    openai_server.inject(Fault("refusal", match="stage3_output"))  # one trace stops at stage 3
    items = discover(folder, FIX / "expectation.json")
    out = tmp_path / "out"
    async with ResponsesClient(api_key="sk-x", base_url=openai_server.base_url) as client:
        first = await analyze_many(items, out_dir=out, client=client, concurrency=2)
    [failed] = first.failed
    assert failed.error_type == "RefusalError"
    calls = len(openai_server.response_bodies)
    async with ResponsesClient(api_key="sk-x", base_url=openai_server.base_url) as client:
        second = await analyze_many(items, out_dir=out, client=client, concurrency=2)
    assert sorted(second.skipped) == sorted(i.name for i in items if i.name != failed.name)
    resumed = [b["text"]["format"]["name"] for b in openai_server.response_bodies[calls:]]
    assert resumed == ["stage3_output", "stage4_output", "failure_patterns"]  # new diagnoses: patterns made again
    assert not second.failed and len(second.outcomes) == 4
    calls = len(openai_server.response_bodies)
    async with ResponsesClient(api_key="sk-x", base_url=openai_server.base_url) as client:
        third = await analyze_many(items, out_dir=out, client=client, concurrency=2)
    assert len(openai_server.response_bodies) == calls  # the same diagnoses: the patterns reused, no call
    assert third.patterns == second.patterns


async def test_batch_under_a_server_tpm_limit_surfaces_no_429(openai_server, folder, tmp_path):
    openai_server.set_limits(tpm=200_000, rpm=500)
    items = discover(folder, FIX / "expectation.json")
    async with ResponsesClient(api_key="sk-x", base_url=openai_server.base_url) as client:
        summary = await analyze_many(items, out_dir=tmp_path, client=client, concurrency=4)
        assert client.transport.budget.tokens.capacity == 200_000  # learned from the headers
    assert not summary.failed
    assert openai_server.stats["429 rate_limit_exceeded"] == 0


async def test_batch_item_paths_are_reported_in_failures(openai_server, tmp_path):
    items = [BatchItem(name="ghost", trace=str(tmp_path / "missing.json"), expect=str(FIX / "expectation.json"))]
    async with ResponsesClient(api_key="sk-x", base_url=openai_server.base_url) as client:
        summary = await analyze_many(items, out_dir=tmp_path / "o", client=client)
    assert "missing.json: no such file" in summary.outcomes["ghost"].error


async def test_copies_of_one_trace_in_a_batch_each_count_only_their_own_calls(openai_env, tmp_path):
    item = BatchItem(name="one", trace=str(FIX / "otlp_trace.json"), expect=str(FIX / "expectation.json"))
    async with ResponsesClient(api_key="sk-x", base_url=openai_env.base_url) as client:
        alone = (await analyze_many([item], out_dir=tmp_path / "alone", client=client)).outcomes["one"].tokens
        copies = [item.model_copy(update={"name": f"copy{i}"}) for i in range(3)]
        summary = await analyze_many(copies, out_dir=tmp_path / "copies", client=client, concurrency=3)
    assert alone > 0
    assert [o.tokens for o in summary.outcomes.values()] == [alone] * 3  # same trace id, never each other's calls


def test_the_eta_counts_down_while_nothing_finishes():
    from refinery.app.batch import _Progress

    now = [100.0]
    progress = _Progress(
        4, ResponsesClient(api_key="sk-x", base_url="http://127.0.0.1:9/v1"), None, clock=lambda: now[0]
    )
    now[0] = 110.0
    progress.finished(True, 1000)  # 10 s for one trace, three left: 30 s
    assert progress.eta() == pytest.approx(30.0)
    now[0] = 125.0  # 15 s waiting for budget, nothing finished
    assert progress.eta() == pytest.approx(15.0) and "ETA 15s" in progress.line()
    now[0] = 200.0
    assert progress.eta() == 0.0


async def test_a_batch_answered_by_the_stand_in_says_so_in_both_summaries(openai_env, folder, tmp_path):
    from refinery.report.view import STAND_IN

    out = tmp_path / "out"
    items = [i for i in discover(folder, FIX / "expectation.json") if i.name == "plain_chat"]
    async with ResponsesClient(api_key="sk-x", base_url=openai_env.base_url) as client:
        await analyze_many(items, out_dir=out, client=client)
    assert STAND_IN in (out / "summary.md").read_text()
    assert STAND_IN.replace("'", "&#x27;") in (out / "summary.html").read_text()


async def test_a_rerun_of_a_finished_analysis_keeps_the_stand_in_notice(openai_env, tmp_path):
    from refinery.report.view import STAND_IN

    out = tmp_path / "out"
    argv = ["run", str(FIX / "plain_chat.json"), "--expect", str(FIX / "expectation.json"), "--out", str(out)]
    assert await amain(argv) == 0
    assert STAND_IN in (out / "report.md").read_text()
    calls = openai_env.stats["POST /v1/responses"]
    assert await amain(argv) == 0
    assert openai_env.stats["POST /v1/responses"] == calls  # resumed from the artifacts: nothing asked again
    assert STAND_IN in (out / "report.md").read_text()
