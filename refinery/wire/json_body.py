"""A request's JSON body serialised off the event loop when it is big.

Why: aiohttp's `json=` serialises the body on the event loop when the request is made. A Stage 1
group read inline is up to a million tokens — about 4 MB of JSON — and its `json.dumps` held a
host's loop for over 50 ms (`bench_loop_stall.py --where` caught the loop in aiohttp's
`JsonPayload`). A body whose strings pass `BIG_BODY_CHARS` is serialised once in refinery's worker
thread, to the bytes aiohttp would have made (`json.dumps(body).encode()`, as `application/json`),
and those bytes are sent on every attempt; a small body is left to aiohttp (a thread hop costs more
than its serialisation). In the worker too, one `json.dumps` of a 4 MB text is one C call that holds
the GIL (and so the loop) throughout: each long text is escaped a piece at a time instead, the same
bytes.
"""

from __future__ import annotations

import json
import uuid
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
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


PIECE_CHARS = 1 << 18  # characters escaped in one C call (about 3 ms for the worst: all escaped)


def _encoded(body: Any) -> bytes:
    """`json.dumps(body).encode()` (what aiohttp's `json=` sends with its default `json.dumps`),
    each string longer than `PIECE_CHARS` escaped a piece at a time: the body is dumped with each
    long text replaced by a marker no text holds (a fresh random one), then the escaped pieces put
    in the markers' places. Escaping is character by character, so pieces give the whole's bytes."""
    nonce = uuid.uuid4().hex
    long: list[str] = []

    def marked(value: Any) -> Any:
        if isinstance(value, str):
            if len(value) <= PIECE_CHARS:
                return value
            long.append(value)
            return f"{nonce}:{len(long) - 1}"
        if isinstance(value, dict):
            return {k: marked(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [marked(v) for v in value]
        return value

    skeleton = json.dumps(marked(body))
    parts: list[bytes] = []
    at = 0
    for i, text in enumerate(long):
        marker = f'"{nonce}:{i}"'
        found = skeleton.find(marker, at)
        if found < 0 or nonce in text:  # never seen; if it were, the plain way is still right
            return json.dumps(body).encode("utf-8")
        parts.append(skeleton[at:found].encode("utf-8"))
        parts.append(b'"')
        parts.extend(
            encode_basestring_ascii(text[j : j + PIECE_CHARS])[1:-1].encode() for j in range(0, len(text), PIECE_CHARS)
        )
        parts.append(b'"')
        at = found + len(marker)
    parts.append(skeleton[at:].encode("utf-8"))
    return b"".join(parts)


async def encoded_off_loop(body: Any) -> bytes:
    """`body` as the JSON bytes aiohttp's `json=` would send, serialised in refinery's worker."""
    return await in_worker(_encoded, body)
