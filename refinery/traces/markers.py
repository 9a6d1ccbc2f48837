"""Run-id markers repeated through long run sections, so every chunk the store cuts says which
run it came from. Pure.

Why: `file_search` retrieves chunks (800-token windows every 400 tokens), not files; a chunk from
the middle of a long LLM span would otherwise carry no run id and could not be cited. A marker
goes at the best boundary of each interval (between messages, then a blank line, then a line
end) so it rarely splits a quote; inside a code fence the fence is closed around it and
reopened, so the content reads the same.
"""

from __future__ import annotations

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


def _break_ranks(lines: list[str], fences: list[str | None]) -> list[int]:
    """How good a place for a marker the boundary before each line is (the first: none): between
    messages or sections best (a quote never spans one: a heading, or the edge of one of our own
    fences, not a fence inside the content), then a blank line, then any line end."""
    blank = [not line.strip() for line in lines]
    return [0] + [
        3
        if fences[j] is None and (lines[j].startswith(("#", "```")) or fences[j - 1] is not None)
        else 2
        if blank[j] or blank[j - 1]
        else 1
        for j in range(1, len(lines))
    ]


def with_markers(section: str, marker: str, every: int) -> str:
    """`section` with `marker` on its own line at least every `every` characters.

    Within each interval the marker goes at the best boundary in its latter half (see
    `_break_ranks`), so it rarely splits a paragraph or a quote; inside a code fence the fence is
    closed around it and reopened, so the content reads the same. Over-long lines are wrapped at
    white space first (quotes are matched with white space normalised, so wrapping keeps them
    findable). A marker placed inside source text (`traces.source_text`) is bracketed as a pause,
    so it is not counted as the run's own words and a quote may still run across it.
    """
    if len(section) <= every:
        return section
    section = _scaffolding_redacted(section)
    added = False
    lines: list[str] = []
    fences: list[str | None] = []  # the fence open before each line
    in_source: list[bool] = []  # source text open before each line
    fence: str | None = None
    src = False
    half = every // 2
    for raw in section.split("\n"):
        for line in _wrap(raw, half) if len(raw) > half else (raw,):
            lines.append(line)
            fences.append(fence)
            in_source.append(src)
            close, opened = line.rfind(CLOSE), line.rfind(OPEN)  # as `source_text.is_open_after`
            if close >= 0 or opened >= 0:
                src = opened > close
            if "```" not in line:  # neither opens nor closes a fence (a fence is three backticks or more)
                continue
            stripped = line.strip()
            if fence is None and stripped.startswith("```") and set(stripped) == {"`"}:
                fence = stripped
            elif fence is not None and stripped == fence:
                fence = None
    sizes = [len(line) + 1 for line in lines]
    ranks = _break_ranks(lines, fences)
    least = every * 2 // 5
    out: list[str] = []
    start, size, i = 0, 0, 0
    while i < len(lines):
        if size + sizes[i] > every and i > start:
            best, best_rank, acc = i, 0, 0
            for j in range(start + 1, i + 1):
                acc += sizes[j - 1]
                if acc >= least:
                    rank = ranks[j]
                    # the latest best boundary, but the first of adjacent ones (before a heading,
                    # not between it and its fence)
                    if rank > best_rank or (rank == best_rank and j - 1 != best):
                        best, best_rank = j, rank
            out += lines[start:best]
            open_fence = fences[best]
            inserted = [open_fence, marker, open_fence] if open_fence else [marker]
            if in_source[best]:
                inserted[0] = PAUSE + inserted[0]
                inserted[-1] = inserted[-1] + RESUME
            out += inserted
            added = True
            start, size = best, sum(sizes[best:i])
            continue
        size += sizes[i]
        i += 1
    out += lines[start:]
    if added:  # put among the values: the file's pass takes what is found in it as looked through
        note_rendered(marker)
    return "\n".join(out)
