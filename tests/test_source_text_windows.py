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


def _whole(marked: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group(0)) for m in source_text._MARKS.finditer(marked)]


@pytest.mark.parametrize("window", [1, 2, 3, 5, 8, 13, 64])
def test_the_marks_found_window_by_window_are_those_of_one_search(monkeypatch, window):
    monkeypatch.setattr(source_text, "_WINDOW", window)
    rng = random.Random(window)
    for _ in range(200):
        marked = _marked(rng, rng.randint(0, 30))
        assert [(m.start(), m.end(), m.group(0)) for m in source_text._marks(marked)] == _whole(marked)


def test_a_run_mark_across_a_windows_edge_is_found_whole(monkeypatch):
    monkeypatch.setattr(source_text, "_WINDOW", 4)
    marked = f"ab{RUN}run-long-id{RUN_END}{OPEN}text{CLOSE}"
    assert [m.group(0) for m in source_text._marks(marked)] == [f"{RUN}run-long-id{RUN_END}", OPEN, CLOSE]


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
