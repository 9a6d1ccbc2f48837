"""Reading a trace file without holding all of it: big entry arrays stay in the file.

Why: `json.loads` on a 100 MB trace needs the whole text (100 MB) and then the parsed objects
(2–3.5× the file for chat logs and OTLP), all at once, before a loader has converted anything.
Loaders only ever walk their entries (messages, runs, spans, observations) one at a time, so this
reader keeps each big entry array as a `LazyArray` (`lazy_array.py`): the byte span of each
stretch of items (24 bytes for about 64 KiB of items, once the array is big: its items are parsed
a block at a time, one C call a block), the items parsed again when read. The file is read a window
at a time, so the text is never whole in memory either.

Which arrays stay in the file is the loaders' word, not this module's: each declares a
`ReadShape` (its entry arrays, the wrapper arrays above them, the child arrays an entry may nest)
and `loader.py` reads with their union. Only that skeleton is walked here in Python: the top
object, wrapper objects (OTLP's `resourceSpans[].scopeSpans[]`), and entries that may nest big
child arrays (TRAIL's ClickHouse exports nest a whole trace under one root span) when they are too
big to be small. Everything else — every entry smaller than `lazy_bytes`, which then can hold no
lazy child — is parsed by the standard library's C decoder in one call. An entry array whose items
add up to less than `lazy_bytes` is returned as a plain list, so small traces look exactly as
`json.loads` would give them.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from refinery.errors import TraceFormatError
from refinery.traces.json_cursor import (
    BLOCK,
    DECODER,
    WS,
    Cursor,
    NotJson,
    NotUtf8,
    gc_paused,
    items_block,
)
from refinery.traces.lazy_array import LazyArray, ReadContext, Stretches, stamp
from refinery.traces.read_shape import ReadShape, Watching

__all__ = ["LAZY_BYTES", "LazyArray", "ReadShape", "is_array", "read_trace_json"]

LAZY_BYTES = 1 << 20  # entry arrays bigger than this stay in the file
# A file of at most this many times `LAZY_BYTES` is read with every array kept, in one window. Why:
# a trace that nests its spans (TRAIL's exports: a whole trace under one root span) was parsed once
# a level of nesting, its lazy arrays scanned for their items' bounds and walked back again at each
# level: a real 4 MB TRAIL trace's spans six times over, 23 x `json.loads` to load. Kept whole, a
# file of 4 MiB is at most a few tens of MB of objects.
EAGER_TIMES = 4


_CHUNK = 1 << 20  # the window a cursor reads at a time


_SEPARATOR = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")  # what ends an array's item, and the space after


def is_array(value: Any) -> bool:
    """A JSON array as this reader may return it: a list, or a `LazyArray`."""
    return isinstance(value, (list, LazyArray))


def _walked_item(ctx: ReadContext, f: BinaryIO, start: int, end: int) -> Any:
    """A lazy array's item that may nest big child arrays, read back by walking it as it was read."""
    cur = Cursor(f, _CHUNK, first_byte=start, limit=end - start)
    value = _item(cur, ctx, True, ctx.shape.children, big=end - start > ctx.lazy_bytes)
    if cur.skip_ws():  # the item must end where it ended when the file was first read
        raise NotJson("an item does not end where it did", cur.byte_at(cur.pos))
    return value


def _item(cur: Cursor, ctx: ReadContext, walk: bool, keys: frozenset[str], *, big: bool = False) -> Any:
    """One array item: an entry that may nest big child arrays walked (unless it is small), else
    parsed whole. `big`: the item is known not to be small (its parse in this window failed, or it
    is longer than `lazy_bytes`), so it is walked without trying that parse again: a chain of
    nested big spans paid it at every level, each time up to the window's end."""
    if walk and cur.skip_ws() == "{":
        small, value = (False, None) if big else cur.small_value(ctx.lazy_bytes)
        return value if small else _object(cur, ctx, keys, nested=True)
    return cur.value()


