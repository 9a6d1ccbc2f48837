"""Redaction's pass over a rendered file takes its values as looked through — what the prefilter
found in each value (whole, before any cut) and in each marker put among them — and looks through
only what lies outside the values' marks; the files and the counts are those of looking through
every character of each file (`redact_text`): on every fixture format with secrets planted in every
field, on real traces, on random files of values, cuts, markers and planted secrets, and where a
trace's own text holds the private-use characters the renderer marks values with."""

from __future__ import annotations

import random

import pytest

from refinery.errors import RefineryError
from refinery.traces import load_traces, markers, redact, redact_scan
from refinery.traces.redact import RedactionReport, redact_rendered, redact_text, redact_value, redacting
from refinery.traces.render import RenderOptions, iter_marked_files
from refinery.traces.source_text import CLOSE, OPEN, cut, source
from tests.helpers import SHARED
from tests.secret_shapes import PLANTS
from tests.test_planted_secrets import planted_trace

FIXTURES = ["otlp_trace.json", "langsmith_runs.json", "plain_chat.json", "openhands_events.json", "swe_agent.traj"]
REAL = (
    sorted((SHARED / "eval-data" / "trail" / "traces").glob("*/*.json"))[:4]
    + sorted((SHARED / "eval-data" / "who-and-when").glob("*/*.json"))[:4]
    + sorted((SHARED / "trace-samples").rglob("*.json"))[:4]
)
OPTIONS = RenderOptions(marker_every_chars=200, max_field_chars=300)  # many markers and cuts


def _rendered(trace, pass_over_file) -> tuple[list[str], dict[str, int]]:
    report = RedactionReport()
    with redacting(report):
        files = [pass_over_file(marked, report) for _, marked in iter_marked_files(trace, options=OPTIONS)]
    return files, report.as_dict()


@pytest.mark.parametrize("name", FIXTURES)
def test_planted_secrets_are_redacted_as_when_every_character_is_looked_through(name, tmp_path):
    trace = load_traces(planted_trace(name, tmp_path))[0]
    taken = _rendered(trace, redact_rendered)
    assert taken == _rendered(trace, redact_text)
    assert taken[1]  # secrets were found and replaced


@pytest.mark.skipif(not REAL, reason="../shared not present")
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_traces_are_redacted_as_when_every_character_is_looked_through(path):
    try:
        trace = load_traces(path)[0]
    except RefineryError:
        pytest.skip("does not load")
    assert _rendered(trace, redact_rendered) == _rendered(trace, redact_text)


def _random_file(rng: random.Random) -> str:
    """A marked file as the renderer makes them: its own text, values marked as source (some cut,
    some long enough for markers), secrets and literals planted in both, short values."""
    words = ["the", "agent", "read", "token", "do", "gl", "pass", "session", "é", "Bearer", "key:", "://"]
    secrets = [text for _, text, _ in PLANTS]

    def text(n: int) -> str:
        return " ".join(rng.choice(words) if rng.random() > 0.05 else rng.choice(secrets) for _ in range(n))

    parts = []
    for _ in range(rng.randint(1, 6)):
        parts.append(f"## Run 001: {text(rng.randint(0, 3))} [run_id: {rng.choice(['r-1', secrets[0]])}]\n")
        for _ in range(rng.randint(0, 4)):
            value = rng.choice([text(rng.randint(0, 2)), text(rng.randint(3, 200)), "\n".join([text(9)] * 30)])
            marked = source(value, rng.choice([None, 400])) if rng.random() > 0.3 else source(value)
            if rng.random() < 0.3:
                marked = cut(marked, rng.randint(100, 600))
            parts.append(f"- {rng.choice(['value', 'password', 'api_key', 'name'])}: {marked}\n")
        if rng.random() < 0.4:  # the last field given markers as a long section is
            parts[-1] = markers.with_markers(parts[-1], f"[run_id: {rng.choice(['r-2', secrets[1]])} · continued]", 200)
    return "\n\n".join(parts)


def test_random_files_are_redacted_as_when_every_character_is_looked_through():
    rng = random.Random(37)
    for i in range(150):
        state = rng.getstate()
        taken, report = _random_pass(state, redact_rendered)
        assert (taken, report) == _random_pass(state, redact_text), i


