"""Which arrays of a trace file a loader walks one item at a time — so the reader may leave them in the file.

Each loader declares its own (`READ_SHAPE` in its module); `loader.py` reads with their union.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ReadShape"]


@dataclass(frozen=True)
class ReadShape:
    """The arrays a loader walks one item at a time, so they may stay in the file.

    `entries`: keys of entry arrays (messages, runs, spans, observations); `wrappers`: keys of
    arrays of objects walked to reach entry arrays below them (OTLP's `resourceSpans` and
    `scopeSpans`); `children`: keys under which an entry nests more entries (a span's
    `child_spans`), which may be big arrays in turn; `nesting`: the entry keys whose items may
    have such children.
    """

    entries: frozenset[str] = field(default_factory=frozenset)
    wrappers: frozenset[str] = field(default_factory=frozenset)
    children: frozenset[str] = field(default_factory=frozenset)
    nesting: frozenset[str] = field(default_factory=frozenset)

    def __or__(self, other: ReadShape) -> ReadShape:
        return ReadShape(
            self.entries | other.entries,
            self.wrappers | other.wrappers,
            self.children | other.children,
            self.nesting | other.nesting,
        )
