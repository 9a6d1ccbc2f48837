"""Which arrays of a trace file a loader walks one item at a time — so the reader may leave them in the file.

Each loader declares its own (`READ_SHAPE` in its module); `loader.py` reads with their union.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["EntryWatch", "ReadShape", "WatchFactory", "Watching"]


class EntryWatch(Protocol):
    """What a loader takes of each item of a big entry array while the reader's scan holds it parsed
    (the item is not parsed again for it). It may raise: the reader then drops it, and the loader,
    finding no watch, reads the items itself (and names a bad one)."""

    def add(self, item: Any) -> None: ...


# (the array's key, the fields of its object read before it, the source) → a watch, or None for none
WatchFactory = Callable[[str, Mapping[str, Any], str], "EntryWatch | None"]


@dataclass(frozen=True)
class ReadShape:
    """The arrays a loader walks one item at a time, so they may stay in the file.

    `entries`: keys of entry arrays (messages, runs, spans, observations); `wrappers`: keys of
    arrays of objects walked to reach entry arrays below them (OTLP's `resourceSpans` and
    `scopeSpans`); `children`: keys under which an entry nests more entries (a span's
    `child_spans`), which may be big arrays in turn; `nesting`: the entry keys whose items may
    have such children; `watches`: for an entry key, what makes an `EntryWatch` of its array's
    items once the array proves big enough to stay in the file.
    """

    entries: frozenset[str] = field(default_factory=frozenset)
    wrappers: frozenset[str] = field(default_factory=frozenset)
    children: frozenset[str] = field(default_factory=frozenset)
    nesting: frozenset[str] = field(default_factory=frozenset)
    watches: tuple[tuple[str, WatchFactory], ...] = ()

    def __or__(self, other: ReadShape) -> ReadShape:
        return ReadShape(
            self.entries | other.entries,
            self.wrappers | other.wrappers,
            self.children | other.children,
            self.nesting | other.nesting,
            self.watches + other.watches,
        )


class Watching:
    """The watches set on one array's key (`ReadShape.watches`), each shown every item in turn; one
    that raises is dropped (not what its loader reads: that loader reads the items itself)."""

    def __init__(
        self, factories: tuple[tuple[str, WatchFactory], ...], key: str, head: Mapping[str, Any], source: str
    ) -> None:
        made = (make(key, dict(head), source) for on, make in factories if on == key)
        self.watches: list[EntryWatch] = [w for w in made if w is not None]

    def show(self, item: Any) -> None:
        for watch in self.watches:
            try:
                watch.add(item)
            except Exception:  # noqa: BLE001  # any error: the loader's own pass says what it is
                self.watches = [w for w in self.watches if w is not watch]

    def show_all(self, items: list[Any]) -> None:
        """`show` each of a block of items the reader parsed in one call (a call a watch, not an item)."""
        for watch in self.watches:
            try:
                add_all = getattr(watch, "add_all", None)
                if add_all is not None:
                    add_all(items)
                else:
                    for item in items:
                        watch.add(item)
            except Exception:  # noqa: BLE001  # any error: the loader's own pass says what it is
                self.watches = [w for w in self.watches if w is not watch]
