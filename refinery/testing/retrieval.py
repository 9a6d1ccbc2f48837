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
from dataclasses import dataclass, field
from typing import Any

_WORD = re.compile(r"[A-Za-z0-9_]+")
# OpenAI's documented default (`auto`): windows of 800 tokens, each overlapping the last by 400.
DEFAULT_CHUNK_TOKENS = 800
DEFAULT_OVERLAP_TOKENS = 400
# An approximation of a BPE tokenizer's pieces (cl100k-like): a word with its leading space (long
# words in pieces), up to three digits, up to three punctuation marks (`":"`, `","` are one token
# in JSON), or a run of white space. Close
# enough (±15 % on prose, JSON and code) for chunk windows to land where the real store's do.
_TOKEN = re.compile(r" ?[A-Za-z]{1,10}| ?\d{1,3}| ?[^\sA-Za-z\d]{1,3}|\s+(?!\S)|\s+")


def tokenize(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def count_tokens(text: str) -> int:
    """The server's own token count (the same approximation its chunk windows use), kept apart
    from the client's estimate so the server does not grade the client by the client's rules."""
    return sum(1 for _ in _TOKEN.finditer(text))


def token_starts(text: str) -> list[int]:
    """Where each approximate model token of `text` starts."""
    return [m.start() for m in _TOKEN.finditer(text)]


def chunking_window(strategy: Any) -> tuple[int, int]:
    """(chunk size, overlap) in tokens from a `chunking_strategy` (None or `auto` = 800 / 400)."""
    if isinstance(strategy, dict) and strategy.get("type") == "static":
        static = strategy.get("static") or {}
        return int(static["max_chunk_size_tokens"]), int(static["chunk_overlap_tokens"])
    return DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS


def chunking_problem(strategy: Any) -> str | None:
    """Why the API would refuse `strategy`, or None (bounds from the published spec)."""
    if strategy is None:
        return None
    if not isinstance(strategy, dict) or strategy.get("type") not in ("auto", "static"):
        return "chunking_strategy.type must be 'auto' or 'static'"
    if strategy["type"] == "auto":
        return None if set(strategy) == {"type"} else "chunking_strategy 'auto' takes no other fields"
    static = strategy.get("static")
    if not isinstance(static, dict) or set(static) != {"max_chunk_size_tokens", "chunk_overlap_tokens"}:
        return "chunking_strategy.static needs max_chunk_size_tokens and chunk_overlap_tokens"
    size, overlap = static["max_chunk_size_tokens"], static["chunk_overlap_tokens"]
    if not isinstance(size, int) or not 100 <= size <= 4096:
        return "max_chunk_size_tokens must be an integer from 100 to 4096"
    if not isinstance(overlap, int) or overlap < 0 or overlap > size // 2:
        return "chunk_overlap_tokens must be a non-negative integer, at most half of max_chunk_size_tokens"
    return None


def chunk_text(text: str, size: int = DEFAULT_CHUNK_TOKENS, overlap: int = DEFAULT_OVERLAP_TOKENS) -> list[str]:
    """`text` cut as OpenAI's file_search documents: windows of `size` tokens, each starting
    `size - overlap` tokens after the previous one, the last one ending at the end of the text."""
    if not text:
        return []
    starts = token_starts(text)
    if len(starts) <= size:
        return [text]
    step = max(1, size - overlap)
    chunks: list[str] = []
    for first in range(0, len(starts), step):
        last = first + size
        chunks.append(text[starts[first] : starts[last] if last < len(starts) else len(text)])
        if last >= len(starts):
            break
    return chunks


@dataclass(frozen=True)
class Chunk:
    file_id: str
    filename: str
    text: str
    attributes: Mapping[str, Any]
    terms: Counter[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", Counter(tokenize(self.text)))  # once, not per query


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
    docs = [c.terms for c in chunks]
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