def _random_pass(state: object, pass_over_file) -> tuple[str, dict[str, int]]:
    rng = random.Random()
    rng.setstate(state)
    report = RedactionReport()
    with redacting(report):
        marked = _random_file(rng)
        return pass_over_file(marked, report), report.as_dict()


def test_marks_in_the_traces_own_text_have_the_whole_file_looked_through():
    """A run name wrapped in the private-use characters the renderer marks values with would pass
    for a value, looked through already: the marks the renderer did not make are counted, and the
    whole file is looked through."""
    secret = "sk-" + "a1B2c3D4e5" * 5
    with redacting(RedactionReport()):
        marked = f"## Run 001: {OPEN}{secret}{CLOSE}\n{source('the agent read the page')}\n"
        out = redact_rendered(marked)
    assert secret not in out and out == redact_text(marked)


def test_a_marker_put_inside_a_value_counts_with_the_file():
    """A run id holding a secret, in a marker inside a long message, is found though no text
    outside the values holds it."""
    secret = "ghp_" + "Q7w8E9r0" * 4 + "Zz11"
    with redacting(RedactionReport()):
        section = markers.with_markers(f"```\n{source('the agent read the page ' * 40)}\n```", f"[{secret}]", 200)
        assert f"[{secret}]" in section
        out = redact_rendered(section)
    assert secret not in out and out == redact_text(section)


def test_a_short_value_counts_with_the_file(monkeypatch):
    """Values too short to redact alone are looked through together for the file's pass."""
    looked: list[str] = []
    prefiltered = redact._prefiltered_own  # the short values' numbers are alike too
    monkeypatch.setattr(redact, "_prefiltered_own", lambda text: looked.append(text) or prefiltered(text))
    with redacting(RedactionReport()):
        redact_value("token")
        redact_value("gl")
        redact_rendered(f"- a: {OPEN}token{CLOSE}\n- b: {OPEN}gl{CLOSE}\n")
    assert "token\ngl" in looked


def test_a_rule_that_replaces_in_the_files_pass_is_counted_once():
    """Where the pass replaces something (a secret in the renderer's own text), the file is redacted
    again with exactly what looking through it finds: counted once, as `redact_text` counts it."""
    secret = "ghp_" + "Q7w8E9r0" * 4 + "Zz11"
    report = RedactionReport()
    with redacting(report):
        marked = f"## Run 001: {secret}\n{source('the agent read the page')}\n"
        out = redact_rendered(marked, report)
    assert out == redact_text(marked) and report.as_dict() == {"github_token": 1}


def test_what_is_kept_between_files_is_bounded(monkeypatch):
    monkeypatch.setattr(redact, "_SHORT_CHARS", 20)
    with redacting(RedactionReport()):
        for i in range(50):
            redact_value(f"v{i:03d}")
        seen = redact._RENDERING.get()[2]
        assert seen.short_chars <= 20 and len(seen.short) <= 5


def test_no_literal_holds_a_backtick_or_a_mark():
    """What lets a fence put around a marker inside a value go unlooked at."""
    texts = redact_scan._LITERALS | set(redact._PREFIXES.values())
    assert not [t for t in texts if "`" in t or any("\ue000" <= ch <= "\ue005" for ch in t)]


def test_the_span_pattern_is_the_renderers_marks():
    assert redact.SOURCE_SPAN.fullmatch(source("a value"))
    assert (redact._OPEN, redact._CLOSE) == (OPEN, CLOSE)


def test_a_values_literal_lets_a_rule_run_across_the_files_marks():
    """A field's name ending one value and its secret the next: neither is redacted alone, and only
    the first value holds the rule's literal. What was found in the values counts with the file's."""
    with redacting(RedactionReport()):
        marked = f"x {source('my api_token:')}{source('Zq8vN3pL0wX7rT2yK5mB9cD4')}\n"
        assert "Zq8vN3pL0wX7rT2yK5mB9cD4" in marked  # not redacted value by value
        out = redact_rendered(marked)
    assert "Zq8vN3pL0wX7rT2yK5mB9cD4" not in out and out == redact_text(marked)
