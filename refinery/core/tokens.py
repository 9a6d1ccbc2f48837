"""Rough token arithmetic, good enough for budgets and plans (no tokenizer dependency).

A count of the pieces a BPE tokenizer makes — words (long ones in parts), digit groups, short
punctuation runs — which tracks OpenAI's tokenizers within about 15 % on prose, JSON and code,
where four characters a token undercounted prose with numbers by a quarter. The estimates are
used for planning and admission, and are corrected by the `usage` the API reports.
"""

from __future__ import annotations

import json
import re
from typing import Any

from refinery.core.context_windows import chunk_allowance

CHARS_PER_TOKEN = 4
# the counts an API call's usage reports, as artifacts and usage summaries record them
TOKEN_COUNTS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "total_tokens")


_PIECE = re.compile(r"[A-Za-z]{1,10}|[0-9]{1,3}|[^\sA-Za-z0-9]{1,2}|\s{2,}|[^\S ]")
_SPACE = re.compile(r"\s+")
_WINDOW = 1 << 16


def estimate_tokens(text: str) -> int:
    if len(text) < 64:
        return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN
    # one linear pass of the regex engine, counted by `subn` (no string made for each piece, as
    # `findall` made; each alternative is one character class, so nothing backtracks), a window
    # at a time, each ending after a run of white space (no piece spans one's end)
    count, start, n = 0, 0, len(text)
    while start < n:
        end = start + _WINDOW
        if end < n:
            space = _SPACE.search(text, end)
            end = space.end() if space else n  # after a whole run of white space: a run is one piece
        count += _PIECE.subn("", text[start:end])[1]
        start = end
    return count


def estimate_body_tokens(body: dict[str, Any]) -> int:
    """Input tokens a Responses body will cost before retrieval adds its chunks."""
    texts = [
        part.get("text", "")
        for msg in body.get("input", [])
        if isinstance(msg, dict)
        for part in msg.get("content", [])
        if isinstance(part, dict)
    ]
    schema = json.dumps(((body.get("text") or {}).get("format") or {}).get("schema") or {}, separators=(",", ":"))
    return sum(estimate_tokens(t) for t in texts) + estimate_tokens(schema)


# what `file_search` returns when a request does not say (OpenAI's default `max_num_results`)
DEFAULT_MAX_NUM_RESULTS = 10


def worst_case_tokens(body: dict[str, Any]) -> int:
    """The most a Responses call can be charged: its input, every `file_search` filling its
    `max_num_results` with whole chunks (charged when the call completes, not at admission), and
    its whole `max_output_tokens` (4,096 when unset). What the rate budget reserves: a
    reservation smaller than the charge lets the server's bucket fall below the client's view
    for as long as the answer takes to reach the client."""
    retrieval = sum(
        chunk_allowance(int(tool.get("max_num_results") or DEFAULT_MAX_NUM_RESULTS))
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and tool.get("type") == "file_search"
    )
    return estimate_body_tokens(body) + retrieval + int(body.get("max_output_tokens") or 4096)


def trim_to_tokens(text: str, max_tokens: int) -> str:
    """`text` cut to about `max_tokens`, with a marker saying how much was cut."""
    limit = max_tokens * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [trimmed: {len(text) - limit} of {len(text)} characters cut to fit the token budget]"
