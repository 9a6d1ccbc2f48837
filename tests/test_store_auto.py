"""`--store auto` decided with no request (issue 32): `plan` plans the mode a run will use, `canary`
says which and why, `inputs.json` records the store and the wire, and `--search-calls` reaches
`eval` and the MCP tools as it reaches `run` and `batch`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from refinery.app.cli import amain
from refinery.testing.server import OpenAITestServer

FIX = Path(__file__).parent / "fixtures"
TRACE = str(FIX / "langsmith_runs.json")
LABELS = FIX / "labels"


def plan_of(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


async def test_plan_with_no_flag_plans_the_hosted_store_on_openai(capsys, monkeypatch):
    for var in ("OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    assert await amain(["plan", TRACE, "--json"]) == 0
    plan = plan_of(capsys)
    assert plan["store"] == "hosted" and "api.openai.com" in plan["store_reason"]
    stage2 = next(r for r in plan["requests"] if r["call"] == "stage2")["body"]
    assert stage2["tools"][0]["type"] == "file_search"


async def test_plan_with_no_flag_plans_the_inline_reading_a_run_on_another_server_will_use(capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert await amain(["plan", TRACE, "--json"]) == 0
    plan = plan_of(capsys)
    assert plan["store"] == "none" and "localhost" in plan["store_reason"]
    assert all("tools" not in r["body"] for r in plan["requests"])
    stage2 = next(r for r in plan["requests"] if r["call"] == "stage2")["body"]
    assert "Trace files (inline)" in stage2["input"][-1]["content"][0]["text"]


async def test_plan_costs_the_inline_reading_differently_from_the_hosted_one(capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    assert await amain(["plan", TRACE, "--json"]) == 0
    inline = plan_of(capsys)
    assert await amain(["plan", TRACE, "--json", "--store", "hosted"]) == 0
    hosted = plan_of(capsys)
    assert (inline["store"], hosted["store"]) == ("none", "hosted")
    assert inline["total"]["input_tokens"] != hosted["total"]["input_tokens"]


async def test_plan_says_in_words_which_reading_and_how_to_change_it(capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    assert await amain(["plan", TRACE]) == 0
    said = capsys.readouterr().out
    assert "store none" in said and "127.0.0.1 is not OpenAI's or Azure OpenAI's" in said
    assert "--store hosted" in said


@pytest.mark.parametrize("serves", ["responses", "chat"])
async def test_canary_says_the_mode_a_run_will_use_why_and_the_flag_that_changes_it(serves, monkeypatch, capsys):
    only = {"chat_api": False} if serves == "responses" else {"responses_api": False}
    async with OpenAITestServer(hosted_store=False, **only) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert await amain(["canary", "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["store"] == "none" and said["api"] == serves
    assert "127.0.0.1" in said["store_reason"] and "--store hosted" in said["store_change"]
    assert [k for k, n in server.stats.items() if n and ("/v1/files" in k or "/v1/vector_stores" in k)] == []


@pytest.mark.parametrize("serves", ["responses", "chat"])
async def test_inputs_json_records_the_store_and_the_wire_the_results_were_made_over(serves, tmp_path, monkeypatch):
    only = {"chat_api": False} if serves == "responses" else {"responses_api": False}
    async with OpenAITestServer(hosted_store=False, **only) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        out = tmp_path / "out"
        assert await amain(["run", TRACE, "--expect", str(FIX / "expectation.json"), "--out", str(out)]) == 0
        recorded = json.loads((out / "inputs.json").read_text())
        assert (recorded["store"], recorded["api"]) == ("none", serves)
        # a rerun resumes: the wire is recorded, not compared (found again on the first call)
        assert await amain(["run", TRACE, "--expect", str(FIX / "expectation.json"), "--out", str(out)]) == 0
    assert json.loads((out / "inputs.json").read_text())["api"] == serves


async def test_eval_with_search_calls_offers_search_trace_as_run_does(tmp_path, monkeypatch):
    async with OpenAITestServer(hosted_store=False, chat_api=False) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        out = tmp_path / "e"
        args = ["eval", "labels", str(LABELS / "traces"), str(LABELS / "labels"), "--out", str(out)]
        assert await amain([*args, "--search-calls", "1"]) == 0
    assert server.stats["function calls"] == 4  # one a stage
    followed = [b for b in server.response_bodies if any(i.get("type") == "function_call_output" for i in b["input"])]
    assert len(followed) == 4 and all("search_trace" in json.dumps(b["tools"]) for b in followed)


async def test_the_mcp_analyze_tool_takes_search_calls_and_the_server_a_default(tmp_path):
    mcp = pytest.importorskip("mcp", reason="the mcp extra is not installed")
    from mcp.client.stdio import stdio_client

    root = tmp_path / "work"
    root.mkdir()
    (root / "trace.json").write_bytes((FIX / "otlp_trace.json").read_bytes())
    async with OpenAITestServer(hosted_store=False, chat_api=False) as server:
        env = {**os.environ, "OPENAI_API_KEY": "sk-local", "OPENAI_BASE_URL": server.base_url}
        args = ["-m", "refinery", "mcp", "--root", str(root), "--search-calls", "1"]
        params = mcp.StdioServerParameters(command=sys.executable, args=args, env=env)
        async with stdio_client(params) as (read, write), mcp.ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            schema = getattr(tools["analyze_trace"], "input_schema", None) or tools["analyze_trace"].inputSchema
            assert "search_calls" in schema["properties"]
            await session.call_tool("analyze_trace", {"trace": "trace.json", "out": "a"})
            assert server.stats["function calls"] == 4  # the server's default: one a stage
            await session.call_tool("analyze_trace", {"trace": "trace.json", "out": "b", "search_calls": 0})
            assert server.stats["function calls"] == 4  # this call asked for none
    assert (root / "a" / "report.md").is_file() and (root / "b" / "report.md").is_file()


def test_eval_and_mcp_take_search_calls_on_the_command_line():
    from refinery.app.cli_args import build_parser

    parser = build_parser()
    evals = parser.parse_args(["eval", "labels", "T", "L", "--out", "o", "--search-calls", "2"])
    mcp = parser.parse_args(["mcp", "--root", ".", "--search-calls", "3"])
    assert (evals.search_calls, mcp.search_calls) == (2, 3)


async def test_store_hosted_on_a_server_without_one_stops_with_one_line_naming_the_way_out(
    tmp_path, monkeypatch, capsys
):
    async with OpenAITestServer(hosted_store=False) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        argv = ["run", TRACE, "--expect", str(FIX / "expectation.json"), "--out", str(tmp_path / "o")]
        assert await amain([*argv, "--store", "hosted"]) == 3
    [line] = [x for x in capsys.readouterr().err.splitlines() if x.startswith("refinery: error:")]
    assert "has no Files or Vector Stores (HTTP 404" in line and "--store none" in line
    assert server.stats["POST /v1/responses"] == 0  # stopped before any stage was paid for


@pytest.mark.parametrize(
    ("base", "field"),
    [("https://api.openai.com/v1", "max_completion_tokens"), ("http://localhost:11434/v1", "max_tokens")],
)
async def test_the_chat_wire_sends_the_budget_by_the_name_the_endpoint_reads(base, field, mocked, spec):
    from refinery.wire.responses_client import ResponsesClient
    from refinery.wire.responses_request_builder import build_canary_test_body

    answer = {"choices": [{"message": {"content": '{"reply": "PONG"}'}, "finish_reason": "stop"}], "usage": {}}
    mocked.post(f"{base}/chat/completions", payload=answer)
    async with ResponsesClient(api_key="sk-x", base_url=base, api="chat") as client:
        await client.create_json(build_canary_test_body("o4-mini"))
    [(_, calls)] = [(k, v) for k, v in mocked.requests.items() if k[0] == "POST"]
    sent = calls[0].kwargs["json"]
    assert sent[field] == build_canary_test_body("o4-mini")["max_output_tokens"]
    [other] = {"max_tokens", "max_completion_tokens"} - {field}
    assert other not in sent  # one name, never both
    assert spec.validate(sent, "CreateChatCompletionRequest") == []
