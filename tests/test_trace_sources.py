"""Traces fetched by id from LangSmith and Langfuse, through the shapes their public API
references document (mocked with aioresponses): pagination, the credentials each needs, and one
line for a 401, a 404 and a 429 — never the key in it."""

from __future__ import annotations

import json
import re

import pytest

from refinery.app.cli import amain
from refinery.errors import ConfigurationError, UserInputError
from refinery.traces import load_trace
from refinery.traces.sources import SourceRef, fetch_trace, is_source_ref

LS = "https://api.smith.langchain.com"
LF = "https://cloud.langfuse.com"
LS_KEY = "lsv2_pt_" + "f" * 32
LF_ENV = {"LANGFUSE_PUBLIC_KEY": "pk-lf-1", "LANGFUSE_SECRET_KEY": "sk-lf-" + "s" * 20}
SECRET = "ghp_" + "Z9y8X7w6" * 4 + "Vv55"


def ls_run(i: int, parent: str | None, **extra) -> dict:
    return {
        "id": f"run-{i}",
        "trace_id": "run-1",
        "name": f"step {i}",
        "run_type": "tool" if parent else "chain",
        "parent_run_id": parent,
        "dotted_order": f"20260301T10000{i}000000Zrun-1" + ("" if not parent else f".20260301T10000{i}000000Zrun-{i}"),
        "start_time": f"2026-03-01T10:00:0{i}",
        "end_time": f"2026-03-01T10:00:0{i + 1}",
        "inputs": {"q": f"input {i}"},
        "outputs": {"a": f"output {i}"},
        **extra,
    }


def mock_langsmith(mocked) -> None:
    mocked.get(f"{LS}/api/v1/runs/run-2", payload=ls_run(2, "run-1"))
    pages = [
        {"runs": [ls_run(1, None)], "cursors": {"next": "c2"}},
        {
            "runs": [ls_run(2, "run-1", error=f"KeyError with token {SECRET}"), ls_run(3, "run-1")],
            "cursors": {"next": None},
        },
    ]
    for page in pages:
        mocked.post(f"{LS}/api/v1/runs/query", payload=page)


def test_a_reference_is_told_from_a_path():
    assert is_source_ref("langsmith:abc-123") == SourceRef("langsmith", "abc-123")
    assert is_source_ref("langfuse:tr_9") == SourceRef("langfuse", "tr_9")
    assert is_source_ref("traces/run.json") is None and is_source_ref("phoenix-notes.json") is None


async def test_a_langsmith_run_id_brings_its_whole_trace_page_by_page(mocked):
    mock_langsmith(mocked)
    data = await fetch_trace(SourceRef("langsmith", "run-2"), env={"LANGSMITH_API_KEY": LS_KEY})
    assert [r["id"] for r in data["runs"]] == ["run-1", "run-2", "run-3"]
    posts = [c for (method, _), calls in mocked.requests.items() if method == "POST" for c in calls]
    queries = [c.kwargs["json"] for c in posts]
    assert queries[0] == {"trace": "run-1", "limit": 100} and queries[1]["cursor"] == "c2"
    sent = [c.kwargs["headers"] for cs in mocked.requests.values() for c in cs]
    assert all(h == {"x-api-key": LS_KEY} for h in sent)


async def test_langsmiths_older_variable_names_are_accepted(mocked):
    mock_langsmith(mocked)
    env = {"LANGCHAIN_API_KEY": LS_KEY, "LANGCHAIN_ENDPOINT": LS}
    assert len((await fetch_trace(SourceRef("langsmith", "run-2"), env=env))["runs"]) == 3


async def test_a_401_names_the_variable_and_never_the_key(mocked):
    mocked.get(f"{LS}/api/v1/runs/x", status=401, payload={"detail": "Invalid token"})
    with pytest.raises(
        ConfigurationError, match="HTTP 401 from https://api.smith.langchain.com: check LANGSMITH_API_KEY"
    ) as err:
        await fetch_trace(SourceRef("langsmith", "x"), env={"LANGSMITH_API_KEY": LS_KEY})
    assert LS_KEY not in str(err.value)


async def test_a_404_names_the_id_and_the_endpoint(mocked):
    mocked.get(f"{LF}/api/public/traces/nope", status=404, payload={"message": "not found"})
    with pytest.raises(UserInputError, match="langfuse: no trace nope in https://cloud.langfuse.com"):
        await fetch_trace(SourceRef("langfuse", "nope"), env=LF_ENV)


async def test_a_429_waits_as_asked_then_goes_on(mocked):
    mocked.get(f"{LS}/api/v1/runs/run-2", status=429, headers={"retry-after": "0"})
    mock_langsmith(mocked)
    data = await fetch_trace(SourceRef("langsmith", "run-2"), env={"LANGSMITH_API_KEY": LS_KEY})
    assert len(data["runs"]) == 3


