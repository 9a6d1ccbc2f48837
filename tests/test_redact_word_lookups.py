"""Redaction's word memo looks a text's words up in C (`issuperset`, `isdisjoint` over the word
list, no set a text) and looks for `private key` only where a word holds `private`; a lot of new
words that mixes ids with other words is looked through line by line; a value holding nothing is
returned at once. Each finds exactly what the code before it found: the old memo is kept here as
the reference, text after text, over secrets at every edge of a word, every kind of white space,
line breaks, upper case and text past ASCII."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable

import pytest

from refinery.traces import redact, redact_memo, redact_scan
from refinery.traces.redact import (
    RedactionReport,
    extra_patterns,
    outside_values,
    redact_own_text,
    redact_text,
    redact_value,
    redacting,
)
from refinery.traces.redact_memo import WordMemo
from refinery.traces.redact_rules import FIELD_NAMES, HEADER_NAMES, Rule
from tests.secret_shapes import PLANTS

Found = tuple[set[str], set[str]]
_NOTHING: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())


class _OldWordMemo:
    """`redact_memo.WordMemo` as it was before the word lists were looked up in C (the reference)."""

    def __init__(self, learn: Callable[[str], Found], spaced: Iterable[str]) -> None:
        self._learn = learn
        self._spaced = tuple(spaced)
        self._known: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._hot: dict[str, tuple[frozenset[str], frozenset[str]]] = {}

    def found(self, text: str) -> Found:
        words = set(text.split())
        new = words.difference(self._known)
        if new and len(self._known) + len(new) > redact_memo.MOST_WORDS:
            self._known.clear()
            self._hot.clear()
            new = words
        if new:
            self._see(new)
        present: set[str] = set()
        starts: set[str] = set()
        if self._hot:
            for word in words.intersection(self._hot):
                hit = self._hot[word]
                present |= hit[0]
                starts |= hit[1]
        if self._spaced:
            low = text.lower()
            present.update(lit for lit in self._spaced if lit in low)
        return present, starts

    def _see(self, new: set[str]) -> None:
        words = list(new)
        joined = "\n".join(words)
        present, starts = self._learn(joined)
        self._known.update(dict.fromkeys(words, _NOTHING))
        if not present and not starts:
            return
        hits: dict[str, tuple[set[str], set[str]]] = {}
        lowered = joined.lower().split("\n") if present else []
        for lit in present:
            for i in [i for i, low in enumerate(lowered) if lit in low]:
                hits.setdefault(words[i], (set(), set()))[0].add(lit)
        for start in starts:
            for word in [word for word in words if start in word]:
                hits.setdefault(word, (set(), set()))[1].add(start)
        for word, (lits, begins) in hits.items():
            self._known[word] = self._hot[word] = (frozenset(lits), frozenset(begins))


SPACES = [" ", "\n", "\t", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2003", "\u3000", "\u2028"]
ODD = ["É", "İ", "ΣΑΣ", "ς", "\u212a", "ǅ", "ß", "ﬁ", "é", "\ue000", "\ud800", "日本", "x", "the", "PRİVATE", "PRIVATE"]


def _stream(seed: int, n: int = 1500) -> list[str]:
    """Texts as a rendering sees them: prose, secrets planted at a word's start, end, middle and
    alone, literals glued and apart, `private key` split and joined by every white space."""
    rng = random.Random(seed)
    secrets = [text for _, text, _ in PLANTS]
    words = [
        *sorted(redact_scan._LITERALS | {p for p in redact._PREFIXES.values() if p}),
        *ODD,
        *"private key secret token api auth".split(),
    ]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 25)):
            r = rng.random()
            if r < 0.1:
                word = rng.choice(secrets)
            elif r < 0.2:
                word = "private" + rng.choice(SPACES[:3] + ["", "  "]) + rng.choice(["key", "KEY", "\u212aey", "keys"])
            else:
                word = rng.choice(words)
            if rng.random() < 0.2:
                word = word.upper()
            if rng.random() < 0.2:  # glued to what is around it
                word = rng.choice(ODD) + word + rng.choice(ODD)
            parts.append(word)
        sep = [rng.choice(SPACES) if rng.random() < 0.8 else "" for _ in parts]
        out.append("".join(p + s for p, s in zip(parts, sep)))
    return out


@pytest.mark.parametrize("most", [redact_memo.MOST_WORDS, 40])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_findings_are_the_old_memos_text_after_text(seed, most, monkeypatch):
    monkeypatch.setattr(redact_memo, "MOST_WORDS", most)
    new, old = WordMemo(redact._scanned_words, redact._SPACED), _OldWordMemo(redact._scanned_words, redact._SPACED)
    texts = _stream(seed)
    for i, text in enumerate(texts * 2):  # the second time round every word is known
        assert new.found(text) == old.found(text) == redact._scanned(text), (i, text[:120])
    assert sum(bool(redact._scanned(t)[0]) for t in texts) > len(texts) // 2


def test_private_key_is_found_wherever_it_occurs_and_only_there():
    memo = WordMemo(redact._scanned_words, redact._SPACED)
    texts = [
        "a private key here",
        "A PRIVATE KEY",
        "private \u212aey",  # the Kelvin sign lowers to k
        "xprivate keyx",
        "private\tkey",
        "private  key",
        "PRİVATE KEY",
        "the key is private",
        "private",
        "key",
        "-----BEGIN PRIVATE KEY-----",
    ]
    for text in texts * 2:
        assert memo.found(text) == redact._scanned(text), text
    assert "private key" in memo.found("a private key here")[0]
    assert (
        "private key" not in memo.found("private\tkey")[0] and "private key" not in memo.found("the key is private")[0]
    )


def test_a_literal_with_only_white_space_is_looked_for_in_every_text():
    memo = WordMemo(redact._scanned_words, [" \t"])
    assert memo.found("a \tb") == ({" \t"}, set()) and memo.found("a b") == (set(), set())


def _mixed_lots(seed: int) -> list[str]:
    """Lots of new words as a rendered file brings them: ids and times with the literals they can
    hold, beside names and labels with any literal."""
    rng = random.Random(seed)
    alphabet = redact_scan._ID_CHARS.replace("\n", "")
    planted = [*redact_scan._ID_LITERALS, *(lit.upper() for lit in redact_scan._ID_LITERALS), *redact_scan._ID_PREFIXES]
    others = [*sorted(redact_scan._LITERALS), *sorted(p for p in redact._PREFIXES.values() if p), "run_019-024.md", "é"]
    lots = []
    for _ in range(2000):
        lines = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.5:
                line = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20)))
                if rng.random() < 0.4:
                    at = rng.randint(0, len(line))
                    line = line[:at] + rng.choice(planted) + line[at:]
            else:
                line = rng.choice(alphabet) + rng.choice(others) + rng.choice(["", "x", "-1", "É"])
            lines.append(line)
        lots.append("\n".join(lines))
    return lots


def test_a_lot_mixing_ids_and_other_words_is_found_line_by_line_as_whole():
    lots = _mixed_lots(5)
    assert any(redact._scanned(t)[0] & set(redact_scan._ID_LITERALS) for t in lots)
    assert any(redact._scanned(t)[0] - set(redact_scan._ID_LITERALS) for t in lots)
    for i, lot in enumerate(lots):
        assert redact._scanned_words(lot) == redact._scanned(lot), (i, lot[:120])


def test_values_holding_nothing_come_back_as_they_are_and_the_rest_as_redact_text_makes_them():
    texts = [*_stream(3, 600), *(f"x {text} y" for _, text, _ in PLANTS)]
    with redacting(report := RedactionReport()):
        inside = [redact_value(t) for t in texts]
        seen = redact._RENDERING.get()[2]
        noted = (set(seen.present), set(seen.starts))
    expected = [(redact_text(t, r := RedactionReport()), r) for t in texts]
    assert inside == [out for out, _ in expected]
    assert all(out is t for out, t in zip(inside, texts) if not any(redact._scanned(t)) and len(t) >= 8)
    total: dict[str, int] = {}
    for _, r in expected:
        for kind, n in r.counts.items():
            total[kind] = total.get(kind, 0) + n
    assert report.as_dict() == dict(sorted(total.items()))
    long_texts = [t for t in texts if len(t) >= 8]
    assert noted[0] >= set().union(*(redact._scanned(t)[0] for t in long_texts))


@pytest.mark.parametrize("how", ["redacting", "extra_patterns"])
def test_a_value_holding_no_literal_still_meets_an_organisations_own_pattern(how):
    text = "the order ACME-12345678 was read"
    pattern = re.compile(r"ACME-\d{8}")
    report = RedactionReport()
    if how == "redacting":
        with redacting(report, [pattern]):
            out = redact_value(text)
    else:
        with extra_patterns([pattern]), redacting(report):
            out = redact_value(text)
    assert out == "the order [REDACTED:custom] was read" and report.as_dict() == {"custom": 1}


def test_a_rule_that_needs_no_literal_still_runs_over_a_value_holding_none(monkeypatch):
    """Were a catalogue rule to need neither a literal nor a text it begins with, it would run over
    every value (as `_rules_for` has it), though the value holds nothing the prefilter looks for."""
    rule = Rule("order_number", "test", (), re.compile(r"ACME-\d{8}"))
    monkeypatch.setattr(redact, "_ORDER", [(rule, frozenset(), ""), *redact._ORDER])
    text = "the order ACME-12345678 was read"
    assert redact._scanned(text) == (set(), set())
    with redacting(report := RedactionReport()):
        assert redact_value(text) == "the order [REDACTED:order_number] was read"
    assert report.as_dict() == {"order_number": 1}


def test_the_text_outside_the_values_is_what_the_marks_pattern_leaves():
    """`outside_values` against `SOURCE_SPAN.split` on any mix of marks: values nested, unclosed,
    closed twice, empty, at either end, and a trace's own text past ASCII."""
    rng = random.Random(17)
    alphabet = ["\ue000", "\ue001", "\ue002", "\ue003", "\ue004", "a", "b", "\n", " ", "é", "日", "\U0001f600"]
    texts = ["", "\ue000", "\ue001", "\ue000\ue001", "\ue000\ue000a\ue001\ue001", "x\ue000y"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(20_000)]
    for text in texts:
        assert outside_values(text) == redact.SOURCE_SPAN.split(text), repr(text)


