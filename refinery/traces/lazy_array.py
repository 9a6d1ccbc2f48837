"""A JSON array left in its file (`LazyArray`), as the reader (`json_stream`) leaves a big entry
array: its items parsed when read, a megabyte of them a read."""

from __future__ import annotations

import json
import os
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, overload

from refinery.core.offload import breathe
from refinery.errors import TraceFormatError
from refinery.traces.json_cursor import NotJson, NotUtf8, first_broken, gc_paused, items_of
from refinery.traces.read_shape import EntryWatch, ReadShape

__all__ = ["READ_BYTES", "LazyArray", "ReadContext", "Stretches", "stamp"]

READ_BYTES = 1 << 20  # what a pass over a lazy array reads (and parses) at a time


def stamp(path: Path) -> tuple[int, int]:
    """The file's size and modification time: a lazy array's file must keep them while in use."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


@dataclass(frozen=True)
class ReadContext:
    """One read of a trace file: what its lazy arrays need to read their items back. `walk` reads
    an item that may nest big child arrays (from its first byte to its end) as the reader walks it."""

    path: Path
    stamp: tuple[int, int]
    lazy_bytes: int
    shape: ReadShape
    source: str
    walk: Callable[[ReadContext, BinaryIO, int, int], Any]


@dataclass
class Stretches:
    """An array's items as the file holds them: the byte span of each stretch (flat: start, end),
    the number of its first item, and how many items there are."""

    bounds: array[int] = field(default_factory=lambda: array("q"))
    firsts: array[int] = field(default_factory=lambda: array("q"))
    count: int = 0
    commas: bool = True  # items of one JSON array; a JSONL file's are its lines


class LazyArray(Sequence[Any]):
    """A JSON array left in its file; each item is parsed when it is read.

    The array is known by its stretches: the byte span of each, and the number of its first item.
    A stretch is one item (the items read one at a time: the array's first megabyte, an item at a
    window's edge, one that is big) or a block of them that the reader parsed in one call. Iteration
    and slices read the file in order through one handle, a megabyte of stretches a read, parsed in
    one call too; an index reads the stretch that holds the item (the rest of a block's items are
    kept until read by index, each handed out once). The file must not change while the trace is
    in use (a big chat log's runs are read from it each time they are read): its size and
    modification time are checked on every read.
    """

    def __init__(
        self, ctx: ReadContext, stretches: Stretches, *, walk: bool = False, watched: tuple[EntryWatch, ...] = ()
    ) -> None:
        self.path = ctx.path
        self._ctx = ctx
        self._bounds, self._firsts, self._count = stretches.bounds, stretches.firsts, stretches.count
        self._commas = stretches.commas  # a comma between each item and the next (not a JSONL file's lines)
        self._walk = walk  # items are spans that may nest big arrays of children: big ones walked
        self.watched = watched  # the loaders' watches that saw every item as it was first read (`ReadShape`)
        self._left: tuple[int, dict[int, Any]] | None = None  # a block read by index: its items not yet handed out

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            with self._open() as f:
                return [self._read(f, i) for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("LazyArray index out of range")
        with self._open() as f:
            return self._read(f, index)

    def __iter__(self) -> Iterator[Any]:
        with self._open() as f:
            yield from self._between(f, 0, len(self))

    def _end(self, k: int) -> int:
        """The number after stretch `k`'s last item."""
        return self._firsts[k + 1] if k + 1 < len(self._firsts) else self._count

    def _walked(self, k: int) -> bool:
        """Stretch `k` is one item big enough to nest big child arrays: read by walking it."""
        return self._walk and self._bounds[2 * k + 1] - self._bounds[2 * k] > self._ctx.lazy_bytes

    def _between(self, f: BinaryIO, start: int, stop: int) -> Iterator[Any]:
        """Items `start` to `stop - 1`, in order, read through `f`: a megabyte of stretches a read,
        parsed in one call (consecutive stretches are consecutive items, commas between them)."""
        bounds, firsts, i = self._bounds, self._firsts, start
        while i < stop:
            k = bisect_right(firsts, i) - 1
            if self._walked(k):
                yield self._read(f, i)
                i += 1
                continue
            m, first = k + 1, bounds[2 * k]
            while m < len(firsts) and firsts[m] < stop and bounds[2 * m + 1] - first <= READ_BYTES:
                if self._walked(m):
                    break
                m += 1
            values = self._stretches(f, k, m)
            end = min(stop, self._end(m - 1))
            yield from values[i - firsts[k] : end - firsts[k]]
            i = end

    def _stretches(self, f: BinaryIO, k: int, m: int) -> list[Any]:
        """The items of stretches `k` to `m - 1`, parsed in one call (a line a call in a JSONL
        file: no commas between its items); a bad one named."""
        bounds, first = self._bounds, self._bounds[2 * k]
        breathe()  # reads let the GIL go and take it back: the host's loop may be kept waiting
        f.seek(first)
        data = f.read(bounds[2 * m - 1] - first)
        with gc_paused():  # JSON values hold no cycles; only C code runs
            if self._commas:
                values = items_of(data, self._end(m - 1) - self._firsts[k])
                if values is None:
                    raise self._broken(data, first, k)
                return values
            values = []
            for j in range(k, m):
                got = items_of(data[bounds[2 * j] - first : bounds[2 * j + 1] - first], 1)
                if got is None:
                    raise self._broken(data[bounds[2 * j] - first : bounds[2 * j + 1] - first], bounds[2 * j], j)
                values += got
            return values

    def _broken(self, data: bytes, first: int, k: int) -> TraceFormatError:
        """The error naming the first item of `data` (read from byte `first`, stretch `k` on) that
        no longer reads."""
        n, start, end, problem = first_broken(data)
        i = min(self._firsts[k] + n, self._count - 1)
        return TraceFormatError(
            f"item {i} (bytes {first + start}–{first + end}) no longer reads as JSON ({problem})", source=str(self.path)
        )

    @property
    def nested(self) -> bool:
        """Some item nests child entries (a span tree): items are more than one entry each."""
        return self._walk

    def __repr__(self) -> str:
        return f"LazyArray({self.path.name!r}, {len(self)} items)"

    @contextmanager
    def reading(self) -> Iterator[Callable[[int], Any]]:
        """Items by index, in any order, through one open handle (`self[i]` opens the file each time)."""
        with self._open() as f:
            yield lambda i: self._read(f, range(len(self))[i])

    @contextmanager
    def reading_between(self) -> Iterator[Callable[[int, int], Iterator[Any]]]:
        """Runs of consecutive items (from `start` to `stop - 1`), in any order, through one open
        handle: each run read a block at a time, as iteration reads the array."""
        with self._open() as f:

            def between(start: int, stop: int) -> Iterator[Any]:
                if not 0 <= start <= stop <= len(self):
                    raise IndexError("LazyArray index out of range")
                return self._between(f, start, stop)

            yield between

    def _open(self) -> BinaryIO:
        if stamp(self.path) != self._ctx.stamp:
            raise TraceFormatError("the file changed while it was being read", source=str(self.path))
        return self.path.open("rb")

    def _read(self, f: BinaryIO, i: int) -> Any:
        k = bisect_right(self._firsts, i) - 1
        if self._end(k) - self._firsts[k] > 1:  # a block: parsed whole, its other items kept for later reads
            left = self._left
            if left is not None and left[0] == k:
                value = left[1].pop(i, _TAKEN)  # (one C call: a value is never handed out twice)
                if value is not _TAKEN:
                    return value
            items = dict(enumerate(self._stretches(f, k, k + 1), start=self._firsts[k]))
            value = items.pop(i)
            self._left = (k, items)
            return value
        start, end = self._bounds[2 * k], self._bounds[2 * k + 1]
        breathe()
        f.seek(start)
        try:
            return self._ctx.walk(self._ctx, f, start, end) if self._walked(k) else json.loads(f.read(end - start))
        except (ValueError, NotJson, NotUtf8) as exc:
            byte = exc.byte if isinstance(exc, NotJson) else start
            raise TraceFormatError(
                f"item {i} (bytes {start}–{end}) no longer reads as JSON ({exc}, byte {byte})", source=str(self.path)
            ) from None


_TAKEN = object()
