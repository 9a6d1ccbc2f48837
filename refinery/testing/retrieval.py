"""Lexical retrieval for the test server's `file_search`: chunking, BM25, attribute filters.

A stand-in for OpenAI's hosted retrieval, good enough that a test sees the behaviour that
matters: a query returns the chunks that share its words, ranked, at most `max_num_results`,
and `filters` on file attributes are honoured exactly as the API defines them.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"[A-Za-z0-9_]+")
CHUNK_CHARS = 3200  # about 800 tokens, OpenAI's default chunk size
OVERLAP_CHARS = 1600  # about 400 tokens, OpenAI's default overlap


def tokenize(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def chunk_text(text: str, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS) -> list[str]:
    """Line-aligned chunks of about `size` characters, each overlapping the previous one."""
    if len(text) <= size:
        return [text] if text else []
    lines = text.splitlines(keepends=True)
    chunks: list[str] = []
    start = 0
    while start < len(lines):
        length, end = 0, start
        while end < len(lines) and (length + len(lines[end]) <= size or end == start):
            length += len(lines[end])
            end += 1
        chunks.append("".join(lines[start:end]))
        if end >= len(lines):
            break
        back, kept = end, 0
        while back > start + 1 and kept + len(lines[back - 1]) <= overlap:
            kept += len(lines[back - 1])
            back -= 1
        start = back
    return chunks


@dataclass(frozen=True)
class Chunk:
    file_id: str
    filename: str
    text: str
    attributes: Mapping[str, Any]


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float


def matches(attributes: Mapping[str, Any], flt: Mapping[str, Any] | None) -> bool:
    """Whether a file's attributes pass a `ComparisonFilter` / `CompoundFilter`."""
    if not flt:
        return True
    kind = flt.get("type")
    if kind == "and":
        return all(matches(attributes, f) for f in flt.get("filters", []))
    if kind == "or":
        return any(matches(attributes, f) for f in flt.get("filters", []))
    key, value = str(flt.get("key")), flt.get("value")
    if key not in attributes:
        return kind in ("ne", "nin")
    actual = attributes[key]
    try:
        if kind == "eq":
            return actual == value
        if kind == "ne":
            return actual != value
        if kind == "gt":
            return actual > value
        if kind == "gte":
            return actual >= value
        if kind == "lt":
            return actual < value
        if kind == "lte":
            return actual <= value
        if kind == "in":
            return actual in (value or [])
        if kind == "nin":
            return actual not in (value or [])
    except TypeError:
        return False
    return False


def bm25(query: str, chunks: Sequence[Chunk], k1: float = 1.5, b: float = 0.75) -> list[Hit]:
    """Chunks ranked by BM25 against `query`, scores scaled into 0..1; ties keep chunk order."""
    terms = tokenize(query)
    if not chunks:
        return []
    docs = [Counter(tokenize(c.text)) for c in chunks]
    lengths = [sum(d.values()) for d in docs]
    avg = (sum(lengths) / len(lengths)) or 1.0
    n = len(docs)
    df = Counter(t for d in docs for t in set(d))
    scores = []
    for d, length in zip(docs, lengths):
        s = 0.0
        for t in set(terms):
            f = d.get(t, 0)
            if f:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                s += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * length / avg))
        scores.append(s)
    top = max(scores) or 1.0
    ranked = sorted(range(n), key=lambda i: (-scores[i], i))
    return [Hit(chunks[i], round(scores[i] / top, 6)) for i in ranked]
