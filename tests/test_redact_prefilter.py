"""Redaction's prefilter: the literals looked for by their rarest character, and the rules looked
up from what was found, decide exactly what looking for every literal and testing every rule
decided — on every planted secret, alone and together, in either case, on random text and on text
longer than one window."""

from __future__ import annotations

import random

from refinery.traces import redact
from refinery.traces.redact import RedactionReport, redact_text
from tests.secret_shapes import PLANTS


def _texts() -> list[str]:
    rng = random.Random(37)
    planted = [f"before {text} after" for _, text, _ in PLANTS]
    words = sorted(redact._LITERALS | {p for p in redact._PREFIXES.values() if p}) + ["the", "run", "é", "\n", "  "]
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
    return {lit for lit in redact._LITERALS if lit in low}


def _every_rule(present: set[str], text: str) -> list[redact.Rule]:
    """The rules as they were chosen before the lookup: each tested in turn."""
    return [
        rule
        for rule, literals, prefix in redact._ORDER
        if (not present.isdisjoint(literals) if literals else prefix in text)  # "" is in every text
    ]


def test_the_literals_found_are_those_that_occur():
    for i, text in enumerate(TEXTS):
        assert redact._literals_in(text) == _every_literal(text), i


def test_the_rules_run_are_those_each_rule_would_have_let_through():
    for i, text in enumerate(TEXTS):
        present = redact._literals_in(text)
        starts = redact._found(text, redact._PREFIX_GUARDS, set())
        assert starts == {p for p in redact._PREFIXES.values() if p and p in text}, i
        assert redact._rules_for(present, starts) == _every_rule(present, text), i


def test_every_planted_secret_is_redacted_as_when_every_rule_runs(monkeypatch):
    texts = [f"before {text} after" for _, text, _ in PLANTS]
    fast = [(redact_text(t, r := RedactionReport()), r.as_dict()) for t in texts]
    monkeypatch.setattr(redact, "_ORDER", [(rule, (), "") for rule, _, _ in redact._ORDER])
    assert fast == [(redact_text(t, r := RedactionReport()), r.as_dict()) for t in texts]
    assert all(counts for _, counts in fast)