class _Collected:
    """An array's items as read: kept while they add up to `lazy_bytes`, then only their stretches
    (the array becomes a `LazyArray`) — and each item shown, while it is parsed, to the watches the
    loaders set on the array's key (`ReadShape.watches`), which then ride on it."""

    def __init__(self, ctx: ReadContext, key: str | None = None, head: dict[str, Any] | None = None) -> None:
        self.ctx = ctx
        self.stretches = Stretches()
        self.kept: list[Any] | None = []
        self.size = 0
        self.key, self.head = key, head
        self.watching: Watching | None = None

    def add(self, value: Any, start: int, end: int) -> None:
        stretches = self.stretches
        stretches.bounds.extend((start, end))
        stretches.firsts.append(stretches.count)
        stretches.count += 1
        self.size += end - start
        if self.kept is not None:
            self.kept.append(value)
            if self.size > self.ctx.lazy_bytes:
                kept, self.kept = self.kept, None  # big: from here on only the stretches are kept
                if self.key is not None:
                    self.watching = Watching(self.ctx.shape.watches, self.key, self.head or {}, self.ctx.source)
                    self.watching.show_all(kept)
        elif self.watching is not None:
            self.watching.show(value)

    def add_block(self, values: list[Any], start: int, end: int) -> None:
        """Items parsed in one call, once the array is big (`kept` is None): one stretch."""
        stretches = self.stretches
        stretches.bounds.extend((start, end))
        stretches.firsts.append(stretches.count)
        stretches.count += len(values)
        if self.watching is not None:
            self.watching.show_all(values)

    def result(self, *, walk: bool = False) -> list[Any] | LazyArray:
        if self.kept is not None:
            return self.kept
        watched = () if walk or self.watching is None else tuple(self.watching.watches)
        return LazyArray(self.ctx, self.stretches, walk=walk, watched=watched)


def _array_items(cur: Cursor) -> Iterator[None]:
    """Steps through an array: yields with the cursor at each item, which the caller reads."""
    cur.expect("[")
    if cur.skip_ws() == "]":
        cur.pos += 1
        return
    while True:
        yield
        if cur.expect(",]") == "]":
            return


def _entries(
    cur: Cursor, ctx: ReadContext, walk: bool, key: str | None = None, head: dict[str, Any] | None = None
) -> list[Any] | LazyArray:
    """An entry array (under `key`, in an object whose fields before it are `head`); a walked one
    already read in this file (`ReadContext.arrays`) skipped, not scanned again."""
    first = cur.byte_at(cur.pos)
    known = ctx.arrays.get(first) if walk else None
    if known is not None:
        cur.skip_to(known[1])
        return LazyArray(ctx, known[0], walk=True)
    value = _scanned_entries(cur, ctx, walk, key, head)
    if walk and isinstance(value, LazyArray) and value.nested:
        ctx.arrays[first] = (value.stretches, cur.byte_at(cur.pos))
    return value


def _scanned_entries(
    cur: Cursor, ctx: ReadContext, walk: bool, key: str | None, head: dict[str, Any] | None
) -> list[Any] | LazyArray:
    collected = _Collected(ctx, key, head)
    children = ctx.shape.children
    nested = False  # some item has children: read items back by walking them too
    cur.expect("[")
    if cur.skip_ws() == "]":
        cur.pos += 1
        return collected.result()
    scanning = True  # until an item of a walked array proves big: then it is a tree, walked item by item
    while True:
        # as many items as the window holds whole, by the C scanner in one loop; then one item
        # the careful way (at the window's edge, too big to be small, or broken: it says which)
        big = False  # the scan stopped at an item it found not to be small
        if scanning:
            ended, some_nested, big = _scan_items(cur, ctx, walk, collected)
            nested = nested or some_nested
            if ended is not None and not big:
                if ended:
                    return collected.result(walk=nested)
                continue
        cur.skip_ws()
        start = cur.byte_at(cur.pos)
        value = _item(cur, ctx, walk, children, big=big)
        end = cur.byte_at(cur.pos)
        collected.add(value, start, end)
        nested = nested or (walk and isinstance(value, dict) and not children.isdisjoint(value))
        scanning = scanning and not (walk and end - start > ctx.lazy_bytes)
        if cur.expect(",]") == "]":
            return collected.result(walk=nested)


