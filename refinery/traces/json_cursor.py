"""The reader's window on a trace file: UTF-8 text a piece at a time, knowing the byte offset of
every position it has passed, and the C decoder that reads values off it (`json_stream` walks the
document with it), and blocks of an array's items parsed by one call of the C decoder."""

from __future__ import annotations

import codecs
import gc
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from refinery.core.offload import breathe

__all__ = [
    "BLOCK",
    "DECODER",
    "DELIMITERS",
    "WS",
    "Cursor",
    "NotJson",
    "NotUtf8",
    "first_broken",
    "gc_paused",
    "item_spans",
    "items_block",
    "items_of",
]

WS = re.compile(r"[ \t\n\r]*")
DELIMITERS = frozenset(" \t\n\r,:]}")  # what may follow a complete JSON value
DECODER = json.JSONDecoder()


class NotJson(Exception):
    def __init__(self, message: str, byte: int) -> None:
        super().__init__(message)
        self.message, self.byte = message, byte


class NotUtf8(Exception):
    pass


class Cursor:
    """A forward-only window of a UTF-8 file as text, knowing the byte offset of every position."""

    def __init__(self, f: BinaryIO, chunk: int, *, first_byte: int = 0, limit: int | None = None) -> None:
        """`f` positioned at `first_byte`, read `chunk` bytes at a time; `limit`: read no more
        than this many bytes (one item)."""
        self.f = f
        self.chunk = chunk
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.buf, self.pos, self.eof = "", 0, False
        self.mark_pos, self.mark_byte = 0, first_byte  # a known (position, byte) pair; positions only grow
        self.started = first_byte > 0  # a byte-order mark can only open the file
        self.left = limit
        self.read_to = first_byte  # the file offset the next read starts at

    def byte_at(self, pos: int) -> int:
        piece = self.buf[self.mark_pos : pos]
        self.mark_byte += len(piece) if piece.isascii() else len(piece.encode("utf-8"))
        self.mark_pos = pos
        return self.mark_byte

    def more(self, at_least: int | None = None) -> None:
        """Drop what was read, then read another piece of the file onto the window."""
        if self.eof:
            return
        if self.pos:
            self.byte_at(self.pos)
            self.buf, self.pos, self.mark_pos = self.buf[self.pos :], 0, 0
        size = at_least or self.chunk
        breathe()  # reads let the GIL go and take it back: the host's loop may be kept waiting
        data = self.f.read(size if self.left is None else min(size, self.left))
        if self.left is not None:
            self.left -= len(data)
        held = len(self.decoder.getstate()[0])  # the start of a character cut by the last read
        try:
            text = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:  # its positions count from the held bytes
            raise NotUtf8(f"not UTF-8 text ({exc.reason} at byte {self.read_to - held + exc.start})") from None
        self.read_to += len(data)
        if not self.started:
            self.started = True
            if text.startswith("\ufeff"):  # a byte-order mark: skip it, count its bytes
                text = text[1:]
                self.mark_byte += 3
        self.eof = not data
        self.buf += text

    def skip_to(self, byte: int) -> None:
        """On to the file's byte `byte` (at or past the cursor), the window dropped: read from there."""
        if self.left is not None:  # the limit's end stays where it was
            self.left += self.read_to - byte
        self.f.seek(byte)
        self.decoder.reset()
        self.buf, self.pos, self.mark_pos, self.mark_byte = "", 0, 0, byte
        self.read_to, self.eof, self.started = byte, False, True

    def skip_ws(self) -> str:
        """The next significant character ('' at the end of the file), not consumed."""
        while True:
            match = WS.match(self.buf, self.pos)  # always matches, if only the empty string
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos : self.pos + 1]
            self.more()

    def expect(self, chars: str) -> str:
        c = self.skip_ws()
        if not c or c not in chars:
            raise NotJson(f"expected {' or '.join(repr(ch) for ch in chars)}", self.byte_at(self.pos))
        self.pos += 1
        return c

    def small_value(self, most_bytes: int) -> tuple[bool, Any]:
        """(True, the next value) when it is whole in the window and at most `most_bytes` long;
        (False, None) otherwise, the cursor unmoved. Why: an entry that small can hold no array
        big enough to stay in the file, so one C call parses it, where a walk goes key by key."""
        self.skip_ws()
        if self.buf[self.pos : self.pos + 1] not in ("{", "["):  # numbers may be cut: `value` checks
            return False, None
        try:
            value, end = DECODER.raw_decode(self.buf, self.pos)
        except json.JSONDecodeError:
            return False, None  # cut by the window's edge, too big, or broken: the walk says which
        piece = self.buf[self.pos : end]  # its bytes counted aside: the byte mark never passes the cursor
        if len(piece) > most_bytes or (not piece.isascii() and len(piece.encode("utf-8")) > most_bytes):
            return False, None
        self.pos = end
        return True, value

    def value(self) -> Any:
        """The next JSON value, parsed by the C decoder."""
        self.skip_ws()
        read = self.chunk
        while True:
            try:
                value, end = DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof:
                    raise NotJson(exc.msg, self.byte_at(min(exc.pos, len(self.buf)))) from None
            else:
                # A value is whole only where a delimiter (or the end of the file) follows it: a
                # number cut by the window's edge (`1700003482.` or `1e-`) decodes short. Text
                # that is no delimiter but has one later in the window is broken JSON, for the
                # caller to report where it stands.
                if self.eof or (
                    end < len(self.buf) and (self.buf[end] in DELIMITERS or not DELIMITERS.isdisjoint(self.buf[end:]))
                ):
                    self.pos = end
                    return value
            self.more(read)
            read *= 2  # a value bigger than the window: grow it, so re-parsing stays linear