def _numbered(seed: int) -> list[str]:
    """The renderer's own text as it writes it — ids, times, counts — with every literal and text
    rules begin with planted among them, those that hold a digit with other digits too (`sq5` is
    not `sq0`, though both are written alike)."""
    rng = random.Random(seed)
    digits = [lit for lit in [*redact._DIGIT_LITERALS, *redact._DIGIT_PREFIXES]]
    near = [lit.translate(str.maketrans("0123456789", "5678901234")) for lit in digits]
    words = [*sorted(redact_scan._LITERALS), *sorted(p for p in redact._PREFIXES.values() if p), *digits, *near]
    words += ["run_id:", "## Run", "·", "—", "\ue002", "\ue004", "٣", "１", "\ud800", "PRIVATE KEY", "é"]
    out = []
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(1, 12)):
            number = str(rng.randint(0, 10 ** rng.randint(1, 18)))
            r = rng.random()
            if r < 0.4:
                parts.append(number)
            elif r < 0.6:
                parts.append(f"2023-11-{rng.randint(10, 28)}T22:13:{rng.randint(10, 59)}.{number}+00:00")
            else:
                word = rng.choice(words)
                parts.append(rng.choice(["", number]) + (word.upper() if rng.random() < 0.2 else word) + number)
        out.append("".join(p + rng.choice([" ", "\n", "", "[", "] "]) for p in parts))
    return out


