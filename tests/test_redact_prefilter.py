"""Redaction's prefilter: the literals looked for by their rarest character, and the rules looked
up from what was found, decide exactly what looking for every literal and testing every rule
decided — on every planted secret, alone and together, in either case, on random text and on text
longer than one window; and a rendered file's pass reuses what was found in its values."""

from __future__ import annotations

import random
import re

import pytest

from refinery.traces import load_trace, redact, redact_scan
from refinery.traces.redact import RedactionReport, redact_rendered, redact_text, redact_value, redacting
from refinery.traces.redact_rules import MARKS
from refinery.traces.render import iter_marked_files
from refinery.traces.source_text import source
from tests.secret_shapes import PLANTS
from tests.test_planted_secrets import planted_trace


def _texts() -> list[str]:
    rng = random.Random(37)
    planted = [f"before {text} after" for _, text, _ in PLANTS]
    words = sorted(redact_scan._LITERALS | {p for p in redact._PREFIXES.values() if p}) + [
        "the",
        "run",
        "é",
        "\n",
        "  ",
    ]
    shuffled = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 40))) for _ in range(400)]
    glued = ["".join(rng.choice(words) for _ in range(rng.randint(1, 20))) for _ in range(200)]
    return [
        *planted,
        " ".join(planted),
        *shuffled,
        *glued,
        *(t.upper() for t in shuffled[:100]),
        "x" * 70_000 + " token",
    ]


TEXTS = _texts()


def _every_literal(text: str) -> set[str]:
    low = text.lower()
    return {lit for lit in redact_scan._LITERALS if lit in low}


def _every_rule(present: set[str], text: str) -> list[redact.Rule]:
    """The rules as they were chosen before the lookup: each tested in turn."""
    return [
        rule
        for rule, literals, prefix in redact._ORDER
        if (not present.isdisjoint(literals) if literals else prefix in text)  # "" is in every text
    ]


def test_the_literals_found_are_those_that_occur():
    for i, text in enumerate(TEXTS):
        assert redact_scan._literals_in(text) == _every_literal(text), i


def test_the_rules_run_are_those_each_rule_would_have_let_through():
    for i, text in enumerate(TEXTS):
        present = redact_scan._literals_in(text)
        starts = redact_scan._found(text, redact_scan._PREFIX_GUARDS, set())
        assert starts == {p for p in redact._PREFIXES.values() if p and p in text}, i
        assert redact._rules_for(present, starts) == _every_rule(present, text), i


def test_every_planted_secret_is_redacted_as_when_every_rule_runs(monkeypatch):
    texts = [f"before {text} after" for _, text, _ in PLANTS]
    fast = [(redact_text(t, r := RedactionReport()), r.as_dict()) for t in texts]
    monkeypatch.setattr(redact, "_ORDER", [(rule, (), "") for rule, _, _ in redact._ORDER])
    assert fast == [(redact_text(t, r := RedactionReport()), r.as_dict()) for t in texts]
    assert all(counts for _, counts in fast)


def test_no_literal_holds_a_line_break_or_a_mark():
    """What lets a rendered file's pass add up what was found between its marks and line breaks."""
    words = redact_scan._LITERALS | set(redact._PREFIXES.values())
    assert not [w for w in words if re.search(f"[\n{MARKS}]", w)]


def _rendered(trace, pass_over_file) -> tuple[list[str], dict[str, int]]:
    report = RedactionReport()
    with redacting(report):
        files = [pass_over_file(marked, report) for _, marked in iter_marked_files(trace)]
    return files, report.as_dict()


@pytest.mark.parametrize("name", ["otlp_trace.json", "langsmith_runs.json", "plain_chat.json", "openhands_events.json"])
def test_a_rendered_file_is_redacted_as_when_every_character_is_looked_through(name, tmp_path):
    """The pass over a whole rendered file reuses what was found in its values: the files and the
    counts are those of looking through the whole file again, secrets planted in every field."""
    trace = load_trace(planted_trace(name, tmp_path))
    reused = _rendered(trace, redact_rendered)
    assert reused == _rendered(trace, redact_text)
    assert reused[1]  # secrets were found and replaced


def test_the_values_left_as_they_were_are_not_looked_through_again(monkeypatch):
    """Only what the renderer wrote around the values (and any value a rule changed) is looked
    through in the pass over the whole file."""
    value = "the agent read the page and wrote a plan " * 40
    looked: list[str] = []
    for name in ("_prefiltered", "_prefiltered_own"):  # the renderer's own text: its numbers alike
        prefiltered = getattr(redact, name)
        monkeypatch.setattr(redact, name, lambda text, f=prefiltered: looked.append(text) or f(text))
    with redacting(RedactionReport()):
        marked = f"## Run 001: search\n{source(value)}\n- name: {source('sk-' + 'a1B2c3D4e5' * 5)}\n"
        looked.clear()
        out = redact_rendered(marked)
    assert "[REDACTED:openai_key]" in out
    assert looked and value not in "".join(looked) and "## Run 001: search" in looked[-1]


def test_a_big_file_is_not_split_at_its_marks_in_one_call(monkeypatch):
    """A file over the split limit (a big trace's index) is searched a window at a time as
    `redact_text` searches it — splitting it whole would hold the GIL, and a host's loop, for all of
    it — with the same result, and what was noted of its values is let go all the same."""
    monkeypatch.setattr(redact, "_WHOLE_SPLIT_CHARS", 50)
    splits: list[str] = []
    outside = redact.outside_values
    monkeypatch.setattr(redact, "outside_values", lambda t: splits.append(t) or outside(t))
    with redacting(RedactionReport()):
        value = "the agent read the page and wrote a plan"
        redact_value(value)
        marked = f"## Run 001: search\n{source(value)}\n- name: {source('sk-' + 'a1B2c3D4e5' * 5)}\n"
        out = redact_rendered(marked)
        seen = redact._RENDERING.get()[2]
        assert not seen.present and not seen.starts and seen.opened == 0  # let go
    assert splits == [] and out == redact_text(marked)
    assert "[REDACTED:openai_key]" in out


def test_a_big_text_s_prefixes_are_found_a_piece_at_a_time_as_in_one_search(monkeypatch):
    """Over the piece size (a big trace's index) the prefix search goes a piece at a time (one
    search would hold the GIL), and finds what one search finds, a prefix across two pieces too."""
    monkeypatch.setattr(redact_scan, "PIECE_CHARS", 64)  # where the scans read it
    for i, text in enumerate(TEXTS):
        assert redact_scan._found(text, redact_scan._PREFIX_GUARDS, set()) == {
            p for p in redact._PREFIXES.values() if p and p in text
        }, i
