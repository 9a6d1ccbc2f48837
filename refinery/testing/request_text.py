"""What the test server reads of a `/responses` request: its system and user texts, and the tokens
it must find in the TPM bucket to be admitted. Pure, and the server's own (never the client's rules)."""

from __future__ import annotations

import json
from typing import Any

from refinery.testing.retrieval import count_tokens

__all__ = ["admission_cost", "request_texts"]


def admission_cost(body: dict[str, Any]) -> int:
    """The tokens a request must find in the TPM bucket to be admitted: its input as this server
    counts it (instructions, messages, the output schema) plus `max_output_tokens` (4,096 when
    unset) — the worst case, as OpenAI documents its rate limiting. Retrieved chunks are charged
    when the request completes."""
    system, user = request_texts(body)
    schema = json.dumps((body.get("text") or {}).get("format", {}).get("schema") or {})
    return count_tokens(system + user + schema) + int(body.get("max_output_tokens") or 4096)


def request_texts(body: dict[str, Any]) -> tuple[str, str]:
    """(system text, user text) of a request: instructions and system/developer messages, then the rest."""
    system: list[str] = []
    user: list[str] = []
    items = body.get("input")
    if isinstance(items, str):
        return "", items
    for item in items or []:
        if item.get("type") == "function_call_output":  # what a function the model called answered
            user.append(str(item.get("output", "")))
            continue
        content = item.get("content")
        parts = (
            [content] if isinstance(content, str) else [p.get("text", "") for p in content or [] if isinstance(p, dict)]
        )
        (system if item.get("role") in ("system", "developer") else user).extend(parts)
    if body.get("instructions"):
        system.insert(0, str(body["instructions"]))
    return "\n".join(system), "\n".join(user)
