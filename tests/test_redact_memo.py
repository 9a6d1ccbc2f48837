"""Redaction's prefilter from a text's words (`redact_memo`) finds exactly what looking through
the whole text finds — planted secrets, literals glued together and apart, upper case, text past
ASCII, white space of every kind, the literal that holds a space — each word looked through once,
and with a bounded memory."""

from __future__ import annotations

import random

import pytest

from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.traces import load_traces, redact, redact_memo, redact_scan
from refinery.traces.redact import RedactionReport, redact_value, redacting
from refinery.traces.redact_memo import WordMemo
from tests.helpers import SHARED
from tests.test_planted_secrets import planted_trace
from tests.test_redact_prefilter import TEXTS

REAL = (
    sorted((SHARED / "eval-data" / "trail" / "traces").glob("*/*.json"))[::5]
    + sorted((SHARED / "trace-samples").rglob("*.json"))[::4]
)

SPACES = [" ", "\n", "\t", "\r\n", "\x0b", "\x1c", "\x85", "\xa0", "\u2003", "\u3000", "\u2028"]


def _memo() -> WordMemo:
    return WordMemo(redact._scanned_words, redact._SPACED)  # as a rendering learns words


def _varied() -> list[str]:
    rng = random.Random(11)
    words = sorted(redact_scan._LITERALS | {p for p in redact._PREFIXES.values() if p}) + ["the", "É", "İ", "ΣΑΣ", "x"]
    out = []
    for _ in range(600):
        parts = [rng.choice(words) for _ in range(rng.randint(1, 30))]
        out.append("".join(p + (rng.choice(SPACES) if rng.random() < 0.6 else "") for p in parts))
    return [*TEXTS, *out, *(t.upper() for t in out[:100]), "PRIVATE KEY", "private\nkey", "a private  key"]


def test_what_a_texts_words_hold_is_what_the_text_holds():
    memo = _memo()
    for i, text in enumerate(_varied()):
        assert memo.found(text) == redact._scanned(text), (i, text[:80])


def test_each_word_is_looked_through_once():
    looked: list[str] = []
    memo = WordMemo(lambda text: looked.append(text) or redact._scanned(text), ())
    memo.found("the agent read the api_key page")
    memo.found("the page the agent read")
    assert len(looked) == 1 and sorted(looked[0].split("\n")) == ["agent", "api_key", "page", "read", "the"]
    assert memo.found("read the API_KEY") == ({"api_key"}, set())


def test_the_words_remembered_are_bounded_and_the_findings_the_same_after_forgetting(monkeypatch):
    monkeypatch.setattr(redact_memo, "MOST_WORDS", 20)
    memo, most = _memo(), 20
    for i, text in enumerate(_varied()[:300]):
        most = max(most, len(set(text.split())))  # a text's own words are all remembered
        assert memo.found(text) == redact._scanned(text), i
        assert len(memo._known) <= most


def test_a_redacting_block_prefilters_from_words_and_redacts_as_before():
    texts = _varied()
    plain = [(redact.redact_text(t, r := RedactionReport()), r.as_dict()) for t in texts]
    with redacting(report := RedactionReport()):
        inside = [redact_value(t) for t in texts]
        assert redact._RENDERING.get()[3]._known  # the words were remembered
    assert inside == [out for out, _ in plain]
    total: dict[str, int] = {}
    for _, counts in plain:
        for kind, n in counts.items():
            total[kind] = total.get(kind, 0) + n
    assert report.as_dict() == dict(sorted(total.items())) and total


def test_no_text_a_rule_begins_with_holds_white_space():
    """What lets the prefixes be found word by word."""
    assert not [p for p in redact._PREFIXES.values() if any(ch.isspace() for ch in p)]
    assert redact._SPACED == {"private key"}


def _rendering(trace):
    files, report = StagedFailureAnalyst().rendering(trace)
    try:
        return list(files), report.as_dict()
    finally:
        files.close()


@pytest.mark.parametrize("name", ["otlp_trace.json", "langsmith_runs.json", "plain_chat.json", "swe_agent.traj"])
def test_planted_secrets_render_and_count_as_when_each_text_is_looked_through(name, tmp_path, monkeypatch):
    trace = load_traces(planted_trace(name, tmp_path))[0]
    by_words = _rendering(trace)
    monkeypatch.setattr(WordMemo, "found", lambda self, text: redact._scanned(text))
    assert by_words == _rendering(trace) and by_words[1]


@pytest.mark.skipif(not REAL, reason="../shared/eval-data not present")
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_traces_render_and_count_as_when_each_text_is_looked_through(path, monkeypatch):
    trace = load_traces(path)[0]
    by_words = _rendering(trace)
    monkeypatch.setattr(WordMemo, "found", lambda self, text: redact._scanned(text))
    assert by_words == _rendering(trace)


def _id_like() -> list[str]:
    """Words written as ids and times are (hex, digits, `T`, `Z`, punctuation, run marks), with the
    literals and texts rules begin with that can be written so planted in them, and others not."""
    rng = random.Random(23)
    alphabet = redact_scan._ID_CHARS.replace("\n", "")
    lower = {c.lower() for c in alphabet}
    literals = [lit for lit in sorted(redact_scan._LITERALS) if set(lit) <= lower]  # not `_ID_LITERALS`: found anew
    prefixes = [p for p in sorted(set(redact._PREFIXES.values())) if p and set(p) <= set(alphabet)]
    planted = [*literals, *(lit.upper() for lit in literals), *prefixes]
    out = []
    for _ in range(3000):
        words = []
        for _ in range(rng.randint(1, 8)):
            word = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
            if rng.random() < 0.3:
                at = rng.randint(0, len(word))
                word = word[:at] + rng.choice(planted) + word[at:]
            if rng.random() < 0.05:  # one character no id is written with: looked through as any text
                word += rng.choice(["g", "sk-", "token", "é", " "])
            words.append(word)
        out.append("\n".join(words))
    return out


def test_ids_and_times_are_looked_through_for_what_they_can_hold_with_the_same_findings():
    texts = _id_like()
    assert any(redact._scanned(t)[0] for t in texts) and any(redact._scanned(t)[1] for t in texts)
    for i, text in enumerate([*texts, *_varied()]):
        assert redact._scanned_words(text) == redact._scanned(text), (i, text[:80])


def test_the_literals_an_id_can_hold_are_every_literal_written_with_its_characters():
    chars = set(redact_scan._ID_CHARS)
    assert set(redact_scan._ID_LITERALS) == {
        lit for lit in redact_scan._LITERALS if set(lit) <= {c.lower() for c in chars}
    }
    assert set(redact_scan._ID_PREFIXES) == {p for p in redact._PREFIXES.values() if p and set(p) <= chars}
