"""Which parts of a rendered file are the trace's own text, and whose. Pure.

Why: a quote counts as verified only when it occurs in text that came from the trace for the
cited run — its inputs, outputs, messages, error, events, attributes — never in what refinery
writes around it (headings, field labels, run-id markers, notes about cuts or earlier messages,
the index) and never in another run's text. Finding that again by parsing the Markdown would
guess; the renderer knows, so it says so as it writes:

- while rendering, source text is wrapped in private-use characters (`source`), each run's
  section opens with a run mark (`run_mark`), and scaffolding inserted *inside* source text (a
  run-id marker between two lines of one message) is bracketed as a pause;
- after redaction (which the marks do not disturb: they are not word characters), `strip_marks`
  removes them and returns the clean text with a `FileLayout`: each run's section and its source
  segments, as character offsets into the clean text.

A segment resumed after a pause continues the one before (a quote may cross a marker); a cut
(`source(text, limit)`) or a field boundary starts a new one (a quote may not cross them).
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from refinery.traces.redact import note_marks, redact_value

OPEN, CLOSE, RUN, RUN_END, PAUSE, RESUME = "\ue000", "\ue001", "\ue002", "\ue003", "\ue004", "\ue005"
_ANY_MARK = re.compile("[\ue000-\ue005]")
_MARKS = re.compile("\ue002([^\ue003]*)\ue003|[\ue000\ue001\ue004\ue005]")  # what `_marks` finds
_MARK_CHARS = re.compile("[\ue000-\ue005]")
# how many characters one search for marks covers: a search is one C call, which keeps the GIL (and
# so a host's event loop) until it returns; about 6 ms here, where a big index file took 600 ms whole
_WINDOW = 1 << 18


def clean_marks(text: str) -> str:
    """Trace text with any of our mark characters replaced (a trace may hold them, rarely)."""
    if text.isascii():  # nearly every value: no mark (they are past ASCII), and no search
        return text
    return _ANY_MARK.sub("\ufffd", text) if _ANY_MARK.search(text) else text


def source(text: str, limit: int | None = None) -> str:
    """`text` marked as source (redacted first, inside a `redact.redacting` block); cut to about
    `limit` characters (head and tail) when given, the cut note outside the source, so no quote
    can span the cut."""
    text = clean_marks(redact_value(text))
    if limit is None or len(text) <= limit:
        note_marks(1, 1)
        return f"{OPEN}{text}{CLOSE}"
    head, note, tail = truncate_parts(text, limit)
    note_marks(2, 2)
    return f"{OPEN}{head}{CLOSE}{note}{OPEN}{tail}{CLOSE}"


def cut(marked: str, limit: int | None) -> str:
    """Marked text cut to about `limit` characters (head and tail, as `source`); the note of the
    cut stands outside the source, and a segment the cut falls in is closed before it and
    reopened after it, so no quote can span the cut."""
    if limit is None or len(marked) <= limit:
        return marked
    clean = _ANY_MARK.sub("", marked)
    if len(clean) <= limit:
        return marked
    head, note, tail = truncate_parts(clean, limit)  # counted in the trace's characters, marks aside
    head_end, tail_start = _position(marked, len(head)), _position(marked, len(clean) - len(tail))
    before, after = marked[:head_end], marked[tail_start:]
    inside = is_open_after(before, False)
    tail_inside = is_open_after(marked[:tail_start], False)
    # the marks cut away, and those the cut adds, counted for redaction's pass over the file
    note_marks(
        tail_inside - marked.count(OPEN, head_end, tail_start), inside - marked.count(CLOSE, head_end, tail_start)
    )
    return f"{before}{CLOSE if inside else ''}{note}{OPEN if tail_inside else ''}{after}"


def _position(marked: str, n: int) -> int:
    """The index in `marked` just after its first `n` characters that are not marks."""
    pos = seen = 0
    for m in _ANY_MARK.finditer(marked):
        run = m.start() - pos
        if seen + run >= n:
            return pos + (n - seen)
        seen += run
        pos = m.end()
    return pos + (n - seen)


def truncate_parts(text: str, limit: int) -> tuple[str, str, str]:
    """(head, note, tail) of `text` cut to about `limit` characters.

    The tail gets the larger share: in a log or a conversation the newest part is at the end,
    and that is where a failure usually shows. The note says how much was cut and where.
    """
    return truncated_ends(len(text), limit, lambda head, tail: (text[:head], text[len(text) - tail :]))


def truncated_ends(length: int, limit: int, ends: Callable[[int, int], tuple[str, str]]) -> tuple[str, str, str]:
    """`truncate_parts` of a text known by its `length` and read by `ends(head, tail)`, which gives
    `(text[:head], text[length - tail:])`: a big spooled file cut to a request's room is read at
    its two ends only, not whole (`SpooledFiles.text_ends`)."""
    head = limit * 2 // 5
    tail = limit - head
    cut = length - head - tail
    note = (
        f"\n… [truncated: {cut} of {length} characters cut here "
        f"(characters {head + 1}–{head + cut}); the first {head} and last {tail} are shown] …\n"
    )
    first, last = ends(head, tail)
    return first, note, last


def run_mark(run_id: str) -> str:
    """The mark that opens a run's section (invisible once stripped)."""
    return f"{RUN}{clean_marks(run_id)}{RUN_END}"


def is_open_after(line: str, was_open: bool) -> bool:
    """Whether source text is open after `line`, given whether it was before it."""
    close, opened = line.rfind(CLOSE), line.rfind(OPEN)
    if close < 0 and opened < 0:
        return was_open
    return opened > close


