"""Chat Completions as a second wire: a stage's Responses body sent as `POST /v1/chat/completions`,
and the answer read back in the Responses shape. Pure functions.

Why translate rather than build a second set of bodies: stages build one request (the Responses
body, `wire.responses_request_builder`), and everything that reads an answer — the output text,
a refusal, a cut-off answer, usage, the larger budget, the format re-ask — is written once for
that shape. So the chat wire turns the body into its Chat Completions form on the way out (the
messages, the strict schema as Chat Completions nests it: `response_format: {type: "json_schema",
json_schema: {name, schema, strict}}`, `max_completion_tokens`, `reasoning_effort`) and the
answer into a Responses object on the way back (`finish_reason: "length"` is an incomplete answer
cut by `max_output_tokens`, as on the Responses wire). A body with tools is refused: the chat wire
has no `file_search`, and a stage that reads a hosted store cannot be sent through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from refinery.errors import RequestBuildError

__all__ = ["chat_body", "as_response", "unfenced"]

# Responses parameters with no Chat Completions counterpart that a stage body may carry: dropped
_DROPPED = frozenset({"include", "store", "truncation"})


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text", "")) for p in content or [] if isinstance(p, Mapping))


def chat_body(body: Mapping[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """The Chat Completions body of a Responses body (`strict=False`: the schema is sent without
    `strict`, for a server that constrains output by the schema but refuses the flag)."""
    if body.get("tools"):
        raise RequestBuildError(
            "tools: the chat completions wire has no file_search; read the trace inline (store='none')"
        )
    unknown = set(body) - {"model", "input", "instructions", "text", "max_output_tokens", "temperature", "reasoning"}
    if unknown - _DROPPED:
        raise RequestBuildError(f"request: no chat completions form for {sorted(unknown - _DROPPED)}")
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": str(body["instructions"])})
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    for item in items if isinstance(items, list) else []:
        role = item.get("role", "user")
        messages.append(
            {
                "role": role if role in ("system", "developer", "assistant") else "user",
                "content": _text_of(item.get("content")),
            }
        )
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
        out["max_completion_tokens"] = int(body["max_output_tokens"])
    if body.get("temperature") is not None:
        out["temperature"] = body["temperature"]
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        out["reasoning_effort"] = effort
    return out


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
    usage = chat.get("usage") or {}
    prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {
        "id": chat.get("id"),
        "object": "response",
        "model": chat.get("model"),
        "status": "incomplete" if reason else "completed",
        "incomplete_details": {"reason": reason} if reason else None,
        "output": [{"type": "message", "role": "assistant", "content": content}],
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
