"""A request's JSON body serialised off the event loop when it is big.

Why: aiohttp's `json=` serialises the body on the event loop when the request is made. A Stage 1
group read inline is up to a million tokens — about 4 MB of JSON — and its `json.dumps` held a
host's loop for over 50 ms (`bench_loop_stall.py --where` caught the loop in aiohttp's
`JsonPayload`). A body whose strings pass `BIG_BODY_CHARS` is serialised once in refinery's worker
thread, to the bytes aiohttp would have made (`json.dumps(body).encode()`, as `application/json`),
and those bytes are sent on every attempt; a small body is left to aiohttp (a thread hop costs more
than its serialisation).
"""

from __future__ import annotations

import json
from typing import Any

from refinery.core.offload import in_worker

__all__ = ["BIG_BODY_CHARS", "JSON_CONTENT_TYPE", "encoded_off_loop", "is_big"]

BIG_BODY_CHARS = 256 * 1024
JSON_CONTENT_TYPE = "application/json"


def is_big(body: Any, limit: int = BIG_BODY_CHARS) -> bool:
    """Whether the strings in `body` (keys and values) come to `limit` characters or more; walks
    only until they do, so a big body's few long texts are found at once."""
    total, todo = 0, [body]
    while todo:
        value = todo.pop()
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, dict):
            total += sum(len(k) for k in value if isinstance(k, str))
            todo.extend(value.values())
        elif isinstance(value, (list, tuple)):
            todo.extend(value)
        if total >= limit:
            return True
    return False


def _encoded(body: Any) -> bytes:
    return json.dumps(body).encode("utf-8")  # what aiohttp's `json=` sends (its default `json.dumps`)


async def encoded_off_loop(body: Any) -> bytes:
    """`body` as the JSON bytes aiohttp's `json=` would send, serialised in refinery's worker."""
    return await in_worker(_encoded, body)
