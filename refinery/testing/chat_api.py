"""`POST /v1/chat/completions` on the test server, and what a server without the rest answers.

Why: vLLM, Ollama, LM Studio, llama.cpp, LiteLLM and OpenRouter answer Chat Completions (some
Responses too) and none has Files, Vector Stores or `file_search`. The server plays them: a body is
judged by the spec's `CreateChatCompletionRequest` (and the keys a hand-built body gets wrong: the
root, `response_format`, its `json_schema`), a strict schema by the strict rules, and the stand-in
model answers from the prompt as it does on `/responses`. With `strict=False` the server takes a
schema but does not hold the model to it, as a server without constrained decoding: the answer
comes in a Markdown code fence, as such models write it. The server's own code: nothing of the
client's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from refinery.testing.function_tools import chat_search_call
from refinery.testing.retrieval import count_tokens, token_starts
from refinery.testing.standin_model import reasons
from refinery.testing.store_api import _error
from refinery.testing.strict_rules import strict_violations

if TYPE_CHECKING:
    from refinery.testing.server import OpenAITestServer

__all__ = ["answer_chat", "chat_problems", "chat_texts", "create_chat_completion"]


def chat_texts(body: dict[str, Any]) -> tuple[str, str]:
    """(system text, user text) of a chat request: system/developer messages, then the rest."""
    system: list[str] = []
    user: list[str] = []
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        parts = (
            [content] if isinstance(content, str) else [p.get("text", "") for p in content or [] if isinstance(p, dict)]
        )
        (system if m.get("role") in ("system", "developer") else user).extend(parts)
    return "\n".join(system), "\n".join(user)


def chat_problems(server: OpenAITestServer, body: Any) -> list[str]:
    """What OpenAI would refuse in a chat body: the spec's schema, unknown keys, a schema that
    breaks the strict rules, parameters a model does not take."""
    if not isinstance(body, dict):
        return ["(root): expected an object"]
    problems: list[str] = []
    spec = server.spec
    fmt = body.get("response_format") if isinstance(body.get("response_format"), dict) else {}
    if spec is not None:
        extra = set(body) - spec.declared("CreateChatCompletionRequest")
        problems += [f"(root): unknown parameter(s) {sorted(extra)}"] if extra else []
        if fmt.get("type") == "json_schema":
            extra = set(fmt) - spec.declared("ResponseFormatJsonSchema")
            inner = fmt.get("json_schema") if isinstance(fmt.get("json_schema"), dict) else {}
            extra |= set(inner) - {"name", "description", "schema", "strict"}
            problems += [f"response_format: unknown parameter(s) {sorted(extra)}"] if extra else []
        problems += spec.validate(body, "CreateChatCompletionRequest")
    schema = (fmt.get("json_schema") or {}) if fmt.get("type") == "json_schema" else {}
    if schema.get("strict"):
        problems += [f"response_format.json_schema.schema: {p}" for p in strict_violations(schema.get("schema"))]
    thinks = reasons(str(body.get("model")))
    if thinks and "temperature" in body:
        problems.append("temperature: not supported with this model")
    if not thinks and "reasoning_effort" in body:
        problems.append("reasoning_effort: not supported with this model")
    return problems


async def create_chat_completion(server: OpenAITestServer, request: web.Request) -> web.StreamResponse:
    return await answer_chat(server, await request.read())


async def answer_chat(server: OpenAITestServer, raw: bytes, *, online: bool = True) -> web.StreamResponse:
    """`POST /chat/completions` on the body `raw`; `online=False` is a batch's line: the same
    answer, outside the online rate limits and armed faults (a batch has its own quota)."""
    body, fault, answer = await server.opened("/v1/chat/completions", raw, online=online)
    if answer is not None:
        return answer
    problems = chat_problems(server, body)
    if problems:
        server.stats["400 invalid body"] += 1
        return _error(400, f"Invalid request: {problems[0]}", "invalid_request_error", code="invalid_value")
    server.chat_bodies.append(body)
    system, user = chat_texts(body)
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
    max_out = body.get("max_completion_tokens") or body.get("max_tokens")
    cost = count_tokens(system + user + json.dumps(schema or {})) + int(max_out or 4096)
    admitted, rl_headers, rl_body = server.limiter.admit(cost, str(body.get("model"))) if online else (True, {}, {})
    if not admitted:
        server.stats["429 rate_limit_exceeded"] += 1
        return web.json_response(rl_body, status=429, headers=rl_headers)
    called = chat_search_call(server, body)  # a request offering search_trace: the stand-in searches first
    if called is not None:
        return web.json_response(called)
    thinking = min(server.reasoning_tokens, int(max_out)) if reasons(str(body["model"])) and max_out else 0
    room = int(max_out) - thinking if max_out else None
    kind = fault.kind if fault else None
    if schema is not None:
        fits = (lambda text: count_tokens(text) <= room) if room else None  # noqa: E731
        text = json.dumps(server.model.answer(schema, [], user, fits=fits), ensure_ascii=False)
        if not server.strict:
            text = f"```json\n{text}\n```"
    else:
        text = "PONG" if "PONG" in user else server.model.disclaimer
    if kind == "not_json":
        text = "Here is the analysis you asked for: the agent failed because of the tool call."
    elif kind == "schema_violation":
        text = json.dumps({"unexpected": "shape"})
    finish, out_tokens = "stop", count_tokens(text)
    if room is not None and out_tokens > room:
        starts = token_starts(text)
        keep = max(0, room)
        text = text[: starts[keep]] if keep < len(starts) else text
        finish, out_tokens = "length", count_tokens(text)
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if kind == "refusal":
        message = {"role": "assistant", "content": None, "refusal": "I'm sorry, I can't help with that request."}
    in_tokens = count_tokens(system + user)
    if online:
        server.limiter.charge(in_tokens + out_tokens + thinking, cost)
    server.stats["tokens used"] += in_tokens + out_tokens + thinking
    resp = {
        "id": server._new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": server._now(),
        "model": f"{body['model']}-standin",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": in_tokens,
            "completion_tokens": out_tokens + thinking,
            "total_tokens": in_tokens + out_tokens + thinking,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": thinking},
        },
    }
    server.responses.append(resp)
    return web.json_response(resp, headers={**server.limiter.headers(), "x-request-id": server._new_id("req_")})
