"""`refinery batch --batch-api`: rounds of batches through one analysis path, durable across stops.

The Batch API here is an in-memory fake (`batch_api_fake`) whose lines the local test server
answers, so answers are the synchronous path's stand-in answers; the end-to-end tests against
the test server's own `/v1/batches` are in `test_batch_api_e2e.py`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from refinery.analysis.output_folder import OutputFolderBusyError
from refinery.app.batch import analyze_many, discover
from refinery.app.batch_api_run import analyze_by_batch, batch_status, cancel_batches
from refinery.app.batch_api_state import RunLock, load_state
from refinery.app.batch_api_submit import Poll
from refinery.app.cli import amain
from refinery.core.pricing import estimate_cost_usd
from refinery.traces.render import RenderOptions
from refinery.wire.batch_answers import custom_id_for
from refinery.wire.responses_client import ResponsesClient
from tests.batch_api_fake import FakeBatchAPI, Stop

FIX = Path(__file__).parent / "fixtures"
TRACES = ("langsmith_runs.json", "otlp_trace.json", "plain_chat.json")


async def _no_wait(_s: float) -> None:
    return None


POLL = Poll(first=1.0, most=4.0, sleep=_no_wait)


@pytest.fixture
def items(tmp_path):
    src = tmp_path / "traces"
    src.mkdir()
    for name in TRACES:
        shutil.copy(FIX / name, src / name)
    return discover(src, FIX / "expectation.json")


@pytest.fixture
async def api(openai_server):
    fake = FakeBatchAPI(openai_server.base_url)
    yield fake
    await fake.close()


async def _run(items, out, api, **kw):
    return await analyze_by_batch(items, out_dir=out, api=api, poll=POLL, **kw)


def _stage_outputs(folder: Path) -> dict[str, object]:
    """Each stage's output as written, without the wall time its call took."""
    found = {}
    for path in sorted(folder.glob("stage*.json")):
        data = json.loads(path.read_text())
        found[path.name] = json.loads(re.sub(r'"duration_s": [0-9.]+', '"duration_s": 0', json.dumps(data)))
    return found


async def test_every_trace_is_analysed_with_each_request_in_one_batch_and_no_file_left(items, api, tmp_path):
    summary = await _run(items, tmp_path / "out", api)
    assert {o.status for o in summary.outcomes.values()} == {"done"} and len(summary.outcomes) == len(TRACES)
    assert len(api.lines_sent) == len(set(api.lines_sent)) == 4 * len(TRACES)  # four stages, each asked once
    assert len(api.creates) == 4 and api.files == {}  # one batch a stage; inputs, outputs deleted
    for item in items:
        assert (tmp_path / "out" / item.name / "report.md").is_file()


async def test_reports_equal_the_synchronous_paths_with_costs_at_the_batch_rate(items, api, openai_server, tmp_path):
    await _run(items, tmp_path / "batch", api)
    client = ResponsesClient(api_key="sk-x", base_url=openai_server.base_url)
    await analyze_many(items, out_dir=tmp_path / "sync", client=client, store="none", name_patterns=False)
    await client.close()
    for item in items:
        batch, sync = tmp_path / "batch" / item.name, tmp_path / "sync" / item.name
        assert _stage_outputs(batch) == _stage_outputs(sync)
        b_usage, s_usage = (json.loads((f / "usage.json").read_text()) for f in (batch, sync))
        assert b_usage["total"]["total_tokens"] == s_usage["total"]["total_tokens"]
        assert b_usage["total"]["estimated_cost_usd"] == pytest.approx(s_usage["total"]["estimated_cost_usd"] / 2)
        assert b_usage["priced_at"].startswith("Batch API rate")
        money = re.compile(r"\$?\d+\.\d{4}")
        b_md, s_md = (money.sub("$", (f / "report.md").read_text()) for f in (batch, sync))
        assert b_md == s_md


async def test_the_summary_says_each_stages_batches_time_and_cost_at_the_batch_rate(items, api, tmp_path):
    await _run(items, tmp_path / "out", api)
    stages = json.loads((tmp_path / "out" / "summary.json").read_text())["batch_api"]["stages"]
    assert sorted(stages) == ["stage1", "stage2", "stage3", "stage4"]
    s1 = stages["stage1"]
    assert s1["batches"] == 1 and s1["requests"] == len(TRACES) and s1["failed_lines"] == 0
    assert s1["duration_s"] == 600  # the fake's created_at 1000 → completed_at 1600
    full = estimate_cost_usd({"input_tokens": s1["input_tokens"], "output_tokens": s1["output_tokens"]}, "gpt-4o")
    assert s1["cost_usd"] == pytest.approx(full / 2)
    assert "## Batch API" in (tmp_path / "out" / "summary.md").read_text()


