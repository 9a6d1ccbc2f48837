"""The marks of a rendered file are found a window at a time (so no one search holds the GIL for a
whole big file), and the windows change nothing: the matches, the clean text and the layout are
those of one search over the whole file, wherever a window's edge falls."""

from __future__ import annotations

import random

import pytest

from refinery.traces import source_text
from refinery.traces.source_text import CLOSE, OPEN, PAUSE, RESUME, RUN, RUN_END, strip_marks


def _marked(rng: random.Random, pieces: int) -> str:
    """Marked text as the renderer writes it, with the odd stray mark character a window's edge might meet."""
    out = []
    for _ in range(pieces):
        out.append(
            rng.choice(
                [
                    f"{RUN}run-{rng.randint(0, 999)}{RUN_END}",
                    f"{OPEN}{'word ' * rng.randint(0, 6)}{CLOSE}",
                    f"{PAUSE}[marker]{RESUME}",
                    "plain scaffolding\n",
                    RUN_END,  # a closing mark alone: no match starts there
                    RUN,  # a run mark never closed when it is the last: no match
                ]
            )
        )
    return "".join(out)


def _whole(marked: str) -> list[tuple[int, int, str, str]]:
    """The marks as one search with `_MARKS` finds them (and each run mark's id)."""
    return [(m.start(), m.end(), m.group(0), m.group(1) or "") for m in source_text._MARKS.finditer(marked)]


def _found(marked: str) -> list[tuple[int, int, str, str]]:
    return [(start, end, marked[start:end], run_id) for start, end, _, run_id in source_text._marks(marked)]


@pytest.mark.parametrize("window", [1, 2, 3, 5, 8, 13, 64])
def test_the_marks_found_window_by_window_are_those_of_one_search(monkeypatch, window):
    monkeypatch.setattr(source_text, "_WINDOW", window)
    rng = random.Random(window)
    for _ in range(200):
        marked = _marked(rng, rng.randint(0, 30))
        assert _found(marked) == _whole(marked)


def test_a_run_mark_across_a_windows_edge_is_found_whole(monkeypatch):
    monkeypatch.setattr(source_text, "_WINDOW", 4)
    marked = f"ab{RUN}run-long-id{RUN_END}{OPEN}text{CLOSE}"
    assert [text for _, _, text, _ in _found(marked)] == [f"{RUN}run-long-id{RUN_END}", OPEN, CLOSE]


def test_windows_leave_the_clean_text_and_layout_as_one_search_makes_them(monkeypatch):
    rng = random.Random(7)
    marked = _marked(rng, 3000)
    whole_text, whole_layout = strip_marks(marked)
    monkeypatch.setattr(source_text, "_WINDOW", 37)
    text, layout = strip_marks(marked)
    assert text == whole_text
    assert layout == whole_layout
    assert layout.run_ids  # the sample holds runs and segments
    assert len(layout.segments) > 0


def test_the_marks_are_those_one_search_with_the_mark_pattern_finds():
    """`_marks` looks for any mark character and then for a run mark's end: the same matches as the
    pattern's alternation, on text with runs nested, unclosed and ended twice."""
    rng = random.Random(3)
    for _ in range(2000):
        marked = "".join(rng.choice([RUN, RUN_END, OPEN, CLOSE, PAUSE, RESUME, "a", "bc", "\n"]) for _ in range(40))
        assert _found(marked) == _whole(marked), repr(marked)


def _strip_reference(marked: str) -> tuple[str, source_text.FileLayout]:
    """`strip_marks` as written over `_MARKS.finditer` in one search (the code before `_marks` found
    mark characters first)."""
    layout = source_text.FileLayout()
    out: list[str] = []
    pos = last = 0
    seg_start: int | None = None
    joined = paused = False

    def end_segment(at: int) -> None:
        if seg_start is not None and at > seg_start and layout.run_ids:
            layout.segments.extend((len(layout.run_ids) - 1, seg_start, at, int(joined)))

    for m in source_text._MARKS.finditer(marked):
        piece = marked[last : m.start()]
        out.append(piece)
        pos += len(piece)
        last = m.end()
        mark = m.group(0)[0]
        if mark == RUN:
            end_segment(pos)
            seg_start, paused = None, False
            layout.run_ids.append(m.group(1))
            layout.run_starts.append(pos)
        elif mark == OPEN:
            end_segment(pos)
            seg_start, joined, paused = pos, False, False
        elif mark == CLOSE:
            end_segment(pos)
            seg_start, paused = None, False
        elif mark == PAUSE and seg_start is not None:
            end_segment(pos)
            seg_start, paused = None, True
        elif mark == RESUME and paused:
            seg_start, joined, paused = pos, True, False
    out.append(marked[last:])
    pos += len(marked) - last
    end_segment(pos)
    layout.length = pos
    return "".join(out), layout


def test_the_clean_text_and_layout_are_those_of_one_search_with_the_mark_pattern():
    rng = random.Random(9)
    for _ in range(300):
        marked = _marked(rng, rng.randint(0, 60))
        assert strip_marks(marked) == _strip_reference(marked)


@pytest.mark.parametrize("window", [1, 3, 8, 64, 1 << 18])
def test_the_clean_text_and_layout_are_the_references_on_any_mix_of_marks(monkeypatch, window):
    """Marks in every order — runs nested, unclosed, ended twice, marks inside a run's id, segments
    paused and resumed out of turn — windows of every size: `strip_marks` reads them as one search
    with the mark pattern does."""
    monkeypatch.setattr(source_text, "_WINDOW", window)
    rng = random.Random(window)
    pieces = [RUN, RUN_END, OPEN, CLOSE, PAUSE, RESUME, "a", "bc", "\n", f"{RUN}r-1{RUN_END}", "word "]
    for _ in range(1500):
        marked = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        assert strip_marks(marked) == _strip_reference(marked), repr(marked)