LF_TRACE = {
    "id": "tr_9",
    "name": "support",
    "input": {"question": "Refund order 42"},
    "observations": [
        {"id": "o1", "traceId": "tr_9", "type": "SPAN", "name": "agent", "startTime": "2026-03-01T10:00:00Z"},
        {
            "id": "o2",
            "traceId": "tr_9",
            "type": "GENERATION",
            "name": "llm",
            "parentObservationId": "o1",
            "startTime": "2026-03-01T10:00:01Z",
            "level": "ERROR",
            "statusMessage": "rate limited upstream",
        },
    ],
}


async def test_a_langfuse_trace_comes_with_its_observations_and_basic_auth(mocked):
    mocked.get(f"{LF}/api/public/traces/tr_9", payload=LF_TRACE)
    data = await fetch_trace(SourceRef("langfuse", "tr_9"), env=LF_ENV)
    [call] = [c for cs in mocked.requests.values() for c in cs]
    assert call.kwargs["headers"]["Authorization"].startswith("Basic ")
    loaded = load_trace(data)
    assert loaded.trace_id == "tr_9" and [r.id for r in loaded.runs] == ["o1", "o2"] and loaded.runs[1].is_failed


async def test_run_fetches_once_keeps_a_redacted_copy_and_a_rerun_reads_it(openai_env, tmp_path, monkeypatch):
    import aioresponses

    monkeypatch.setenv("LANGSMITH_API_KEY", LS_KEY)
    out = tmp_path / "out"
    argv = ["run", "langsmith:run-2", "--expect", str(FIX / "expectation.json"), "--out", str(out)]
    with aioresponses.aioresponses(passthrough=["http://127.0.0.1"]) as m:  # the local OpenAI server is real
        mock_langsmith(m)
        assert await amain(argv) == 0
    kept = (out / "trace.json").read_text()
    assert json.loads(kept)["refinery_source"] == "langsmith:run-2" and SECRET not in kept
    assert LS_KEY not in "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    with aioresponses.aioresponses(passthrough=["http://127.0.0.1"]) as m:  # LangSmith answers nothing now
        assert await amain(argv) == 0  # it read its copy
        assert not [u for (_, u) in m.requests if "smith" in str(u)]


FIX = __import__("pathlib").Path(__file__).parent / "fixtures"


async def test_a_batch_manifest_may_name_traces_by_id(openai_env, tmp_path, monkeypatch):
    import aioresponses

    from refinery.app.batch import analyze_many, discover
    from refinery.wire.responses_client import ResponsesClient

    monkeypatch.setenv("LANGSMITH_API_KEY", LS_KEY)
    manifest = tmp_path / "batch.json"
    manifest.write_text(json.dumps([{"trace": "langsmith:run-2", "expect": str(FIX / "expectation.json")}]))
    [item] = discover(manifest)
    assert item.name == "run-2" and item.trace == "langsmith:run-2"
    with aioresponses.aioresponses(passthrough=["http://127.0.0.1"]) as m:
        mock_langsmith(m)
        async with ResponsesClient(api_key="sk-x", base_url=openai_env.base_url) as client:
            summary = await analyze_many([item], out_dir=tmp_path / "out", client=client)
    assert summary.outcomes["run-2"].status == "done"
    assert json.loads((tmp_path / "out" / "run-2" / "trace.json").read_text())["refinery_source"] == "langsmith:run-2"


async def test_batch_from_langfuse_lists_the_failed_traces_of_the_period(mocked, monkeypatch):
    from refinery.traces.sources import failed_traces, parse_age

    page = {
        "data": [
            {"id": "o1", "traceId": "tr_1", "level": "ERROR"},
            {"id": "o2", "traceId": "tr_1"},
            {"traceId": "tr_2"},
        ],
        "meta": {"page": 1, "totalPages": 1},
    }
    mocked.get(re.compile(rf"^{re.escape(LF)}/api/public/observations\?.*level=ERROR.*"), payload=page)
    assert await failed_traces("langfuse", parse_age("24h"), env=LF_ENV) == ["tr_1", "tr_2"]


async def test_batch_from_langsmith_lists_a_projects_failed_root_runs(mocked):
    from refinery.traces.sources import failed_traces

    mocked.get(f"{LS}/api/v1/sessions?name=support-bot", payload=[{"id": "sess-1", "name": "support-bot"}])
    mocked.post(
        f"{LS}/api/v1/runs/query", payload={"runs": [{"id": "r9", "trace_id": "r9"}], "cursors": {"next": None}}
    )
    ids = await failed_traces("langsmith", 3600, project="support-bot", env={"LANGSMITH_API_KEY": LS_KEY})
    assert ids == ["r9"]
    [query] = [c.kwargs["json"] for (m, _), cs in mocked.requests.items() if m == "POST" for c in cs]
    assert query["session"] == ["sess-1"] and query["is_root"] is True and query["error"] is True