async def test_a_failed_line_is_submitted_once_more_and_its_trace_finishes(items, api, tmp_path):
    seen = []

    def first_try_of_plain_chat(body):
        seen.append("Routing to billing agent" in json.dumps(body))
        return seen[-1] and seen.count(True) == 1

    api.fail_always = first_try_of_plain_chat
    summary = await _run(items, tmp_path / "out", api)
    assert {o.status for o in summary.outcomes.values()} == {"done"}
    assert len(api.lines_sent) == 4 * len(TRACES) + 1  # that one line twice, the rest once
    assert len(api.creates) == 5 and api.files == {}


async def test_a_line_that_fails_twice_ends_its_trace_failed_with_the_batchs_reason(items, api, tmp_path):
    api.fail_always = lambda body: "Routing to billing agent" in json.dumps(body)  # plain_chat's stage-1 request
    summary = await _run(items, tmp_path / "out", api)
    failed = summary.outcomes["plain_chat"]
    assert failed.status == "failed" and "failed in 2 batches" in failed.error and "server had an error" in failed.error
    assert {o.status for n, o in summary.outcomes.items() if n != "plain_chat"} == {"done"}
    assert api.files == {}


async def test_an_expired_batchs_lines_go_into_the_next_round_and_are_not_lost(items, api, tmp_path):
    api.expire_batches = {2}  # stage 2's batch expires unanswered
    summary = await _run(items, tmp_path / "out", api)
    assert {o.status for o in summary.outcomes.values()} == {"done"}
    assert len(api.creates) == 5 and api.files == {}
    state = load_state(tmp_path / "out", "gpt-4o")
    assert set(state.submissions[1].requests) == set(state.submissions[2].requests)  # the same lines again


async def test_killed_while_polling_the_rerun_goes_on_without_a_second_batch(items, api, tmp_path):
    out = tmp_path / "out"
    api.stop_at = "retrieve"
    with pytest.raises(Stop):
        await _run(items, out, api)
    assert len(api.creates) == 1
    summary = await _run(items, out, api)
    assert {o.status for o in summary.outcomes.values()} == {"done"}
    assert len(api.creates) == 4 and len(api.lines_sent) == len(set(api.lines_sent)) and api.files == {}


async def test_a_batch_made_before_its_id_came_back_is_found_not_made_twice(items, api, tmp_path):
    out = tmp_path / "out"
    api.stop_at = "create-after"
    with pytest.raises(Stop):
        await _run(items, out, api)
    assert (
        load_state(out, "gpt-4o").submissions[0].creating and load_state(out, "gpt-4o").submissions[0].batch_id is None
    )
    summary = await _run(items, out, api)
    assert {o.status for o in summary.outcomes.values()} == {"done"}
    assert len(api.creates) == 4 and api.uploads == 4 and api.files == {}


@pytest.mark.parametrize(
    "point",
    [
        "upload-before",
        "upload-after",
        "create-before",
        "download-before",
        "download-after",
        "delete-before",
        "delete-after",
    ],
)
async def test_killed_at_any_call_the_rerun_finishes_and_submits_nothing_twice(items, api, tmp_path, point):
    out = tmp_path / "out"
    api.stop_at = point
    with pytest.raises(Stop):
        await _run(items, out, api)
    summary = await _run(items, out, api)
    assert {o.status for o in summary.outcomes.values()} == {"done"}
    assert len(api.creates) == 4 and len(api.lines_sent) == len(set(api.lines_sent)) == 4 * len(TRACES)
    assert api.uploads == 4 and api.files == {}  # an upload whose id a stop lost is found and used, not made twice


async def test_status_says_where_each_batch_and_trace_stands(items, api, tmp_path):
    out = tmp_path / "out"
    api.stop_at = "retrieve"
    with pytest.raises(Stop):
        await _run(items, out, api)
    status = await batch_status(out, items)
    [batch] = status["batches"]
    assert batch["part"] == "r1-p1" and batch["status"] == "in_progress" and batch["requests"] == len(TRACES)
    assert all(v.startswith("waiting") for v in status["traces"].values())


async def test_cancel_cancels_the_open_batches_and_leaves_no_file(items, api, tmp_path):
    out = tmp_path / "out"
    api.stop_at = "retrieve"
    with pytest.raises(Stop):
        await _run(items, out, api)
    cancelled = await cancel_batches(out, api, poll=POLL)
    assert cancelled == [api.creates and next(iter(api.batches))]
    assert api.batches[cancelled[0]]["status"] == "cancelled" and api.files == {}
    summary = await _run(items, out, api)  # a later run submits what was cancelled again
    assert {o.status for o in summary.outcomes.values()} == {"done"}


def chat_trace(path: Path, turns: int, words: int = 40) -> Path:
    """A plain chat log of `turns` tool calls, the last one failing: a trace of any size."""
    messages = [{"role": "user", "content": f"Reconcile ledger {path.stem}"}]
    for i in range(turns):
        messages.append({"role": "assistant", "name": "agent", "content": f"step {i}: calling fetch_page"})
        error = "TimeoutError: upstream took too long" if i == turns - 1 else None
        messages.append(
            {"role": "tool", "name": "fetch_page", "content": f"page {i} " + "entry " * words, "error": error}
        )
    path.write_text(json.dumps({"messages": messages}))
    return path


