"""Chat Completions as a second wire: a stage's Responses body sent as `POST /v1/chat/completions`,
and the answer read back in the Responses shape. Pure functions.

Why translate rather than build a second set of bodies: stages build one request (the Responses
body, `wire.responses_request_builder`), and everything that reads an answer — the output text,
a refusal, a cut-off answer, usage, the larger budget, the format re-ask — is written once for
that shape. So the chat wire turns the body into its Chat Completions form on the way out (the
messages, the strict schema as Chat Completions nests it: `response_format: {type: "json_schema",
json_schema: {name, schema, strict}}`, the output budget, `reasoning_effort`) and the
answer into a Responses object on the way back (`finish_reason: "length"` is an incomplete answer
cut by `max_output_tokens`, as on the Responses wire). A body with tools is refused: the chat wire
has no `file_search`, and a stage that reads a hosted store cannot be sent through it.

The output budget goes by the name the endpoint reads (`token_field`): OpenAI and Azure take
`max_completion_tokens` and refuse `max_tokens` for reasoning models; Ollama, LM Studio,
OpenRouter and llama.cpp before 2026 read `max_tokens` and silently ignore the other (an answer
then runs to the context's end). Only one is sent: a server that forbids unknown fields refuses
the one it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from refinery.errors import RequestBuildError

__all__ = ["TOKEN_FIELDS", "chat_body", "as_response", "unfenced"]

TOKEN_FIELDS = ("max_completion_tokens", "max_tokens")

# Responses parameters with no Chat Completions counterpart that a stage body may carry: dropped
_DROPPED = frozenset({"include", "store", "truncation"})


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text", "")) for p in content or [] if isinstance(p, Mapping))


def chat_body(
    body: Mapping[str, Any], *, strict: bool = True, token_field: str = "max_completion_tokens"
) -> dict[str, Any]:
    """The Chat Completions body of a Responses body (`strict=False`: the schema is sent without
    `strict`, for a server that constrains output by the schema but refuses the flag), its output
    budget named `token_field` (one of `TOKEN_FIELDS`). Function tools and the calls and outputs
    in the input go as Chat Completions has them."""
    if token_field not in TOKEN_FIELDS:
        raise RequestBuildError(f"token_field must be one of {', '.join(TOKEN_FIELDS)}, got {token_field!r}")
    tools = list(body.get("tools") or [])
    if any(t.get("type") != "function" for t in tools):
        raise RequestBuildError(
            "tools: the chat completions wire has no file_search; read the trace inline (store='none')"
        )
    known = {"model", "input", "instructions", "text", "max_output_tokens", "temperature", "reasoning", "tools"}
    unknown = set(body) - known - {"tool_choice"} - _DROPPED
    if unknown:
        raise RequestBuildError(f"request: no chat completions form for {sorted(unknown)}")
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": str(body["instructions"])})
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    for item in items if isinstance(items, list) else []:
        messages.extend(_chat_messages(item, messages))
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    fmt = (body.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        schema: dict[str, Any] = {"name": fmt.get("name", "output"), "schema": fmt.get("schema") or {}}
        if strict:
            schema["strict"] = bool(fmt.get("strict", True))
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif fmt.get("type") == "json_object":
        out["response_format"] = {"type": "json_object"}
    if body.get("max_output_tokens") is not None:
        out[token_field] = int(body["max_output_tokens"])
    if body.get("temperature") is not None:
        out["temperature"] = body["temperature"]
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        out["reasoning_effort"] = effort
    if tools:
        out["tools"] = [
            {
                "type": "function",
                "function": {k: t[k] for k in ("name", "description", "parameters", "strict") if k in t},
            }
            for t in tools
        ]
    if body.get("tool_choice") in ("none", "auto", "required"):
        out["tool_choice"] = body["tool_choice"]
    return out


def _chat_messages(item: Mapping[str, Any], before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat messages of one Responses input item (a function call joins the assistant message
    of calls just before it)."""
    kind = item.get("type", "message")
    if kind == "function_call":
        call = {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]},
        }
        if (
            before
            and before[-1].get("role") == "assistant"
            and "tool_calls" in before[-1]
            and not before[-1].get("content")
        ):
            before[-1]["tool_calls"].append(call)
            return []
        return [{"role": "assistant", "content": None, "tool_calls": [call]}]
    if kind == "function_call_output":
        return [{"role": "tool", "tool_call_id": item["call_id"], "content": str(item.get("output", ""))}]
    role = item.get("role", "user")
    return [
        {
            "role": role if role in ("system", "developer", "assistant") else "user",
            "content": _text_of(item.get("content")),
        }
    ]


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def as_response(chat: Any) -> dict[str, Any]:
    """A chat completion read as the Responses object `response_output` reads: its message's text
    (or refusal) as the output, `finish_reason` as the status, and the usage renamed."""
    chat = chat if isinstance(chat, dict) else {}
    choices = chat.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("refusal"):
        content.append({"type": "refusal", "refusal": str(message["refusal"])})
    else:
        content.append({"type": "output_text", "text": unfenced(_text_of(message.get("content"))), "annotations": []})
    reason = _INCOMPLETE.get(str(choice.get("finish_reason")))
    calls = [
        {
            "type": "function_call",
            "id": str(tc.get("id")),
            "call_id": str(tc.get("id")),
            "name": str((tc.get("function") or {}).get("name")),
            "arguments": str((tc.get("function") or {}).get("arguments") or "{}"),
            "status": "completed",
        }
        for tc in message.get("tool_calls") or []
        if isinstance(tc, dict)
    ]
    usage = chat.get("usage") or {}
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {
        "id": chat.get("id"),
        "object": "response",
        "model": chat.get("model"),
        "status": "incomplete" if reason else "completed",
        "incomplete_details": {"reason": reason} if reason else None,
        "output": [*calls, *([{"type": "message", "role": "assistant", "content": content}] if not calls else [])],
        "usage": {
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": int(usage.get("total_tokens") or prompt + completion),
            "input_tokens_details": {"cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens")},
            "output_tokens_details": {
                "reasoning_tokens": (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
            },
        },
    }


def unfenced(text: str) -> str:
    """`text` without one Markdown code fence around it (```json … ```), as a model not held to
    the schema by the server often writes JSON; any other text unchanged."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and stripped.count("```") == 2:
        first = stripped.find("\n")
        return stripped[first + 1 : -3].strip() if first > 0 else text
    return text