def _scan_items(cur: Cursor, ctx: ReadContext, walk: bool, collected: _Collected) -> tuple[bool | None, bool, bool]:
    """The array's next items, each whole in the window and followed by `,` or `]` there, decoded
    with their byte spans: once the array is big, a block of them in one call where a guess at an
    item boundary parses (`items_block`), else one at a time. (None: not even the first — the
    cursor unmoved at it; False: some, the cursor at the next item; True: through the array's end),
    whether one nests children, and whether it stopped at an item of a walked array that its parse
    found not to be small (it failed in this window, or the item is longer than `lazy_bytes`)."""
    buf, n, children, most = cur.buf, len(cur.buf), ctx.shape.children, ctx.lazy_bytes
    scan, sep = DECODER.scan_once, _SEPARATOR.match
    pos = cur.pos = WS.match(buf, cur.pos).end()  # type: ignore[union-attr]  # it matches the empty string
    nested, ended = False, None
    margin = cur.chunk >> 4  # what is left of the window when the scan reads on
    block = min(BLOCK, most) if walk else BLOCK  # a walked array's items in a block: none big enough to walk
    guess_from = pos  # no guess at a block's end before this position (one failed, or none was found)
    # a character a byte: an item's size and byte offset by arithmetic, from the window's first byte
    ascii_window = buf.isascii()
    origin = cur.byte_at(pos) - pos if ascii_window else 0
    while pos < n:
        if n - pos < margin and not cur.eof:
            # near the window's edge: read on first, so an item is rarely cut there (a cut item's
            # `JSONDecodeError` counts the lines of the whole window before it: 2 ms a megabyte)
            cur.pos, buf, guess_from = pos, "", guess_from - pos  # the old window let go while the next is read
            cur.more()  # (it drops what lies before the cursor: positions now count from it)
            buf, n, pos = cur.buf, len(cur.buf), cur.pos
            ascii_window = buf.isascii()
            origin = cur.byte_at(pos) - pos if ascii_window else 0
        if collected.kept is None and pos >= guess_from and buf[pos] == "{":
            found = items_block(buf, pos, min(block, n - pos))
            if isinstance(found, int):
                guess_from = found
            else:
                values, cut, nxt = found
                start = origin + pos if ascii_window else cur.byte_at(pos)
                size = cut - pos if ascii_window else len(buf[pos:cut].encode("utf-8"))
                if not walk or size <= most:
                    cur.mark_pos, cur.mark_byte = cut, start + size
                    collected.add_block(values, start, start + size)
                    if walk and not nested:
                        nested = any(isinstance(v, dict) and not children.isdisjoint(v) for v in values)
                    cur.pos = pos = nxt
                    ended = False
                    continue
                guess_from = cut
        try:
            value, end = scan(buf, pos)
        except (StopIteration, ValueError):
            return ended, nested, walk and buf[pos] == "{"
        after = sep(buf, end)
        if after is None:
            break  # cut by the window's edge (a number may decode short), or broken: the careful way
        if ascii_window:
            size = end - pos
        else:
            piece = buf[pos:end]
            size = len(piece) if piece.isascii() else len(piece.encode("utf-8"))
        if walk and size > most and buf[pos] == "{":
            return ended, nested, True  # big enough to hold big child arrays: walked
        start = origin + pos if ascii_window else cur.byte_at(pos)
        cur.mark_pos, cur.mark_byte = end, start + size
        collected.add(value, start, start + size)
        if walk and not nested and isinstance(value, dict) and not children.isdisjoint(value):
            nested = True
        if after[1] == "]":
            cur.pos = after.end(1)
            return True, nested, False
        cur.pos = pos = after.end()
        ended = False
    return ended, nested, False