async def test_every_stage1_group_of_a_trace_goes_into_the_same_round(api, tmp_path):
    src = tmp_path / "big"
    src.mkdir()
    chat_trace(src / "long.json", 30, words=150)
    items = discover(src, FIX / "expectation.json")
    options = {"render_options": RenderOptions(runs_per_file=2), "group_tokens": 2_000, "stage1_concurrency": 2}
    summary = await _run(items, tmp_path / "out", api, **options)
    assert summary.outcomes["long"].status == "done"
    first = load_state(tmp_path / "out", "gpt-4o").submissions[0]
    assert len(first.requests) > 2 and set(first.requests.values()) == {"stage1"}  # more groups than concurrency
    assert len(api.creates) == 4


async def test_with_sync_retry_a_failed_line_is_sent_live_instead(items, api, openai_server, tmp_path):
    live = ResponsesClient(api_key="sk-x", base_url=openai_server.base_url)
    failing = {"n": 0}

    def once(body):
        failing["n"] += 1
        return failing["n"] == 1

    api.fail_always = once
    summary = await _run(items, tmp_path / "out", api, fallback=live.transport)
    await live.close()
    assert {o.status for o in summary.outcomes.values()} == {"done"}
    assert len(api.creates) == 4  # no fifth batch: the failed line went live


def test_a_requests_custom_id_is_its_bodys_digest():
    assert custom_id_for({"a": 1, "b": [2]}) == custom_id_for({"b": [2], "a": 1})
    assert custom_id_for({"a": 1}) != custom_id_for({"a": 2}) and len(custom_id_for({})) <= 64


async def test_plan_with_batch_api_prices_the_same_requests_at_half(capsys):
    trace, expect = str(FIX / "plain_chat.json"), str(FIX / "expectation.json")
    assert await amain(["plan", trace, "--expect", expect, "--store", "none", "--json"]) == 0
    live = json.loads(capsys.readouterr().out)
    assert await amain(["plan", trace, "--expect", expect, "--batch-api", "--json"]) == 0
    batch = json.loads(capsys.readouterr().out)
    assert batch["total"]["input_tokens"] == live["total"]["input_tokens"] > 0
    assert batch["total"]["estimated_cost_usd"] == pytest.approx(live["total"]["estimated_cost_usd"] / 2, abs=1e-4)
    assert batch["priced_at"].startswith("Batch API rate")


async def test_the_status_command_reads_the_folder_and_sends_nothing(items, api, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    api.stop_at = "retrieve"
    with pytest.raises(Stop):
        await _run(items, out, api)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9")  # nothing listens: a request would fail
    assert await amain(["batch", str(out), "--status"]) == 0
    said = capsys.readouterr().out
    assert "r1-p1: batch-2 in_progress, 3 requests" in said and "plain_chat: waiting (stages done: none)" in said


async def test_a_second_run_on_the_same_folder_is_refused_while_the_first_holds_it(items, api, tmp_path):
    out = tmp_path / "out"
    first = RunLock(out).acquire()
    try:
        with pytest.raises(OutputFolderBusyError, match="another `refinery batch --batch-api` run"):
            await _run(items, out, api)
    finally:
        first.release()
    assert api.creates == [] and api.uploads == 0


async def test_status_of_a_folder_with_no_batch_api_run_says_so(tmp_path, capsys):
    assert await amain(["batch", str(tmp_path), "--status"]) == 2
    assert "no `refinery batch --batch-api` run recorded here" in capsys.readouterr().err


async def test_killed_before_the_rounds_record_was_saved_the_rerun_writes_the_same_round(
    items, api, tmp_path, monkeypatch
):
    import refinery.app.batch_api_submit as submit

    real = submit.save_state

    def stop_once(out, state):
        monkeypatch.setattr(submit, "save_state", real)
        raise Stop("killed before the round was recorded")

    monkeypatch.setattr(submit, "save_state", stop_once)
    out = tmp_path / "out"
    with pytest.raises(Stop):
        await _run(items, out, api)
    assert api.uploads == 0 and list((out / ".batch-api" / "inputs").iterdir())  # its input file, not yet sent
    summary = await _run(items, out, api)
    assert {o.status for o in summary.outcomes.values()} == {"done"}
    assert len(api.creates) == 4 and load_state(out, "").rounds == 4


async def test_cancel_after_an_upload_whose_id_was_lost_deletes_that_copy(items, api, tmp_path):
    out = tmp_path / "out"
    api.stop_at = "upload-after"
    with pytest.raises(Stop):
        await _run(items, out, api)
    assert len(api.files) == 1 and load_state(out, "").submissions[0].input_file_id is None
    assert await cancel_batches(out, api, poll=POLL) == []
    assert api.files == {} and api.creates == []
