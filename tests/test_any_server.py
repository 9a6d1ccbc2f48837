"""Running where the user's model is (issue 32): Chat Completions as a second wire, a reading with no
hosted store, and `auto` choosing both by what the endpoint serves — against the local server
playing vLLM-like (Responses, no Files/Vector Stores/file_search) and chat-only servers."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.analysis.stages import STAGE_BY_KEY, RequestContext, build_request
from refinery.app.cli import amain
from refinery.errors import IncompleteResponseError, RefusalError, RequestBuildError, UserInputError
from refinery.testing.faults import Fault
from refinery.testing.server import OpenAITestServer
from refinery.wire.chat_wire import as_response, chat_body, unfenced
from refinery.wire.endpoint_offer import chat_token_field, store_choice
from refinery.wire.response_output import CallUsage, output_text
from refinery.wire.responses_client import ResponsesClient
from refinery.wire.responses_request_builder import CANARY_SCHEMA, build_canary_test_body
from tests.fake_openai import FakeOpenAI
from tests.fixtures_traces import EXPECTATION, make_trace

FIX = Path(__file__).parent / "fixtures"
RUN = ["run", str(FIX / "langsmith_runs.json"), "--expect", str(FIX / "expectation.json")]


def stage_body(model: str = "gpt-4o", **kw) -> dict:
    return build_request(STAGE_BY_KEY["stage2"], RequestContext(model, "What went wrong?", **kw))


def sent_to_store(server: OpenAITestServer) -> list[str]:
    """Every request that went to /v1/files or /v1/vector_stores (a GET asking what is there too)."""
    return [k for k, n in server.stats.items() if n and ("/v1/files" in k or "/v1/vector_stores" in k)]


# --- the chat wire, pure --------------------------------------------------------------------------
def test_a_stage_body_as_chat_completions_is_valid_by_the_spec_with_the_nested_strict_schema(spec):
    body = chat_body(stage_body())
    assert spec.validate(body, "CreateChatCompletionRequest") == []
    assert set(body) <= spec.declared("CreateChatCompletionRequest")
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and set(fmt["json_schema"]) == {"name", "schema", "strict"}
    assert fmt["json_schema"]["strict"] is True and fmt["json_schema"]["name"] == "stage2_output"
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"] == "What went wrong?"
    assert body["max_completion_tokens"] == STAGE_BY_KEY["stage2"].max_output_tokens


def test_a_reasoning_model_gets_reasoning_effort_and_no_temperature_on_the_chat_wire(spec):
    body = chat_body(stage_body("o4-mini", reasoning_effort="low"))
    assert body["reasoning_effort"] == "low" and "temperature" not in body
    assert spec.validate(body, "CreateChatCompletionRequest") == []


def test_a_body_that_searches_a_store_cannot_go_by_chat_completions():
    with pytest.raises(RequestBuildError, match="file_search"):
        chat_body(stage_body(store_id="vs_1"))


def test_a_chat_answer_reads_as_a_responses_answer_with_its_usage():
    chat = {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [{"message": {"content": '{"a": 1}'}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 7,
            "total_tokens": 17,
            "completion_tokens_details": {"reasoning_tokens": 3},
        },
    }
    response = as_response(chat)
    assert output_text(response) == '{"a": 1}'
    usage = CallUsage.from_response(response, "x")
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens, usage.total_tokens) == (10, 7, 3, 17)


def test_a_chat_answer_cut_by_its_budget_is_incomplete_and_a_refusal_is_a_refusal():
    cut = as_response({"choices": [{"message": {"content": '{"a'}, "finish_reason": "length"}]})
    with pytest.raises(IncompleteResponseError) as exc:
        output_text(cut)
    assert exc.value.reason == "max_output_tokens"
    with pytest.raises(RefusalError):
        output_text(as_response({"choices": [{"message": {"content": None, "refusal": "no"}}]}))


def test_json_in_a_code_fence_is_unfenced_and_other_text_is_left_alone():
    assert unfenced('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert unfenced('{"a": "```"}') == '{"a": "```"}'


# --- the chat wire, live against the test server -----------------------------------------------
async def test_the_chat_client_answers_strict_json_with_usage_and_the_server_judges_it_by_the_spec():
    async with OpenAITestServer(responses_api=False) as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url, api="chat") as client:
            answer = await client.create_json(build_canary_test_body("gpt-4o"), label="canary")
    assert answer.data == {"reply": "PONG"} and answer.usage.input_tokens > 0
    assert server.stats["POST /v1/chat/completions"] == 1 and server.stats["400 invalid body"] == 0
    assert server.chat_bodies[0]["response_format"]["json_schema"]["strict"] is True


async def test_a_429_on_chat_completions_is_waited_out_by_the_same_transport():
    async with OpenAITestServer(responses_api=False) as server:
        server.inject(Fault("rate_limit", path="/v1/chat/completions", retry_after_ms=10))
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url, api="chat") as client:
            answer = await client.create_json(build_canary_test_body("gpt-4o"))
    assert answer.data == {"reply": "PONG"}
    assert server.stats["fault rate_limit"] == 1 and server.stats["POST /v1/chat/completions"] == 2


async def test_json_that_is_not_json_is_asked_for_once_more_on_the_chat_wire():
    async with OpenAITestServer(responses_api=False) as server:
        server.inject(Fault("not_json", path="/v1/chat/completions"))
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url, api="chat") as client:
            answer = await client.create_json(build_canary_test_body("gpt-4o"), CANARY_SCHEMA)
    assert set(answer.data) == {"reply"} and server.stats["POST /v1/chat/completions"] == 2
    assert "Return ONLY the exact JSON again" in server.chat_bodies[1]["messages"][-1]["content"]


async def test_a_reasoning_model_cut_off_by_its_thinking_is_retried_with_a_larger_budget_on_chat():
    async with OpenAITestServer(responses_api=False, reasoning_tokens=30) as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url, api="chat") as client:
            answer = await client.create_json(build_canary_test_body("o4-mini"))
    assert answer.data == {"reply": "PONG"} and answer.usage.reasoning_tokens == 60
    assert [b["max_tokens"] for b in server.chat_bodies] == [32, 256]  # not OpenAI's host: the name it reads


async def test_a_server_not_held_to_the_schema_answers_in_a_fence_and_the_json_is_still_read():
    async with OpenAITestServer(responses_api=False, strict=False) as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url, api="chat") as client:
            answer = await client.create_json(build_canary_test_body("gpt-4o"))
    assert answer.data == {"reply": "PONG"} and server.stats["POST /v1/chat/completions"] == 1


async def test_calls_sent_at_once_to_a_chat_only_server_all_find_chat():
    async with OpenAITestServer(responses_api=False, hosted_store=False) as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url, api="auto") as client:
            answers = await asyncio.gather(*(client.create_json(build_canary_test_body("gpt-4o")) for _ in range(4)))
    assert all(a.data == {"reply": "PONG"} for a in answers) and server.stats["POST /v1/chat/completions"] == 4


async def test_auto_finds_a_chat_only_server_on_the_first_call_and_stays_on_chat():
    async with OpenAITestServer(responses_api=False, hosted_store=False) as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url, api="auto") as client:
            assert client.wire is None
            for _ in range(2):
                await client.create_json(build_canary_test_body("gpt-4o"))
            assert client.wire == "chat"
    assert server.stats["POST /v1/responses"] == 1 and server.stats["POST /v1/chat/completions"] == 2


OPENAI_OR_AZURE = [
    "https://api.openai.com/v1",
    "https://eu.api.openai.com/v1",
    "https://acme.openai.azure.com/openai/v1",
    "https://acme.cognitiveservices.azure.com/openai/v1",
    "https://acme.services.ai.azure.com/openai/v1",
]
ANY_OTHER = [
    "http://127.0.0.1:8000/v1",  # vLLM, llama.cpp, LM Studio on this machine
    "http://localhost:11434/v1",  # Ollama
    "https://openrouter.ai/api/v1",
    "https://llm-gateway.example.com/v1",  # a gateway, even one in front of OpenAI: --store hosted
    "https://api.openai.com.example.net/v1",  # a name that only starts like OpenAI's
]


@pytest.mark.parametrize("url", OPENAI_OR_AZURE)
def test_auto_chooses_the_hosted_store_on_openai_and_azure_hosts(url):
    choice = store_choice("auto", url)
    assert choice.store == "hosted" and "Files and Vector Stores" in choice.reason
    assert "--store none" in choice.change


@pytest.mark.parametrize("url", ANY_OTHER)
def test_auto_reads_inline_on_every_other_host_and_says_how_to_ask_for_the_store(url):
    choice = store_choice("auto", url)
    assert choice.store == "none" and "/v1/vector_stores" in choice.reason
    assert "--store hosted" in choice.change


def test_azure_by_its_backend_or_an_explicit_choice_is_taken_as_given():
    assert store_choice("auto", "https://proxy.corp.example/openai/v1", backend="azure").store == "hosted"
    assert store_choice("hosted", "http://127.0.0.1:8000/v1").store == "hosted"
    assert store_choice("none", "https://api.openai.com/v1").store == "none"
    assert store_choice("auto", "https://api.openai.com/v1", api="chat").store == "none"  # chat has no file_search


@pytest.mark.parametrize("url", ANY_OTHER)
def test_the_chat_wire_names_the_budget_max_tokens_off_openai_and_max_completion_tokens_on_it(url, spec):
    assert chat_token_field(url) == "max_tokens"
    for openai in OPENAI_OR_AZURE:
        assert chat_token_field(openai) == "max_completion_tokens"
    elsewhere = chat_body(stage_body(), token_field=chat_token_field(url))
    assert elsewhere["max_tokens"] == STAGE_BY_KEY["stage2"].max_output_tokens
    assert "max_completion_tokens" not in elsewhere
    assert spec.validate(elsewhere, "CreateChatCompletionRequest") == []


async def test_auto_on_openai_uploads_to_the_hosted_store_with_no_request_asking_first(mocked, tmp_path):
    fake = FakeOpenAI(mocked, base="https://api.openai.com/v1")  # no handler answers a GET of the lists
    async with ResponsesClient(api_key="sk-x", base_url="https://api.openai.com/v1") as client:
        analyst = StagedFailureAnalyst(client=client, artifacts_dir=tmp_path)
        assert analyst.store_choice().store == "hosted"
        result = await analyst.analyze(make_trace(), EXPECTATION)
    assert result.store_id == "vs_test" and result.stage_metadata["stage2"]["reading"] == "hosted"
    assert fake.bodies[1]["tools"][0]["vector_store_ids"] == ["vs_test"]  # Stage 2 (Stage 1 holds every file)
    sent = [(method, str(url)) for method, url in mocked.requests]
    assert not [u for m, u in sent if m == "GET" and u.endswith("?limit=1")]  # the probe there was


async def test_auto_on_azure_from_the_environment_chooses_the_store_with_no_request(mocked, monkeypatch):
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://acme.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key")
    assert StagedFailureAnalyst().store_choice().store == "hosted"  # no client built yet: read as it will be
    async with ResponsesClient() as client:
        assert StagedFailureAnalyst(client=client).store_choice().store == "hosted"
    assert mocked.requests == {}


async def test_file_search_is_refused_by_a_server_without_a_store():
    async with OpenAITestServer(hosted_store=False) as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
            with pytest.raises(Exception, match="file_search"):
                await client.create_json(stage_body(store_id="vs_1"))


# --- the analysis with no store ------------------------------------------------------------------
def test_store_none_with_a_store_id_is_refused_in_one_line():
    with pytest.raises(UserInputError, match="store='none'"):
        StagedFailureAnalyst(store="none", vector_store_id="vs_1")
    with pytest.raises(UserInputError, match="store must be one of"):
        StagedFailureAnalyst(store="local")


async def test_store_none_uploads_nothing_even_where_the_server_has_a_store(spec):
    async with OpenAITestServer() as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
            analyst = StagedFailureAnalyst(client=client, store="none")
            result = await analyst.analyze(make_trace(), EXPECTATION)
    assert server.files == {} and server.stores == {} and server.stats["GET /v1/vector_stores"] == 0
    assert len(server.response_bodies) == 4
    assert all("tools" not in b and spec.validate(b) == [] for b in server.response_bodies)
    stage2_text = server.response_bodies[1]["input"][-1]["content"][0]["text"]
    assert "no file_search tool" in stage2_text and "[run_id: run-2]" in stage2_text  # the failed run, inline
    assert result.stage_metadata["stage2"]["reading"] == "none"
    assert all(not v["unverified"] for v in result.verification.values())


async def test_a_small_budget_cuts_what_is_inline_with_the_renderers_cut_note():
    trace = make_trace(n_runs=3)
    trace.runs[1].error = "Traceback: " + "frame line\n" * 3000  # a long failed run
    async with OpenAITestServer(hosted_store=False) as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url) as client:
            analyst = StagedFailureAnalyst(client=client, context_window=16_000)
            await analyst.analyze(trace, EXPECTATION)
    stage2_text = server.response_bodies[1]["input"][-1]["content"][0]["text"]
    assert "characters cut here" in stage2_text and "[run_id: run-2]" in stage2_text


# --- the command line with no flag, against servers without a store -----------------------------
@pytest.mark.parametrize("serves", ["responses", "chat"])
async def test_run_with_no_flag_finishes_with_verified_citations_and_uploads_nothing(
    serves, tmp_path, monkeypatch, spec
):
    only = {"chat_api": False} if serves == "responses" else {"responses_api": False}
    async with OpenAITestServer(hosted_store=False, **only) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        out = tmp_path / "out"
        assert await amain([*RUN, "--out", str(out)]) == 0
    assert sent_to_store(server) == [] and server.stats["GET /v1/files"] == 0
    meta = json.loads((out / "stage3_diagnosis.json").read_text())["meta"]
    assert meta["reading"] == "none" and meta["api"] == serves
    assert meta["verification"]["unverified"] == [] and meta["verification"]["cited"] > 0
    report = (out / "report.md").read_text()
    assert "Read with: no store (read inline)" in report
    assert server.stats["400 invalid body"] == 0
    assert all(spec.validate(b, "CreateChatCompletionRequest") == [] for b in server.chat_bodies)
    assert all(spec.validate(b) == [] for b in server.response_bodies)
    assert json.loads((out / "inputs.json").read_text())["store"] == "none"


async def test_a_folder_read_inline_is_not_resumed_from_a_hosted_store(tmp_path, openai_env):
    out = tmp_path / "out"
    assert await amain([*RUN, "--out", str(out), "--store", "none", "--stages", "1"]) == 0
    assert await amain([*RUN, "--out", str(out), "--store", "hosted"]) == 2  # results would mix
    assert openai_env.files == {}


@pytest.mark.parametrize("serves", ["responses", "chat"])
async def test_batch_and_eval_with_no_flag_finish_against_a_server_without_a_store(serves, tmp_path, monkeypatch):
    only = {"chat_api": False} if serves == "responses" else {"responses_api": False}
    traces = tmp_path / "traces"
    traces.mkdir()
    for name in ("langsmith_runs.json", "otlp_trace.json"):
        (traces / name).write_bytes((FIX / name).read_bytes())
    async with OpenAITestServer(hosted_store=False, **only) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert await amain(["batch", str(traces), "--out", str(tmp_path / "b"), "--no-llm"]) == 0
        labels = FIX / "labels"
        out = tmp_path / "e"
        assert await amain(["eval", "labels", str(labels / "traces"), str(labels / "labels"), "--out", str(out)]) == 0
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert all(o["status"] == "done" for o in summary["outcomes"].values())
    assert json.loads((out / "eval.json").read_text())["analysed"] == 1
    meta = json.loads(next((out / "runs").rglob("stage3_diagnosis.json")).read_text())["meta"]
    assert meta["reading"] == "none" and meta["api"] == serves and meta["verification"]["unverified"] == []
    assert sent_to_store(server) == []


async def test_canary_says_what_a_chat_only_server_serves_and_the_mode_a_run_will_use(tmp_path, monkeypatch, capsys):
    async with OpenAITestServer(responses_api=False, hosted_store=False) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert await amain(["canary"]) == 0
    said = capsys.readouterr().out
    assert "POST /v1/chat/completions" in said and "--store none" in said and "--api chat" in said


async def test_plan_with_store_none_shows_bodies_without_tools(capsys):
    assert await amain(["plan", str(FIX / "langsmith_runs.json"), "--store", "none", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["store"] == "none"
    assert all("tools" not in r["body"] for r in plan["requests"])
    stage2 = next(r for r in plan["requests"] if r["call"] == "stage2")["body"]
    assert "Trace files (inline)" in stage2["input"][-1]["content"][0]["text"]


@pytest.mark.parametrize("serves", ["responses", "chat"])
async def test_the_mcp_tools_plan_and_analyse_against_a_server_without_a_store(serves, tmp_path):
    mcp = pytest.importorskip("mcp", reason="the mcp extra is not installed")
    from mcp.client.stdio import stdio_client

    root = tmp_path / "work"
    root.mkdir()
    (root / "trace.json").write_bytes((FIX / "otlp_trace.json").read_bytes())
    only = {"chat_api": False} if serves == "responses" else {"responses_api": False}
    async with OpenAITestServer(hosted_store=False, **only) as server:
        env = {**os.environ, "OPENAI_API_KEY": "sk-local", "OPENAI_BASE_URL": server.base_url}
        params = mcp.StdioServerParameters(
            command=sys.executable, args=["-m", "refinery", "mcp", "--root", str(root)], env=env
        )
        async with stdio_client(params) as (read, write), mcp.ClientSession(read, write) as session:
            await session.initialize()
            plan = await session.call_tool("plan_trace", {"trace": "trace.json", "store": "none"})
            assert json.loads(plan.content[0].text)["store"] == "none"
            verdict = await session.call_tool("analyze_trace", {"trace": "trace.json", "out": "out"})
            assert json.loads(verdict.content[0].text)["reading"] == "none"
    assert (root / "out" / "report.md").is_file() and sent_to_store(server) == []
    assert server.stats[f"POST /v1/{'responses' if serves == 'responses' else 'chat/completions'}"] >= 4


# --- search_trace: a function the model may call, answered from an FTS5 index -------------------
def test_the_trace_search_finds_a_run_by_the_words_of_its_error():
    from refinery.analysis.trace_search import TraceSearch
    from refinery.analysis.verification import RunTexts
    from refinery.traces.spool import upload_files_for

    files, _ = upload_files_for(make_trace(n_runs=5, fail_at=4))
    search = TraceSearch(RunTexts(files), max_calls=2)
    found = json.loads(search.answer(json.dumps({"query": "KeyError order_id"})))
    assert found["results"][0]["run_id"] == "run-4" and "order_id" in found["results"][0]["text"]
    assert json.loads(search.answer("not json"))["error"]
    search.close()


@pytest.mark.parametrize("serves", ["responses", "chat"])
async def test_with_search_calls_the_model_searches_the_trace_and_gets_run_sections_back(serves, spec):
    only = {"chat_api": False} if serves == "responses" else {"responses_api": False}
    async with OpenAITestServer(hosted_store=False, **only) as server:
        async with ResponsesClient(api_key="sk-x", base_url=server.base_url, api=serves) as client:
            analyst = StagedFailureAnalyst(client=client, search_calls=2)
            result = await analyst.analyze(make_trace(), EXPECTATION)
    assert server.stats["function calls"] == 4  # one a stage, then the stand-in answers
    assert result.diagnosis is not None and all(not v["unverified"] for v in result.verification.values())
    if serves == "responses":
        followed = [
            b for b in server.response_bodies if any(i.get("type") == "function_call_output" for i in b["input"])
        ]
        assert len(followed) == 4 and all(spec.validate(b) == [] for b in server.response_bodies)
        output = next(i for i in followed[1]["input"] if i.get("type") == "function_call_output")["output"]
    else:
        followed = [b for b in server.chat_bodies if any(m["role"] == "tool" for m in b["messages"])]
        assert len(followed) == 4
        assert all(spec.validate(b, "CreateChatCompletionRequest") == [] for b in server.chat_bodies)
        output = next(m for m in followed[1]["messages"] if m["role"] == "tool")["content"]
    assert "[run_id: run-2]" in json.loads(output)["results"][0]["text"]
    assert all("search_trace" in json.dumps(b["tools"]) for b in followed)


async def test_function_calls_are_bounded_then_the_model_must_answer():
    class Runner:
        max_calls = 2

        def answer(self, arguments):
            return '{"results": []}'

    sent = []

    async def send(body):
        sent.append(body)
        if body.get("tool_choice") == "none":
            return {"output": [{"type": "message", "content": [{"type": "output_text", "text": "{}"}]}]}
        return {
            "output": [{"type": "function_call", "call_id": f"c{len(sent)}", "name": "search_trace", "arguments": "{}"}]
        }

    first = await send({"input": [], "tools": [{"type": "function", "name": "search_trace"}]})
    body, response = await ResponsesClient._answer_calls(sent[0], first, Runner(), send)
    assert len(sent) == 3 and sent[-1]["tool_choice"] == "none"
    assert [i["type"] for i in body["input"]].count("function_call_output") == 2


async def test_run_with_search_calls_offers_search_trace_where_the_server_takes_function_tools(tmp_path, monkeypatch):
    async with OpenAITestServer(hosted_store=False, chat_api=False) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert await amain([*RUN, "--out", str(tmp_path / "out"), "--search-calls", "1"]) == 0
    assert server.stats["function calls"] == 4 and sent_to_store(server) == []
