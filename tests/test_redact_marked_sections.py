"""A long section's pieces, remembered with what its texts held before its markers went in, are
not looked through again in the file's pass — and the files and counts are those of looking
through every piece: on every fixture format with secrets planted in every field, on real traces,
and where wrapping parts a literal that holds a space."""

from __future__ import annotations

import pytest

from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.errors import RefineryError
from refinery.traces import load_traces, markers, redact
from refinery.traces.redact import RedactionReport, redact_rendered, redact_text, redacting
from refinery.traces.render import RenderOptions
from refinery.traces.source_text import source
from tests.helpers import SHARED
from tests.test_planted_secrets import planted_trace

FIXTURES = ["otlp_trace.json", "langsmith_runs.json", "plain_chat.json", "openhands_events.json", "swe_agent.traj"]
REAL = (
    sorted((SHARED / "eval-data" / "trail" / "traces").glob("*/*.json"))[:4]
    + sorted((SHARED / "eval-data" / "who-and-when").glob("*/*.json"))[:4]
)


def _rendering(trace) -> tuple[list[tuple[str, str]], dict[str, int]]:
    files, report = StagedFailureAnalyst(render_options=RenderOptions(marker_every_chars=200)).rendering(trace)
    try:
        return list(files), report.as_dict()
    finally:
        files.close()


def _without_remembering(monkeypatch, trace):
    with monkeypatch.context() as m:
        m.setattr(markers, "remember_marked", lambda *args: None)
        return _rendering(trace)


@pytest.mark.parametrize("name", FIXTURES)
def test_planted_secrets_are_redacted_as_when_every_piece_is_looked_through(name, tmp_path, monkeypatch):
    trace = load_traces(planted_trace(name, tmp_path))[0]
    remembered = _rendering(trace)
    assert remembered == _without_remembering(monkeypatch, trace)
    assert remembered[1]  # secrets were found and replaced


@pytest.mark.skipif(not REAL, reason="../shared/eval-data not present")
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_traces_are_redacted_as_when_every_piece_is_looked_through(path, monkeypatch):
    try:
        trace = load_traces(path)[0]
    except RefineryError:
        pytest.skip("does not load")
    assert _rendering(trace) == _without_remembering(monkeypatch, trace)


def _long_section(value: str) -> str:
    return markers.with_markers(f"## Run 001: x\n```\n{source(value)}\n```", "[run_id: r-1 · continued]", 200)


def test_the_pieces_of_a_long_section_are_not_looked_through_again(monkeypatch):
    looked: list[str] = []
    prefiltered = redact._prefiltered
    monkeypatch.setattr(redact, "_prefiltered", lambda text: looked.append(text) or prefiltered(text))
    with redacting(RedactionReport()):
        section = _long_section("the agent read the page and wrote a plan\n" * 30)
        looked.clear()
        redact_rendered(section)
    assert looked == [""]  # nothing left unknown: only the empty join of no pieces


def test_a_literal_with_a_space_parted_by_wrapping_leaves_the_pieces_to_the_files_pass(monkeypatch):
    """`private key` wrapped at its space is no longer in the section: nothing is remembered, its
    pieces are looked through in the file's pass, and the file is redacted as `redact_text` would."""
    line = "x" * 85 + " private keyzzzzzzzz" + " tail" * 30  # wrapped at 100 characters: at its space
    looked: list[str] = []
    prefiltered = redact._prefiltered
    monkeypatch.setattr(redact, "_prefiltered", lambda text: looked.append(text) or prefiltered(text))
    with redacting(RedactionReport()):
        section = _long_section(line)
        assert " private\n" in section or " private\ue004" in section
        looked.clear()
        out = redact_rendered(section)
    assert "keyzzzzzzzz" in "".join(looked)
    assert out == redact_text(section)


def test_the_markers_text_counts_with_the_section():
    """A literal in the marker (a run id holding `token`) is found for the section's pieces."""
    with redacting(RedactionReport()):
        section = markers.with_markers(
            f"## Run 001: x\n```\n{source('the agent read the page ' * 40)}\n```", "[run_id: token-run]", 200
        )
        known = redact._RENDERING.get()[2]
        assert [hit for piece, hit in known.items() if "[run_id: token-run]" in piece and "token" in hit[0]]
        assert redact_rendered(section) == redact_text(section)


def test_nothing_is_remembered_outside_a_redacting_block():
    out = _long_section("the agent read the page and wrote a plan\n" * 30)
    assert redact._RENDERING.get() is None and "[run_id: r-1 · continued]" in out


def test_no_text_a_rule_begins_with_holds_a_space():
    """What lets only the literals with a space stop the remembering."""
    assert not [p for p in redact._PREFIXES.values() if " " in p]
    assert redact._SPACED == {lit for lit in redact._LITERALS if " " in lit}
