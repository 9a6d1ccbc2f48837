"""A big text is redacted a piece at a time (each regular-expression call searches one piece, so
the GIL is let go between them) with exactly the whole-text result: the same replacements, the
same counts, wherever a secret falls against the pieces' edges."""

from __future__ import annotations

import random
from re import _constants as sre  # the parser's own tree: how far a rule can reach
from re import _parser

import pytest

from refinery.traces import redact
from refinery.traces.redact import RedactionReport, redact_text
from refinery.traces.redact_rules import RULES
from tests.secret_shapes import PLANTS


def _unbounded_runs_crossing_lines(tree: _parser.SubPattern, flags: int) -> list[str]:
    """The unbounded repeats of a parsed pattern whose item can match a line break."""
    from re import _compiler

    found = []
    for op, av in tree.data:
        items: list[_parser.SubPattern] = []
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            low, high, item = av
            if high == sre.MAXREPEAT and _compiler.compile(item, flags).fullmatch("\n"):
                found.append(str(item))
            items = [item]
        elif op == sre.SUBPATTERN:
            items = [av[-1]]
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            items = [av[1]]
        elif op == sre.BRANCH:
            items = list(av[1])
        elif op == sre.ATOMIC_GROUP:
            items = [av]
        elif op == sre.GROUPREF_EXISTS:
            items = [x for x in av[1:] if x]
        for item in items:
            found += _unbounded_runs_crossing_lines(item, flags)
    return found


@pytest.mark.parametrize("rule", [r for r in RULES if not r.whole], ids=lambda r: r.kind)
def test_every_rule_searched_in_pieces_stops_its_unbounded_runs_at_a_line_break_and_never_matches_empty(rule):
    tree = _parser.parse(rule.pattern.pattern, rule.pattern.flags)
    assert tree.getwidth()[0] > 0
    assert _unbounded_runs_crossing_lines(tree, rule.pattern.flags) == []


def test_a_rule_whose_run_crosses_lines_is_searched_whole():
    whole = [r.kind for r in RULES if r.whole]
    assert whole == ["bearer_token"]
    tree = _parser.parse(RULES[[r.kind for r in RULES].index("bearer_token")].pattern.pattern)
    assert _unbounded_runs_crossing_lines(tree, 0)


def _big_text(seed: int, lines: int) -> str:
    """Prose lines, with every planted secret somewhere (some several times), long lines and
    blank ones among them."""
    rng = random.Random(seed)
    words = "the agent called the tool and read the page then wrote".split()
    out = []
    for i in range(lines):
        line = " ".join(rng.choice(words) for _ in range(rng.randint(0, 30)))
        if rng.random() < 0.05:
            line = "x" * rng.randint(100, 3000)  # a long line with no break
        if rng.random() < 0.15:
            _, planted, _ = rng.choice(PLANTS)
            cut = rng.randint(0, len(line))
            line = line[:cut] + planted + line[cut:]
        out.append(line)
    return "\n".join(out)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_redaction_in_small_pieces_is_the_whole_texts(monkeypatch, seed):
    text = _big_text(seed, 1200)
    whole_report = RedactionReport()
    monkeypatch.setattr(redact, "_PIECE", 10**9)  # one call, as before
    whole = redact_text(text, whole_report)
    for piece in (4999,):  # the reach stays: each rule's own needs it
        monkeypatch.setattr(redact, "_PIECE", piece)
        report = RedactionReport()
        assert redact_text(text, report) == whole
        assert report.counts == whole_report.counts
    assert whole_report.total > 100  # the secrets were there to find


@pytest.mark.parametrize("breaks", [0, 1, 7])
def test_a_long_text_with_few_line_breaks_is_redacted_in_pieces_as_whole(monkeypatch, breaks):
    """Secrets side by side on lines longer than a piece and its reach (a one-line log of tokens):
    the line break that bounds each search is looked for again only once a piece's reach passes the
    last one found (it was looked for at every match), with the same matches as one search."""
    rng = random.Random(breaks)
    units = [text for _, text, _ in PLANTS] + ["eyJabcdefghijkl."] * 40 + ["prose "] * 20
    text = "".join(rng.choice(units) for _ in range(12_000))
    for _ in range(breaks):
        at = rng.randint(0, len(text))
        text = text[:at] + "\n" + text[at:]
    assert len(text) > 2 * (4999 + redact._REACH)
    monkeypatch.setattr(redact, "_PIECE", 10**9)  # one call
    whole = redact_text(text, whole_report := RedactionReport())
    monkeypatch.setattr(redact, "_PIECE", 4999)
    assert redact_text(text, report := RedactionReport()) == whole
    assert report.counts == whole_report.counts and whole_report.counts["jwt"] > 100