def _object(cur: Cursor, ctx: ReadContext, entry_keys: frozenset[str], *, nested: bool = False) -> dict[str, Any]:
    """An object walked key by key: entry arrays may stay lazy; wrapper arrays (above entries,
    never inside one: `nested`) are walked too."""
    cur.expect("{")
    out: dict[str, Any] = {}
    if cur.skip_ws() == "}":
        cur.pos += 1
        return out
    while True:
        if cur.skip_ws() != '"':
            raise NotJson("expected a property name in double quotes", cur.byte_at(cur.pos))
        key = cur.value()
        cur.expect(":")
        nxt = cur.skip_ws()
        if nxt == "[" and key in entry_keys:
            out[key] = _entries(cur, ctx, nested or key in ctx.shape.nesting, key, out)
        elif nxt == "[" and key in ctx.shape.wrappers and not nested:
            out[key] = _wrappers(cur, ctx)
        else:
            out[key] = cur.value()
        if cur.expect(",}") == "}":
            return out


def _wrappers(cur: Cursor, ctx: ReadContext) -> list[Any]:
    return [_object(cur, ctx, ctx.shape.entries) if cur.skip_ws() == "{" else cur.value() for _ in _array_items(cur)]


def _document(ctx: ReadContext, chunk: int = _CHUNK) -> Any:
    with ctx.path.open("rb") as f:
        cur = Cursor(f, chunk)
        first = cur.skip_ws()
        if first == "{":
            data: Any = _object(cur, ctx, ctx.shape.entries)
        elif first == "[":
            data = _entries(cur, ctx, True)
        else:
            data = cur.value()
        if cur.skip_ws():
            raise NotJson("extra data after the JSON value", cur.byte_at(cur.pos))
        return data


def _json_lines(ctx: ReadContext) -> list[Any] | LazyArray | None:
    """A JSONL file (one value a line) as an array; None when it is not one (fewer than two
    values, or a first line that is no value on its own)."""
    collected = _Collected(ctx)
    collected.stretches.commas = False
    offset = 0
    path = ctx.path
    with path.open("rb") as f:
        for n, line in enumerate(f, start=1):
            start, offset = offset, offset + len(line)
            if n == 1 and line.startswith(codecs.BOM_UTF8):
                line, start = line[3:], start + 3
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                if not collected.stretches.count:
                    return (
                        None  # not one value a line: a (pretty-printed) document, broken where the document parse said
                    )
                raise TraceFormatError(f"line {n} is not JSON: {exc.msg}", source=str(path)) from None
            except UnicodeDecodeError as exc:
                raise TraceFormatError(
                    f"line {n} is not UTF-8 text ({exc.reason} at byte {start + exc.start})", source=str(path)
                ) from None
            collected.add(value, start, start + len(line.rstrip(b"\r\n")))
    return collected.result() if collected.stretches.count >= 2 else None


def read_trace_json(path: Path, shape: ReadShape, *, lazy_bytes: int | None = None, source: str | None = None) -> Any:
    """A JSON document or a JSONL file (one value a line, as a list), big entry arrays lazily
    (the arrays `shape` names, bigger than `lazy_bytes`, by default `LAZY_BYTES`, or none in a
    file of at most `EAGER_TIMES` x `LAZY_BYTES`). `source`: the file's name as the loaders'
    watches say it (by default the path)."""
    if path.is_dir():
        raise TraceFormatError(
            "is a directory; give one trace file (use `refinery batch` for a folder of traces)", source=str(path)
        )
    if path.exists() and not path.is_file():  # a pipe would hang, a device never end
        raise TraceFormatError("not a regular file (a pipe or a device); give a trace file", source=str(path))
    try:
        named = str(path) if source is None else source
        size = path.stat().st_size
        whole = lazy_bytes is None and size <= EAGER_TIMES * LAZY_BYTES  # kept whole, read in one window
        if lazy_bytes is None:
            lazy_bytes = max(size, LAZY_BYTES) if whole else LAZY_BYTES
        ctx = ReadContext(path, stamp(path), lazy_bytes, shape, named, _walked_item)
        try:
            with gc_paused():  # only this module's code and the C decoder run: no cycles made
                return _document(ctx, size + 1 if whole else _CHUNK)
        except NotJson as problem:
            lines = _json_lines(ctx)
            if lines is None:
                raise TraceFormatError(f"not JSON: {problem.message} (byte {problem.byte})", source=str(path)) from None
            return lines
    except FileNotFoundError:
        raise TraceFormatError("no such file", source=str(path)) from None
    except NotUtf8 as exc:
        raise TraceFormatError(str(exc), source=str(path)) from None