@dataclass
class FileLayout:
    """A rendered file's runs and their source segments, as offsets into its clean text.

    `segments` is flat: (run index, start, end, continues the previous segment) per segment,
    in 32-bit integers, so a big trace's layout costs 16 bytes a segment and 8 a run (run ids
    are interned: the citation index holds the same strings).
    """

    run_ids: list[str] = field(default_factory=list)
    run_starts: array = field(default_factory=lambda: array("q"))
    length: int = 0
    segments: array = field(default_factory=lambda: array("i"))  # offsets inside one file: 32 bits

    def sections(self) -> Iterator[tuple[str, int, int]]:
        """(run id, start, end) of each run's section, in order."""
        for i, rid in enumerate(self.run_ids):
            end = self.run_starts[i + 1] if i + 1 < len(self.run_ids) else self.length
            yield rid, self.run_starts[i], end

    def sources(self, run_id: str) -> Iterator[tuple[int, int, bool]]:
        """(start, end, continues the previous) of each source segment of `run_id`."""
        wanted = {i for i, rid in enumerate(self.run_ids) if rid == run_id}
        segs = self.segments
        for k in range(0, len(segs), 4):
            if segs[k] in wanted:
                yield segs[k + 1], segs[k + 2], bool(segs[k + 3])


def _windows(marked: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each window (`_WINDOW` characters, less where a run mark would cross its end)
    that marks are looked for in: see `_marks`."""
    pos, n = 0, len(marked)
    while pos < n:
        end = min(pos + _WINDOW, n)
        if end < n:
            opened = marked.find(RUN, marked.rfind(RUN_END, pos, end) + 1 or pos, end)
            if opened >= 0 and marked.find(RUN_END, end) >= 0:  # a run mark would cross the window's end
                end = opened if opened > pos else marked.find(RUN_END, end) + 1
        yield pos, end
        pos = end


def _marks(marked: str) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, mark, run id) of each match of `_MARKS.finditer(marked)` (the run id: '' but for
    a run mark), searched a window (`_WINDOW` characters) at a time.

    Why windows: the search of a file with few marks (a big trace's index: tens of MB, no source
    text) is one long C call; in a worker thread it held the host's loop 0.4 s at 30 MB. A window
    never ends inside a run mark (RUN … RUN_END), the only mark longer than one character, so every
    match lies wholly inside one window and the matches are the same. Why not `_MARKS` itself: an
    alternation is tried at every character, where one class of mark characters is looked for as
    fast as a character is; a run mark's end is then found as `_MARKS` finds it (the first RUN_END
    after it, in the window: without one the RUN is text, as a RUN_END alone is)."""
    for pos, end in _windows(marked):
        after = pos  # where the next match may start: past a run mark
        for m in _MARK_CHARS.finditer(marked, pos, end):
            at, mark = m.start(), m.group()
            if at < after or mark == RUN_END:
                continue
            if mark == RUN:
                close = marked.find(RUN_END, at + 1, end)
                if close < 0:
                    continue
                yield at, close + 1, RUN, marked[at + 1 : close]
                after = close + 1
            else:
                yield at, at + 1, mark, ""


_MARK_SPLIT = re.compile("([\ue000-\ue005])")  # a window's text and its mark characters, in turn


def strip_marks(marked: str) -> tuple[str, FileLayout]:
    """The clean text of a marked rendering, and where its runs and source segments are: the
    matches `_marks` finds, each window split at its mark characters in one C call and the marks
    read in turn (a match object and a slice a mark were most of the time this took)."""
    layout = FileLayout()
    run_ids, run_starts, segments = layout.run_ids, layout.run_starts, layout.segments
    out: list[str] = []
    pos = 0
    seg_start = -1  # where the open source segment starts; -1: none
    joined = paused = False
    for start, end in _windows(marked):
        parts = _MARK_SPLIT.split(marked[start:end])  # text, mark, text, …: no text holds a mark
        text = parts[0]
        out.append(text)
        pos += len(text)
        i, n = 1, len(parts)
        while i < n:
            mark, text = parts[i], parts[i + 1]
            if mark == OPEN:
                if seg_start >= 0 and pos > seg_start and run_ids:
                    segments.extend((len(run_ids) - 1, seg_start, pos, int(joined)))
                seg_start, joined, paused = pos, False, False
            elif mark == CLOSE:
                if seg_start >= 0 and pos > seg_start and run_ids:
                    segments.extend((len(run_ids) - 1, seg_start, pos, int(joined)))
                seg_start, paused = -1, False
            elif mark == RUN:
                try:
                    close = parts.index(RUN_END, i + 2)  # the next one: a text holds no mark
                except ValueError:
                    close = -1
                if close < 0:  # never closed in its window: text, as a RUN_END alone is
                    out.append(mark)
                    pos += 1
                else:
                    if seg_start >= 0 and pos > seg_start and run_ids:
                        segments.extend((len(run_ids) - 1, seg_start, pos, int(joined)))
                    seg_start, paused = -1, False
                    run_ids.append(sys.intern("".join(parts[i + 1 : close])))  # shared with the citation index's keys
                    run_starts.append(pos)
                    i, text = close, parts[close + 1]
            elif mark == PAUSE:
                if seg_start >= 0:
                    if pos > seg_start and run_ids:
                        segments.extend((len(run_ids) - 1, seg_start, pos, int(joined)))
                    seg_start, paused = -1, True
            elif mark == RESUME:
                if paused:
                    seg_start, joined, paused = pos, True, False
            else:  # RUN_END alone: text
                out.append(mark)
                pos += 1
            out.append(text)
            pos += len(text)
            i += 2
    if seg_start >= 0 and pos > seg_start and run_ids:
        segments.extend((len(run_ids) - 1, seg_start, pos, int(joined)))
    layout.length = pos
    return "".join(out), layout
