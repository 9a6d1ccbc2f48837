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
from refinery.traces.json_cursor import NotJson, NotUtf8, first_broken, gc_paused, item_spans, items_of
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
    # the walked arrays of child spans read so far, by the byte offset of their `[`: their stretches
    # and the byte after their `]`. Why: a span read back (a parent's items read, then its own) was
    # walked again, its child arrays scanned anew for their items' bounds: a trace nested six deep
    # was parsed six times over. Read back, a span's known child arrays are skipped, not scanned.
    arrays: dict[int, tuple[Stretches, int]] = field(default_factory=dict, compare=False, hash=False)


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
    one call too. A read of a few items of a block (by index, or a short run of them: a trace's
    spans read in run order) is served from the block parsed whole in one call the first time (the
    rest kept for the reads that follow); after that, only their bytes are read, once the block's
    items' byte spans are known: found by reading it item by item, then kept (16 bytes an item, for
    the blocks read so).
    The file must not change while the trace is
    in use (a big chat log's runs are read from it each time they are read): its size and
    modification time are checked on every read.
    """

    def __init__(
        self, ctx: ReadContext, stretches: Stretches, *, walk: bool = False, watched: tuple[EntryWatch, ...] = ()
    ) -> None:
        self.path = ctx.path
        self._ctx = ctx
        self.stretches = stretches
        self._bounds, self._firsts, self._count = stretches.bounds, stretches.firsts, stretches.count
        self._commas = stretches.commas  # a comma between each item and the next (not a JSONL file's lines)
        self._walk = walk  # items are spans that may nest big arrays of children: big ones walked
        self.watched = watched  # the loaders' watches that saw every item as it was first read (`ReadShape`)
        self._item_spans: dict[int, array[int]] = {}  # a block's items' byte spans, once a few were read alone
        # what reading a block for a few of its items parsed, not yet read: the last few blocks so read
        self._left: dict[int, dict[int, Any]] = {}
        self._whole: set[int] = set()  # the blocks read whole for a few of their items (each once)

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            with self._open() as f:
                if step == 1:  # (as a pass reads them: a block at a time)
                    return list(self._between(f, start, max(start, stop)))
                return [self._read(f, i) for i in range(start, stop, step)]
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
        """Items `start` to `stop - 1`, in order, read through `f`: whole stretches a megabyte a
        read, parsed in one call (consecutive stretches are consecutive items, commas between them);
        a part of a block, only its items when they are less than half of it."""
        bounds, firsts, i = self._bounds, self._firsts, start
        while i < stop:
            k = bisect_right(firsts, i) - 1
            lo, hi = firsts[k], self._end(k)
            if self._walked(k):
                yield self._read(f, i)
                i += 1
            elif i > lo or stop < hi:  # a part of stretch k
                end = min(stop, hi)
                if 2 * (end - i) < hi - lo or self._first_read(k, i, anywhere=True):
                    yield from self._part(f, k, i, end, anywhere=True)
                else:
                    yield from self._stretches(f, k, k + 1)[i - lo : end - lo]
                i = end
            else:
                m, first = k + 1, bounds[2 * k]
                while m < len(firsts) and self._end(m) <= stop and bounds[2 * m + 1] - first <= READ_BYTES:
                    if self._walked(m):
                        break
                    m += 1
                yield from self._stretches(f, k, m)
                i = self._end(m - 1)

    def _stretches(self, f: BinaryIO, k: int, m: int) -> list[Any]:
        """The items of stretches `k` to `m - 1`, parsed in one call (a line a call in a JSONL
        file: no commas between its items); a bad one named."""
        bounds, first = self._bounds, self._bounds[2 * k]
        data = self._bytes(f, first, bounds[2 * m - 1])
        with gc_paused():  # JSON values hold no cycles; only C code runs
            if self._commas:
                values = items_of(data, self._end(m - 1) - self._firsts[k])
                if values is None:
                    raise self._broken(data, first, self._firsts[k])
                return values
            values = []
            for j in range(k, m):
                line = data[bounds[2 * j] - first : bounds[2 * j + 1] - first]
                got = items_of(line, 1)
                if got is None:
                    raise self._broken(line, bounds[2 * j], self._firsts[j])
                values += got
            return values

    def _part(self, f: BinaryIO, k: int, start: int, stop: int, *, anywhere: bool = False) -> list[Any]:
        """Items `start` to `stop - 1` of block `k`: left over from the block's last read whole (each
        handed out once: a change to one never shows in another read); else, the first time the
        block is read (from its first item, or `anywhere` in a stretch of a pass), all of it parsed
        in one call and the rest left over (a renderer reads the runs a few at a time, mostly in file
        order); else only their bytes read and parsed."""
        lo, left = self._firsts[k], self._left.get(k)
        if left is not None:
            taken = [left.pop(i, _TAKEN) for i in range(start, stop)]  # (each pop one C call)
            if all(v is not _TAKEN for v in taken):
                return taken
        elif self._first_read(k, start, anywhere=anywhere):
            self._whole.add(k)  # (once a block: reads that go back and forth find its items' spans instead)
            rest = dict(enumerate(self._stretches(f, k, k + 1), start=lo))
            taken = [rest.pop(i) for i in range(start, stop)]  # (taken before another thread may see the rest)
            self._leave(k, rest)
            return taken
        spans = self._spans_in(f, k)
        first = spans[2 * (start - lo)]
        data = self._bytes(f, first, spans[2 * (stop - lo) - 1])
        with gc_paused():
            values = items_of(data, stop - start)
        if values is None:
            raise self._broken(data, first, start)
        return values

    def _first_read(self, k: int, start: int, *, anywhere: bool = False) -> bool:
        """A read of block `k` from its first item (or `anywhere`), the block not read before: read
        it whole."""
        return (anywhere or start == self._firsts[k]) and k not in self._whole and k not in self._item_spans

    def _leave(self, k: int, rest: dict[int, Any]) -> None:
        """Keep block `k`'s items not yet read, for the reads that follow: those of the last
        `_LEFT_BLOCKS` blocks so read (spans in run order step back a block now and then: a parent
        written after its children, across a block's edge)."""
        left = self._left
        left.pop(k, None)
        left[k] = rest
        while len(left) > _LEFT_BLOCKS:
            left.pop(next(iter(left), None), None)  # (the oldest; None if another thread emptied it meanwhile)

    def _spans_in(self, f: BinaryIO, k: int) -> array[int]:
        """Block `k`'s items' byte spans (start, end, from the file's start): found by reading it
        item by item once, then kept; the items so read are left over for the reads that follow
        (short runs of spans in run order mostly stay in one block)."""
        spans = self._item_spans.get(k)
        if spans is None:
            first, lo = self._bounds[2 * k], self._firsts[k]
            data = self._bytes(f, first, self._bounds[2 * k + 1])
            with gc_paused():
                found = item_spans(data, self._end(k) - lo)
            if found is None:
                raise self._broken(data, first, lo)
            spans = self._item_spans[k] = array("q", (first + b for b in found[0]))
            self._leave(k, dict(enumerate(found[1], start=lo)))
        return spans

    def _bytes(self, f: BinaryIO, start: int, end: int) -> bytes:
        breathe()  # reads let the GIL go and take it back: the host's loop may be kept waiting
        f.seek(start)
        return f.read(end - start)

    def _broken(self, data: bytes, first: int, i: int) -> TraceFormatError:
        """The error naming the first item of `data` (read from byte `first`; item `i` first) that
        no longer reads."""
        n, start, end, problem = first_broken(data)
        return TraceFormatError(
            f"item {min(i + n, self._count - 1)} (bytes {first + start}–{first + end}) no longer reads as JSON"
            f" ({problem})",
            source=str(self.path),
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
        if self._end(k) - self._firsts[k] > 1:  # in a block: its own bytes, once the block's spans are known
            return self._part(f, k, i, i + 1)[0]
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
_LEFT_BLOCKS = 4  # the blocks whose items not yet read are kept (each a block's values: ≤ 64 K characters of JSON)
