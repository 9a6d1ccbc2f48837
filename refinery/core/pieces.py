"""Whole-text operations on big strings done a piece at a time, with the same results. Pure.

Why: a C call keeps the GIL until it returns, so in refinery's worker thread one call over a big
trace's index (tens of MB) holds the host's event loop for all of it, however the work was put in
a thread: at 100 MB a chat log's index is about 22 million characters, and one `"\\n".join` of
its lines took 60 ms, one `str.encode` 29 ms, one `needle in text` up to 38 ms (measured on a
2-core machine). Done a piece at a time, each call is a few milliseconds and the interpreter can
hand the GIL to the loop between them. Each function here gives exactly what the one call gives.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Sequence

__all__ = ["PIECE_CHARS", "contains", "decoded", "encoded_pieces", "joined_lines"]

# characters one call looks at: about a millisecond of searching or copying
PIECE_CHARS = 1 << 20
# lines joined in one call: a big index's table rows are about a hundred characters each
_LINES = 4096


def joined_lines(lines: Sequence[str], end: str = "") -> str:
    """`"\\n".join(lines) + end`, joined a block of lines at a time (the last copy, of the blocks,
    is one call over the whole text: half of the join and the concatenation it replaces)."""
    if len(lines) <= _LINES:
        return "\n".join(lines) + end
    blocks = ["\n".join(lines[i : i + _LINES]) for i in range(0, len(lines), _LINES)]
    if end:
        blocks[-1] += end
    return "\n".join(blocks)


def contains(text: str, needle: str) -> bool:
    """`needle in text`, searched a piece at a time (the pieces overlap by the needle's length
    less one, so a needle across two pieces is found)."""
    n = len(text)
    if n <= PIECE_CHARS:
        return needle in text
    reach = max(0, len(needle) - 1)
    return any(text.find(needle, start, min(n, start + PIECE_CHARS + reach)) >= 0 for start in range(0, n, PIECE_CHARS))


def encoded_pieces(text: str) -> Iterator[bytes]:
    """`text.encode("utf-8")` a piece at a time: the pieces put together are the whole text's
    bytes (UTF-8 encodes each character on its own; a lone surrogate raises `UnicodeEncodeError`
    in its piece as in the whole). Nothing is yielded for an empty text."""
    for start in range(0, len(text), PIECE_CHARS):
        yield text[start : start + PIECE_CHARS].encode("utf-8")


def decoded(data: bytes) -> str:
    """`data.decode("utf-8")` a piece at a time (an incremental decoder: a character split
    between two pieces is decoded whole; bad bytes raise `UnicodeDecodeError` as in the whole)."""
    if len(data) <= PIECE_CHARS:
        return data.decode("utf-8")
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    parts = [decoder.decode(view[i : i + PIECE_CHARS]) for i in range(0, len(data), PIECE_CHARS)]
    parts.append(decoder.decode(b"", final=True))
    return "".join(parts)