BLOCK = 1 << 16  # the most characters of items the reader's scan parses in one call
_HEAD = re.compile(r'\{[ \t\n\r]*"(?:[^"\\]|\\.)*"')  # an object's start, through its first key
_BEFORE_HEAD = re.compile(r"\}[ \t\n\r]*,[ \t\n\r]*\Z")  # what ends the item before, up to the next


def items_block(buf: str, pos: int, most: int) -> tuple[list[Any], int, int] | int:
    """The array's items from `pos` (an object item's start) up to a guessed item boundary within
    `most` characters, parsed by ONE call of the C decoder: (their values, the end of the last one,
    the start of the next); else the position before which no guess is worth trying again.

    The guess: the last place in reach where the text that opens this item (`{"role"`: its first
    key) opens another, after `}`, `,` and white space — where one item ends and the next begins,
    unless it sits inside a string or deeper in an item. Why the guess may be wrong but its parse
    never is: `"[" + buf[pos:cut] + "]"` parses exactly as the array's own text up to `cut`, so it
    succeeds only if the parser stands between two items of this array at `cut`. Inside a string,
    the `]` is taken into the string, which stays open; inside an item (depth ≥ 1 below our `[`),
    one `]` closes at most one level, so our `[` or the item stays open (or the `]` stands where a
    key or `,` must). Either is a decode error. Standing between items, the `]` closes our array,
    and what it holds is the items `buf[pos:cut]` holds, each parsed as the item-by-item scan
    parses it (the same decoder; the cut follows a `}`, so no number or literal is cut short). After
    a failed parse the next guess lies within half the distance; when none parses, none is tried
    again within the reach (so failed parses cost at most twice what the items cost one by one)."""
    opened = _HEAD.match(buf, pos)
    head = opened[0] if opened is not None else "{"
    reach = give_up = pos + most
    for _ in range(8):  # a few look-alikes are passed over; more, and the items go one by one
        k = buf.rfind(head, pos + 1, reach + len(head))
        if k < 0:
            return give_up
        before = _BEFORE_HEAD.search(buf, max(pos, k - 64), k)
        if before is None:
            reach = k - 1
            continue
        cut = before.start() + 1
        try:
            return DECODER.decode("[" + buf[pos:cut] + "]"), cut, k
        except ValueError:  # a look-alike deeper in an item, or in a string: half as far
            reach = pos + (k - pos) // 2
    return give_up


def items_of(data: bytes, count: int) -> list[Any] | None:
    """The `count` items that `data` (a stretch of an array's text from one item's start to
    another's end, read back from the file) holds, by one parse; None when it holds other than that."""
    try:
        values = json.loads(b"[" + data + b"]")
    except ValueError:
        return None
    return values if len(values) == count else None


def item_spans(data: bytes, count: int) -> tuple[list[int], list[Any]] | None:
    """The byte spans (start, end, flat, from `data`'s start) and the values of the `count` items
    that `data` (a stretch of an array's items, as `items_of` takes it) holds, read item by item;
    None when it holds other than that."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    one_byte = text.isascii()  # a character a byte: sizes by arithmetic
    spans: list[int] = []
    values: list[Any] = []
    pos = byte = 0
    for n in range(count):
        try:
            value, end = DECODER.scan_once(text, pos)
        except (StopIteration, ValueError):
            return None
        size = end - pos if one_byte else len(text[pos:end].encode("utf-8"))
        spans += (byte, byte + size)
        values.append(value)
        sep = _SEPARATOR.match(text, end)  # (white space and a comma: a byte a character)
        if sep is None or (sep[1] == ",") != (n < count - 1) or (n == count - 1 and sep.end() < len(text)):
            return None
        byte += size + sep.end() - end
        pos = sep.end()
    return spans, values


def first_broken(data: bytes) -> tuple[int, int, int, str]:
    """Where a stretch of items that `items_of` would not read goes wrong: (the item's number in
    the stretch, its first byte and its end in `data`, what is wrong), read item by item."""
    text = data.decode("utf-8", "replace")
    pos = n = byte = 0
    while True:
        try:
            _, end = DECODER.raw_decode(text, pos)
        except ValueError as exc:
            return n, byte, len(data), str(exc)
        stop = byte + len(text[pos:end].encode("utf-8"))
        sep = _SEPARATOR.match(text, end)
        if sep is None or sep.end() == len(text) or sep[1] != ",":
            return n, byte, stop, "its items no longer end where they did"
        byte = stop + len(text[end : sep.end()].encode("utf-8"))
        pos, n = sep.end(), n + 1


_SEPARATOR = re.compile(r"[ \t\n\r]*(,?)[ \t\n\r]*")


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block (on again after, if it was on)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