def test_the_renderers_own_text_is_found_with_its_numbers_alike_as_looked_through_whole():
    texts = _numbered(29)
    assert any(redact._scanned(t)[0] & set(redact._DIGIT_LITERALS) for t in texts)
    assert any(redact._scanned(t)[1] & set(redact._DIGIT_PREFIXES) for t in texts)
    with redacting(RedactionReport()):
        for i, text in enumerate([*texts, *_stream(4, 300), *texts]):  # the memo shared, as in a rendering
            assert redact._prefiltered_own(text) == redact._scanned(text), (i, text[:120])
            assert redact._prefiltered(text) == redact._scanned(text), (i, text[:120])


def test_numbers_written_alike_are_learnt_once():
    looked: list[str] = []
    with redacting(RedactionReport()):
        memo = redact._RENDERING.get()[4]  # the renderer's own text's
        learn = memo._learn
        memo._learn = lambda text: looked.append(text) or learn(text)
        redact._prefiltered_own("- run_id: 0000000000000012 at 2023-11-14T22:13:20.018000+00:00")
        looked.clear()
        redact._prefiltered_own("- run_id: 0000000000000013 at 2023-11-14T22:13:20.019500+00:00")
    assert looked == []


def test_the_renderers_own_text_is_redacted_as_redact_text_redacts_it():
    texts = [*_numbered(31)[:800], *(f"- name: {text} 12" for _, text, _ in PLANTS)]
    with redacting(report := RedactionReport()):
        inside = [redact_own_text(t) for t in texts]
    expected = [(redact_text(t, r := RedactionReport()), r) for t in texts]
    assert inside == [out for out, _ in expected]
    total: dict[str, int] = {}
    for _, r in expected:
        for kind, n in r.counts.items():
            total[kind] = total.get(kind, 0) + n
    assert report.as_dict() == dict(sorted(total.items())) and total


