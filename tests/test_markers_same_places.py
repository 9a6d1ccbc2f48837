"""The run-id markers go exactly where the line-by-line placement put them (its code kept here as
the reference; `with_markers` now works on offsets in the section's text): on random sections of
headings, fences (ours and the content's, of three to five backticks), blank lines and lines of
white space only, long lines wrapped (backticks, marks and white space among their words), source
text marked open and closed across lines, at every spacing."""

from __future__ import annotations

import random

from refinery.traces.markers import _wrap, with_markers
from refinery.traces.source_text import CLOSE, OPEN, PAUSE, RESUME, is_open_after


def _rank(prev: tuple[str, str | None], line: tuple[str, str | None]) -> int:
    (prev_text, prev_fence), (text, fence) = prev, line
    if fence is None and (text.startswith("#") or text.startswith("```") or prev_fence is not None):
        return 3
    if not text.strip() or not prev_text.strip():
        return 2
    return 1


def _reference(section: str, marker: str, every: int) -> str:
    """`with_markers` as it was written line by line (outside a `redacting` block)."""
    if len(section) <= every:
        return section
    lines: list[tuple[str, str | None]] = []
    in_source: list[bool] = []
    fence: str | None = None
    src = False
    for raw in section.split("\n"):
        for line in _wrap(raw, every // 2) if len(raw) > every // 2 else (raw,):
            lines.append((line, fence))
            in_source.append(src)
            src = is_open_after(line, src)
            if "```" not in line:
                continue
            stripped = line.strip()
            if fence is None and stripped.startswith("```") and set(stripped) == {"`"}:
                fence = stripped
            elif fence is not None and stripped == fence:
                fence = None
    out: list[str] = []
    start, size, i = 0, 0, 0
    while i < len(lines):
        length = len(lines[i][0]) + 1
        if size + length > every and i > start:
            best, best_rank, acc = i, 0, 0
            for j in range(start + 1, i + 1):
                acc += len(lines[j - 1][0]) + 1
                if acc >= every * 2 // 5:
                    rank = _rank(lines[j - 1], lines[j])
                    if rank > best_rank or (rank == best_rank and j - 1 != best):
                        best, best_rank = j, rank
            out.extend(line for line, _ in lines[start:best])
            open_fence = lines[best][1]
            inserted = [open_fence, marker, open_fence] if open_fence else [marker]
            if in_source[best]:
                inserted[0] = PAUSE + inserted[0]
                inserted[-1] = inserted[-1] + RESUME
            out += inserted
            start, size = best, sum(len(line) + 1 for line, _ in lines[best:i])
            continue
        size += length
        i += 1
    out.extend(line for line, _ in lines[start:])
    return "\n".join(out)


PIECES = ["## Run 001: x [run_id: r]", "### Inputs (r)", "```", "````", "  ```", "", " ", "#### message 1 · user",
          OPEN, CLOSE, OPEN + "the agent", "said" + CLOSE, "word " * 30, "x" * 700, "a b " * 200, "- name: y",
          "# heading", "text with ``` inside", "```python", "\t"]  # fmt: skip


def test_markers_go_where_the_line_by_line_placement_put_them():
    rng = random.Random(5)
    for _ in range(1500):
        section = "\n".join(
            rng.choice(PIECES) + rng.choice(["", " more", OPEN, CLOSE]) for _ in range(rng.randint(1, 80))
        )
        every = rng.choice([200, 333, 1000])
        assert with_markers(section, "[run_id: r · continued]", every) == _reference(
            section, "[run_id: r · continued]", every
        ), section[:200]


def _line(rng: random.Random, every: int) -> str:
    """A line of a section: what the renderer writes, what a trace's text holds, or a long line."""
    kind = rng.random()
    if kind < 0.15:
        return rng.choice(["", "", " ", "\t", "  \t ", "\r", "\u3000", "\x0b", "\xa0 "])  # blank, or white space only
    if kind < 0.3:
        ticks = "`" * rng.randint(3, 5)
        return rng.choice([ticks, ticks, " " + ticks, ticks + " ", ticks + "python", "x " + ticks, ticks + "`" + OPEN])
    if kind < 0.4:
        return rng.choice(["#", "# h", "### Inputs (r)", "#### message 3 · user", " # not a heading", "#" + OPEN + "x"])
    if kind < 0.5:  # a long line: wrapped at its white space, or cut hard where it has none
        words = [rng.choice(["word", "x" * rng.randint(1, every // 8), "```", "````", OPEN, CLOSE, "#", "", "\t"])
                 for _ in range(rng.randint(1, every // 8))]  # fmt: skip
        return rng.choice([" ", "  ", " " * rng.randint(1, 4)]).join(words)
    words = [
        "".join(rng.choice("ab `#" + OPEN + CLOSE) for _ in range(rng.randint(0, 9))) for _ in range(rng.randint(0, 12))
    ]
    return " ".join(words)


def test_markers_go_where_the_line_by_line_placement_put_them_at_every_spacing():
    rng = random.Random(11)
    for _ in range(1500):
        every = rng.randint(200, 1600)
        lines = [_line(rng, every) for _ in range(rng.randint(1, 120))]
        if rng.random() < 0.3:  # source text opened on one line and closed lines later
            lines[rng.randrange(len(lines))] += OPEN
            lines[rng.randrange(len(lines))] = CLOSE + lines[-1]
        if rng.random() < 0.1:  # a first line of white space only, long enough to be past a marker's least
            lines[0] = rng.choice(" \t") * rng.randint(every // 3, every // 2)
        section = "\n".join(lines)
        marker = rng.choice(
            ["[run_id: r · continued]", "[run_id: r-" + "9" * rng.randint(1, 40) + " · Run 001 · continued]"]
        )
        assert with_markers(section, marker, every) == _reference(section, marker, every), (every, section[:300])
