"""Run-id markers repeated through long run sections, so every chunk the store cuts says which
run it came from. Pure.

Why: `file_search` retrieves chunks (800-token windows every 400 tokens), not files; a chunk from
the middle of a long LLM span would otherwise carry no run id and could not be cited. A marker
goes at the best boundary of each interval (between messages, then a blank line, then a line
end) so it rarely splits a quote; inside a code fence the fence is closed around it and
reopened, so the content reads the same.
"""

from __future__ import annotations

import bisect
import re

from refinery.traces.redact import SOURCE_SPAN, note_rendered, outside_values, redact_own_text
from refinery.traces.source_text import CLOSE, OPEN, PAUSE, RESUME

_SPACES = re.compile(" *")


def _wrap(line: str, width: int) -> list[str]:
    """A line longer than `width` split at white space (or hard, when it has none).

    Walks the line by index: each piece is copied once (copying the rest of the line at every
    cut made a single 50 MB line take hours)."""
    out = []
    pos, end = 0, len(line)
    while end - pos > width:
        space = line.rfind(" ", pos + width // 2, pos + width)
        if space > pos:
            out.append(line[pos:space])
            pos = _SPACES.match(line, space).end()
        else:
            out.append(line[pos : pos + width])
            pos += width
    out.append(line[pos:])
    return out


_JOIN = "\n\ue004\n"  # between the pieces redacted together: a line break and a mark, which no value crosses


def _scaffolding_redacted(section: str) -> str:
    """`section` with what the renderer wrote around the trace's values (ids, names) redacted,
    inside a `redacting` block: the values were redacted as they were rendered, but a marker at a
    blank line inside an id would split a secret there. The pieces between values are redacted
    together, in one pass, not the values again."""
    if _JOIN in section:
        return redact_own_text(section)
    pieces = outside_values(section)  # `SOURCE_SPAN.split`, without walking the values
    joined = _JOIN.join(pieces)
    redacted = redact_own_text(joined)
    if redacted == joined:  # nearly always: nothing to put back together
        return section
    parts = redacted.split(_JOIN)
    if len(parts) != len(pieces):  # a secret ran across pieces: the whole section, then
        return redact_own_text(section)
    out = [parts[0]]
    for span, piece in zip(SOURCE_SPAN.findall(section), parts[1:]):
        out += [span, piece]
    return "".join(out)


_BLANK = re.compile("\n[^\\S\n]*(?=\n|\\Z)")  # a line break before a line of white space only
_HEAD = re.compile("\n(?:#|```)")  # a line break and a line that starts with a heading's or a fence's mark
# a line of backticks only (three or more), white space around them: the only lines that open or close a
# fence (a fence opens at such a line and closes at the same backticks; "```python" does neither). After
# a line break (the first line is matched alone: a search that starts at any line start is slower)
_FENCE = re.compile("\n[^\\S\n]*(`{3,})[^\\S\n]*(?=\n|\\Z)")
_FIRST_FENCE = re.compile("[^\\S\n]*(`{3,})[^\\S\n]*(?=\n|\\Z)")


class _Breaks:
    """Where a marker may go in a section (its text with over-long lines wrapped), looked for near
    each cut with C-level searches rather than line by line: the boundaries before a heading or a
    fence's line outside a fence, or after a fence closes (rank 3, best), those next to a blank line
    (rank 2); every other line start is rank 1. The ranks are those the line-by-line placement gave
    (`tests/test_markers_same_places.py` keeps it as the reference): between messages or sections
    best (a heading, or the edge of one of our own fences, not a fence inside the content), then a
    blank line, then any line end."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.fence_lines: list[int] = []  # the starts of the lines that open or close a fence
        self.fence_after: list[str | None] = []  # the fence open after each of them
        self.closed: list[int] = []  # the line starts after a line that closes a fence
        lines, after, closed = self.fence_lines, self.fence_after, self.closed
        fence: str | None = None
        n = len(text)
        first_line = _FIRST_FENCE.match(text)
        if first_line:  # the first line opens one (its match starts at the line, not a line break)
            fence = first_line[1]
            lines.append(0)
            after.append(fence)
        for m in _FENCE.finditer(text):
            ticks = m[1]
            if fence is None:
                fence = ticks
            elif ticks == fence:
                fence = None
                end = m.end()
                if end < n:
                    closed.append(end + 1)
            else:
                continue
            lines.append(m.start() + 1)  # after the line break
            after.append(fence)
        first = text.find("\n")
        self.after_first = first + 1 if first >= 0 and not text[:first].strip() else -1  # line 0 blank

    def fence_before(self, at: int) -> str | None:
        """The fence open before the line that starts at `at`."""
        k = bisect.bisect_left(self.fence_lines, at)
        return self.fence_after[k - 1] if k else None

    def _best(self, low: int, last: int) -> list[int]:
        """The line starts of rank 3 from `low` to `last`, in order."""
        lines, after = self.fence_lines, self.fence_after
        found = []
        for m in _HEAD.finditer(self.text, low - 1, last + 3):
            at = m.start() + 1
            if at > last:
                break
            k = bisect.bisect_left(lines, at)  # as `fence_before`, inline: a few per marker
            if not k or after[k - 1] is None:
                found.append(at)
        closed = self.closed
        i, j = bisect.bisect_left(closed, low), bisect.bisect_right(closed, last)
        return sorted({*found, *closed[i:j]}) if i < j else found

    def _good(self, low: int, last: int) -> list[int]:
        """The line starts from `low` to `last` next to a blank line (before or after it), in order."""
        text = self.text
        found = {self.after_first} if low <= self.after_first <= last else set()
        for m in _BLANK.finditer(text, max(0, text.rfind("\n", 0, low - 1))):
            if m.start() >= last:
                break
            found.update(at for at in (m.start() + 1, m.end() + 1) if low <= at <= last)
        return sorted(found)

    def chosen(self, low: int, last: int) -> int:
        """The start of the line a marker goes before, among the line starts from `low` to `last` (the
        line that would pass the interval): the latest of the best rank, but the first of adjacent
        ones (before a heading, not between it and its fence), as the line-by-line walk chose it —
        of a run of adjacent boundaries it took every other one. `last` when there is none."""
        text = self.text
        for ranks in (self._best, self._good):  # the best rank found decides
            ranked = ranks(low, last)
            if ranked:
                best = ranked[0]
                for at in ranked[1:]:
                    if text.find("\n", best, at - 1) >= 0:  # not the line after the best's: taken
                        best = at
                    # else adjacent to the best: passed over (the next one, if adjacent, is taken)
                return best
        count = text.count("\n", low - 1, last)  # line starts from `low` to `last`: all of rank 1
        if count % 2 == 0 and count:  # every other one taken from the first: the last but one
            return text.rfind("\n", 0, last - 1) + 1
        return last


def _has_long_line(text: str, half: int) -> bool:
    """Whether a line of `text` is longer than `half` characters: a line that starts at `at` and is no
    longer has a line break within `half` characters after it, and the last one there is where the
    next line to look at starts (a few searches a section, not one a line)."""
    at, n = 0, len(text)
    while n - at > half:
        brk = text.rfind("\n", at, at + half + 1)
        if brk < 0:
            return True
        at = brk + 1
    return False


def with_markers(section: str, marker: str, every: int) -> str:
    """`section` with `marker` on its own line at least every `every` characters.

    Within each interval the marker goes at the best boundary in its latter half (see `_Breaks`), so
    it rarely splits a paragraph or a quote; inside a code fence the fence is closed around it and
    reopened, so the content reads the same. Over-long lines are wrapped at white space first
    (quotes are matched with white space normalised, so wrapping keeps them findable). A marker
    placed inside source text (`traces.source_text`) is bracketed as a pause, so it is not counted
    as the run's own words and a quote may still run across it.

    Why offsets: a section is worked on as one text, each marker placed with a few C-level searches
    near its cut (the next line break past the interval, the ranked boundaries looked up, the source
    marks since the last marker); the line-by-line placement made and ranked every line in Python,
    a tenth of a big trace's plan. The same places: `tests/test_markers_same_places.py`.
    """
    if len(section) <= every:
        return section
    text = _scaffolding_redacted(section)
    half = every // 2
    if _has_long_line(text, half):
        text = "\n".join(
            [piece for line in text.split("\n") for piece in (_wrap(line, half) if len(line) > half else (line,))]
        )
    breaks = _Breaks(text)
    least = every * 2 // 5
    out: list[str] = []
    start = done = 0  # the current interval's first line; where the text not yet put out starts
    src = False  # source text open at `done`
    n = len(text)
    while True:
        end = text.find("\n", start + every)  # the line break of the first line that passes the interval
        if end < 0:
            if n < start + every:  # the rest fits (its last line counted with a line break)
                break
            end = n
        last = text.rfind("\n", start, end) + 1  # that line's start
        best = breaks.chosen(start + least, last)
        close, opened = text.rfind(CLOSE, done, best), text.rfind(OPEN, done, best)
        if close >= 0 or opened >= 0:
            src = opened > close
        open_fence = breaks.fence_before(best)
        inserted = [open_fence, marker, open_fence] if open_fence else [marker]
        if src:
            inserted[0] = PAUSE + inserted[0]
            inserted[-1] = inserted[-1] + RESUME
        out += [text[done:best], "\n".join(inserted), "\n"]
        start = done = best
    if not out:
        return text
    out.append(text[done:])
    note_rendered(marker)  # put among the values: the file's pass takes what is found in it as looked through
    return "".join(out)