def _old_secret_field_value(key, value, parent=None):
    """`redact.secret_field_value` as it was before the field names were remembered (the reference)."""
    if not isinstance(key, str) or value in (None, "", [], {}) or isinstance(value, bool):
        return None
    if key == "auth" and isinstance(value, str) and redact._BASE64.fullmatch(value):
        return "[REDACTED:docker_auth]"
    k8s_secret = isinstance(parent, dict) and str(parent.get("kind", "")).lower() == "secret"
    if not FIELD_NAMES.search(key.strip()) and not (k8s_secret and key in ("data", "stringData")):
        return None
    if HEADER_NAMES.search(key.strip()) and not isinstance(value, (list, dict)):
        return None
    return "[REDACTED:password_field]" if re.search(r"(?i)pass|pwd", key) else "[REDACTED:secret_field]"


@pytest.mark.parametrize("most", [4096, 3])
def test_secret_fields_are_told_as_before_each_name_searched_once(most, monkeypatch):
    monkeypatch.setattr(redact, "_MOST_FIELD_NAMES", most)
    rng = random.Random(41)
    names = ["password", "Password ", " api_key", "client_secret", "SessionToken", "Authorization", "cookie", "auth"]
    names += ["data", "stringData", "input", "q", "token", "x-api-key", "AUTHORIZATION", "passwd", "kind", "é"]
    values = ["hunter2hunter2", "QUJDREVGR0g=", "", None, True, [], {}, ["a"], {"k": "v"}, 0, "Bearer abc.def"]
    parents = [None, {}, {"kind": "Secret"}, {"kind": "secret"}, {"kind": "ConfigMap"}, {"kind": 3}, []]
    cases = [(rng.choice(names), rng.choice(values), rng.choice(parents)) for _ in range(4000)]
    expected = [_old_secret_field_value(*case) for case in cases]
    assert len(set(expected)) >= 4  # none, each kind, docker's
    with redacting(report := RedactionReport()):
        assert [redact.secret_field_value(*case) for case in cases] == expected
        assert len(redact._RENDERING.get()[5]) <= max(most, 1)
    counted = [e for e in expected if e]
    assert report.total == len(counted)
