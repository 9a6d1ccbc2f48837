"""What a stage reads with no store (`analysis/inline_reading.py`): pieces cut to fair shares of
the room with the renderer's cut note, what was left out named, the rest of the trace while it fits."""

from __future__ import annotations

from refinery.analysis.analysis_run import AnalysisRun
from refinery.analysis.inline_reading import Piece, fitted_pieces, flagged_runs, pieces_text, within_budget
from refinery.analysis.verification import RunTexts
from refinery.core.tokens import estimate_tokens
from refinery.traces.spool import upload_files_for
from tests.fixtures_traces import make_trace


def piece(name: str, words: int, run_id: str | None = None) -> Piece:
    return Piece(name, " ".join(f"w{i}" for i in range(words)), run_id)


def test_small_pieces_are_kept_whole_and_the_large_ones_cut_to_an_equal_share():
    small, big1, big2 = piece("a.md", 20), piece("b.md", 4000), piece("c.md", 6000)
    kept, dropped = fitted_pieces([small, big1, big2], 2000)
    assert dropped == [] and kept[0].text == small.text
    assert "characters cut here" in kept[1].text and "characters cut here" in kept[2].text
    assert sum(p.tokens + 40 for p in kept) <= 2000 + 80  # the cut notes, counted loosely


def test_a_share_too_small_to_read_leaves_the_piece_out_and_names_it():
    pieces = [piece(f"f{i}.md", 500, f"run-{i}") for i in range(40)]
    kept, dropped = fitted_pieces(pieces, 1000)
    assert kept == [] and len(dropped) == 40
    assert "left out for room: f0.md (run run-0)" in pieces_text(kept, dropped)


def test_the_failed_runs_come_first_then_what_stage_1_flagged_each_once():
    files, _ = upload_files_for(make_trace(n_runs=4, fail_at=3))
    run = AnalysisRun(texts=RunTexts(files), failed_runs=("run-3",))
    assert flagged_runs(run, None) == ["run-3"]


def test_the_rest_of_the_trace_fills_the_room_left_whole_runs_in_order():
    flagged = [piece("a.md", 50, "run-1")]
    rest = [piece("a.md", 100, f"run-{i}") for i in range(2, 30)]
    text = within_budget("base", flagged, estimate_tokens, 2000, iter(rest), len(rest))
    assert "(run run-1)" in text and "(run run-2)" in text
    shown = sum(f"(run run-{i}) =====" in text for i in range(2, 30))
    assert 0 < shown < len(rest)
    assert f"… and {len(rest) - shown} other runs of the trace, not shown for room" in text