def test_an_age_is_minutes_hours_or_days():
    from refinery.traces.sources import parse_age

    assert [parse_age(a) for a in ("90m", "24h", "7d")] == [5400, 86400, 604800]
    with pytest.raises(UserInputError, match="--since: expected an age like 90m"):
        parse_age("yesterday")


async def test_batch_from_needs_since_and_failed(capsys):
    assert await amain(["batch", "--from", "langfuse", "--since", "24h"]) == 2
    assert "add --since AGE and --failed" in capsys.readouterr().err


async def test_a_5xx_is_retried_by_the_transports_rules_and_x_should_retry_false_is_obeyed(mocked, monkeypatch):
    from refinery.traces import sources
    from refinery.wire.retry import RetryPolicy

    monkeypatch.setattr(sources, "SOURCE_RETRY", RetryPolicy(backoff_initial_s=0.001, backoff_max_s=0.001))
    env = {"LANGSMITH_API_KEY": LS_KEY}
    mocked.get(f"{LS}/api/v1/runs/run-2", status=503)
    mock_langsmith(mocked)
    assert len((await fetch_trace(SourceRef("langsmith", "run-2"), env=env))["runs"]) == 3
    mocked.get(f"{LS}/api/v1/runs/x", status=503, headers={"x-should-retry": "false"})
    with pytest.raises(sources.SourceError, match="langsmith: HTTP 503 from https://api.smith.langchain.com for x"):
        await fetch_trace(SourceRef("langsmith", "x"), env=env)
    mocked.get(f"{LS}/api/v1/runs/y", status=500, repeat=True)
    with pytest.raises(sources.SourceError, match="HTTP 500"):
        await fetch_trace(SourceRef("langsmith", "y"), env=env)
    tries = [len(calls) for (_, url), calls in mocked.requests.items() if str(url).endswith("/runs/y")]
    assert tries == [4]  # the first try and RetryPolicy's 3 retries


async def test_a_429_naming_no_wait_waits_seconds_not_a_minute(mocked, monkeypatch):
    from refinery.traces import sources

    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    monkeypatch.setattr(sources, "_sleep", sleep)
    mocked.get(f"{LS}/api/v1/runs/run-2", status=429)
    mock_langsmith(mocked)
    await fetch_trace(SourceRef("langsmith", "run-2"), env={"LANGSMITH_API_KEY": LS_KEY})
    assert len(waits) == 1 and 5 <= waits[0] <= 15


async def test_a_langfuse_run_writes_neither_key_anywhere(openai_env, tmp_path, monkeypatch):
    import base64

    import aioresponses

    for name, value in LF_ENV.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    with aioresponses.aioresponses(passthrough=["http://127.0.0.1"]) as m:  # the local OpenAI server is real
        m.get(f"{LF}/api/public/traces/tr_9", payload=LF_TRACE)
        assert await amain(["run", "langfuse:tr_9", "--out", str(out)]) == 0
    basic = base64.b64encode(f"{LF_ENV['LANGFUSE_PUBLIC_KEY']}:{LF_ENV['LANGFUSE_SECRET_KEY']}".encode()).decode()
    written = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert "Refund order 42" in written  # the trace is there
    assert LF_ENV["LANGFUSE_SECRET_KEY"] not in written and basic not in written


async def test_langfuse_observations_given_as_ids_are_fetched_page_by_page(mocked):
    trace = {**LF_TRACE, "observations": ["o1", "o2"]}  # some deployments list the ids only
    mocked.get(f"{LF}/api/public/traces/tr_9", payload=trace)
    [first, second] = LF_TRACE["observations"]
    pages = [
        {"data": [first], "meta": {"page": 1, "limit": 1, "totalItems": 2, "totalPages": 2}},
        {"data": [second], "meta": {"page": 2, "limit": 1, "totalItems": 2, "totalPages": 2}},
    ]
    for page in pages:  # the query's order is aiohttp's: match its parts
        n = page["meta"]["page"]
        mocked.get(
            re.compile(rf"^{re.escape(LF)}/api/public/observations\?(?=.*traceId=tr_9)(?=.*\bpage={n}\b).*"),
            payload=page,
        )
    data = await fetch_trace(SourceRef("langfuse", "tr_9"), env=LF_ENV)
    assert [o["id"] for o in data["observations"]] == ["o1", "o2"]
    loaded = load_trace(data)
    assert [r.id for r in loaded.runs] == ["o1", "o2"] and loaded.runs[1].error == "rate limited upstream"
