"""`search_trace`: a function the model may call to read past what was inlined, answered by refinery
from a full-text index over the same rendered run files (SQLite FTS5, the standard library).

Why: with no hosted store (`store="none"`) a stage reads what fits its budget; a big trace's other
runs are then out of sight. Where the server takes function tools (`search_calls=N`), the request
carries one function, `search_trace(query)`, and each call is answered here with the best-matching
run sections (their file, run id and a window of their text, as rendered) — never the network.
Calls are bounded: at most `max_calls` a stage request, then the model must answer.

Blocking (builds and queries SQLite): an analysis builds it off the event loop.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Mapping
from typing import Any

from refinery.analysis.verification import RunTexts
from refinery.traces.spool import file_names

__all__ = ["SEARCH_TOOL", "TraceSearch", "search_allowance", "with_search_tool"]

SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "search_trace",
    "description": "Full-text search over the trace's rendered run files (every run, its inputs, outputs, errors "
    "and events). Returns the best-matching run sections with their file name and run id, to cite.",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "words to look for, as they may appear"}},
        "required": ["query"],
        "additionalProperties": False,
    },
    "strict": True,
}
RESULTS = 4  # run sections a call returns
SECTION_CHARS = 1200  # of each section's text, around the first match
_WORD = re.compile(r"\w+", re.UNICODE)


def search_allowance(max_calls: int) -> int:
    """The tokens `max_calls` calls' results may add to a request, counted high (3 characters a token)."""
    return max_calls * (RESULTS * (SECTION_CHARS + 200)) // 3


def with_search_tool(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a stage body that offers `search_trace` (a function tool; no hosted store)."""
    return {**body, "tools": [dict(SEARCH_TOOL)]}


class TraceSearch:
    """An in-memory FTS5 index of one analysis's run sections; `answer(arguments)` is a call's
    result. One connection, used by one thread at a time (a lock: calls may come from worker threads)."""

    def __init__(self, texts: RunTexts, max_calls: int = 3) -> None:
        self.max_calls = max_calls
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute("CREATE VIRTUAL TABLE sections USING fts5(body, file UNINDEXED, run_id UNINDEXED)")
        names = file_names(texts.files)
        rows = []
        for i, name in enumerate(names):
            layout = texts.layout(i)
            if not layout.run_ids:
                continue
            text = texts.files[i][1]
            rows += [(text[start:end], name, rid) for rid, start, end in layout.sections()]
        self._db.executemany("INSERT INTO sections (body, file, run_id) VALUES (?, ?, ?)", rows)
        self.sections = len(rows)

    def search(self, query: str, limit: int = RESULTS) -> list[dict[str, str]]:
        """The best-matching run sections for `query` (any of its words, best first)."""
        words = [w for w in _WORD.findall(query.lower()) if len(w) > 1][:16]
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        with self._lock:
            found = self._db.execute(
                "SELECT body, file, run_id FROM sections WHERE sections MATCH ? ORDER BY bm25(sections) LIMIT ?",
                (match, limit),
            ).fetchall()
        return [{"file": f, "run_id": rid, "text": _window(body, words)} for body, f, rid in found]

    def answer(self, arguments: str) -> str:
        """A `search_trace` call's output: its results as JSON text (an error said plainly)."""
        try:
            query = str(json.loads(arguments or "{}").get("query") or "")
        except ValueError:
            return json.dumps({"error": 'arguments must be JSON: {"query": "..."}'})
        results = self.search(query)
        return json.dumps({"query": query, "results": results} if results else {"query": query, "results": []})

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _window(body: str, words: list[str]) -> str:
    """Up to `SECTION_CHARS` of a section: its heading, then the text around the first match."""
    if len(body) <= SECTION_CHARS:
        return body
    head = body.split("\n", 1)[0]
    lower = body.lower()
    at = min((p for p in (lower.find(w) for w in words) if p >= 0), default=0)
    start = max(len(head), at - SECTION_CHARS // 3)
    return f"{head}\n…{body[start : start + SECTION_CHARS - len(head)]}…"
