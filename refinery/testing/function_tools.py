"""The stand-in's use of a function tool: where a request offers `search_trace` and has had no
answer from it yet, the server answers with one call of it (as a model that searches first would),
on `/v1/responses` (a `function_call` item) or `/v1/chat/completions` (`tool_calls`); once a
result is in the request, the stand-in answers as usual. The server's own: nothing of the client's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from refinery.testing.server import OpenAITestServer

__all__ = ["chat_search_call", "responses_search_call"]

QUERY = "error failed exception"  # what the stand-in searches for


def _offered(tools: list[Any], chat: bool) -> bool:
    for tool in tools:
        fn = (tool.get("function") or {}) if chat else tool
        if isinstance(tool, dict) and tool.get("type") == "function" and fn.get("name") == "search_trace":
            return True
    return False


def responses_search_call(server: OpenAITestServer, body: dict[str, Any]) -> dict[str, Any] | None:
    """A Responses answer that calls `search_trace`, or None when the stand-in should answer."""
    items = body.get("input") if isinstance(body.get("input"), list) else []
    if not _offered(body.get("tools") or [], False) or body.get("tool_choice") == "none":
        return None
    if any(isinstance(i, dict) and i.get("type") == "function_call_output" for i in items):
        return None
    server.stats["function calls"] += 1
    call_id = server._new_id("call_")
    return {
        "id": server._new_id("resp_"),
        "object": "response",
        "created_at": server._now(),
        "status": "completed",
        "model": f"{body['model']}-standin",
        "output": [
            {
                "id": server._new_id("fc_"),
                "type": "function_call",
                "call_id": call_id,
                "name": "search_trace",
                "arguments": json.dumps({"query": QUERY}),
                "status": "completed",
            }
        ],
        "usage": {"input_tokens": 10, "output_tokens": 8, "total_tokens": 18},
    }


def chat_search_call(server: OpenAITestServer, body: dict[str, Any]) -> dict[str, Any] | None:
    """A chat completion that calls `search_trace`, or None when the stand-in should answer."""
    if not _offered(body.get("tools") or [], True) or body.get("tool_choice") == "none":
        return None
    if any(isinstance(m, dict) and m.get("role") == "tool" for m in body.get("messages") or []):
        return None
    server.stats["function calls"] += 1
    call = {"id": server._new_id("call_"), "type": "function", "function": {"name": "search_trace"}}
    call["function"]["arguments"] = json.dumps({"query": QUERY})
    return {
        "id": server._new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": server._now(),
        "model": f"{body['model']}-standin",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None},
                "finish_reason": "tool_calls",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18},
    }
