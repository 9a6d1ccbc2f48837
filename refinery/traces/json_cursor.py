"""The reader's window on a trace file: UTF-8 text a piece at a time, knowing the byte offset of
every position it has passed, and the C decoder that reads values off it (`json_stream` walks the
document with it), and the decoding of a block of items in place."""

from __future__ import annotations

import codecs
import gc
import json
import re
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from refinery.core.offload import breathe

__all__ = ["BROKEN", "DECODER", "DELIMITERS", "WS", "Cursor", "NotJson", "NotUtf8", "block_items", "gc_paused"]

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


BROKEN = object()  # an item of a block that does not decode where it stands


def block_items(block: bytes, spans: array[int], first: int) -> list[Any]:
    """The items whose byte `spans` (from the file's start) lie in `block` (read from byte
    `first`), decoded by the C scanner in place — no copy of each item and no `json.loads` per
    item — with the cyclic collector paused (JSON values hold no cycles; only C code runs)."""
    out: list[Any] = []
    scan = DECODER.scan_once
    with gc_paused():
        if block.isascii():  # a character a byte: the spans are positions in the text
            text = block.decode("ascii")
            for k in range(0, len(spans), 2):
                start, end = spans[k] - first, spans[k + 1] - first
                try:
                    value, stop = scan(text, start)
                except (StopIteration, ValueError):
                    stop = -1
                out.append(value if stop == end else _loaded(block[start:end]))
        else:
            for k in range(0, len(spans), 2):
                out.append(_loaded(block[spans[k] - first : spans[k + 1] - first]))
    return out


def _loaded(piece: bytes) -> Any:
    """One item's bytes decoded (`json.loads`'s rules: white space around it, UTF-8), or `BROKEN`."""
    try:
        text = piece.decode("utf-8")
        value, stop = DECODER.scan_once(text, 0)
        if stop == len(text):
            return value
    except (StopIteration, ValueError):
        pass
    try:
        return json.loads(piece)
    except ValueError:
        return BROKEN


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
