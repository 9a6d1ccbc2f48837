"""Rough token arithmetic, good enough for budgets and plans (no tokenizer dependency).

About four characters a token for English text and JSON; the estimates here are used for
planning and admission, and are corrected by the `usage` the API reports.
"""

from __future__ import annotations

import json
from typing import Any

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def estimate_body_tokens(body: dict[str, Any]) -> int:
    """Input tokens a Responses body will cost before retrieval adds its chunks."""
    texts = [part.get("text", "") for msg in body.get("input", []) if isinstance(msg, dict) for part in msg.get("content", []) if isinstance(part, dict)]
    schema = json.dumps(((body.get("text") or {}).get("format") or {}).get("schema") or {}, separators=(",", ":"))
    return sum(estimate_tokens(t) for t in texts) + estimate_tokens(schema)


def trim_to_tokens(text: str, max_tokens: int) -> str:
    """`text` cut to about `max_tokens`, with a marker saying how much was cut."""
    limit = max_tokens * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [trimmed: {len(text) - limit} of {len(text)} characters cut to fit the token budget]"
