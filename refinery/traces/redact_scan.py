"""Redaction's prefilter scans: which of the catalogue's literals (case-insensitively) and texts its
rules begin with (exactly) occur in a text. Pure functions and constants; `redact` runs the rules
they let through, and `redact_memo` remembers what they found in each word of a rendering.

Why a module of its own: each scan is a few C-level searches picked so that the findings are
exactly those of looking for every literal (each function says why), and the arguments that make
them exact are read best together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from refinery.core.pieces import PIECE_CHARS, contains
from refinery.traces.redact_rules import RULES

_Found = tuple[set[str], set[str]]  # the prefilter literals and the texts rules begin with that occur in a text

_LITERALS = frozenset(lit for rule in RULES for lit in rule.literals) | {"secret"}
_WINDOW = 1 << 16
_OVERLAP = max(map(len, _LITERALS))


def _required_prefix(pattern: re.Pattern[str]) -> str:
    """The exact text every match of `pattern` begins with ("" when none can be told).

    Why: a rule with no prefilter literal (most prefixed tokens: `sk-ant-`, `hf_`, `AIza`) ran its
    regex over every value of the trace — 56 scans a value, most of a big plan's redaction. A
    case-sensitive match can only start where its leading literal is, so where `prefix in text` is
    false the rule cannot match and is skipped: the same result for one substring search. Read
    from the pattern's parse (the standard library's `re._parser`); anything it cannot tell (a
    case-insensitive pattern, a class or a group first) gives "", and the rule always runs.
    """
    try:
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # noqa: BLE001 - another Python's internals: the rule simply always runs
        return ""
    if (pattern.flags | parsed.state.flags) & re.IGNORECASE:
        return ""
    prefix = []
    for op, arg in parsed:
        if op is not _parser.LITERAL:
            break
        prefix.append(chr(arg))
    return "".join(prefix)


# Rules without prefilter literals, each with the exact text its matches begin with
_PREFIXES: dict[int, str] = {id(rule): _required_prefix(rule.pattern) for rule in RULES if not rule.literals}

# Letters from the most common in English text to the least; an upper-case letter is rarer than
# any lower-case one, a digit or punctuation rarer still
_COMMON = " etaoinsrhldcumfpgwybvkxjqzETAOINSRHLDCUMFPGWYBVKXJQZ"


def _by_guard(words: Iterable[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`words` grouped under their rarest character (see `_COMMON`), rarest groups first.

    Why: looking for 156 literals in every value of a trace, each a scan of the text, was most of
    redaction's cost. A word can only occur where each of its characters does, and looking for one
    character is a `memchr` (many times faster than looking for a word), so a group is looked for
    only where its character occurs: the same set found, a few dozen fast scans for most values.
    """
    groups: dict[str, list[str]] = {}
    for word in sorted(words):
        guard = max(word, key=lambda ch: (_COMMON.find(ch) if ch in _COMMON else len(_COMMON), ch))
        groups.setdefault(guard, []).append(word)
    return tuple(sorted(((g, tuple(ws)) for g, ws in groups.items()), key=lambda gw: gw[0]))


# Literals that hold white space: a text's words do not hold one (`redact_memo`)
_SPACED = frozenset(lit for lit in _LITERALS if any(ch.isspace() for ch in lit))
_LITERAL_GUARDS = _by_guard(_LITERALS)
_PREFIX_GUARDS = _by_guard(set(_PREFIXES.values()) - {""})


def _found(text: str, guards: tuple[tuple[str, tuple[str, ...]], ...], found: set[str]) -> set[str]:
    """`found` with the words of `guards` that occur in `text` added (a big text searched a piece at
    a time, `core.pieces`: one search over a big index would hold the GIL, and the host's loop)."""
    if len(text) <= PIECE_CHARS:  # nearly every value: the plain search, no call a word, in one comprehension
        found |= {word for guard, words in guards if guard in text for word in words if word in text}
        return found
    for guard, words in guards:
        if contains(text, guard):
            found.update(word for word in words if contains(text, word))
    return found


def _literals_in(text: str) -> set[str]:
    """The prefilter literals that occur in `text`, case-insensitively.

    Lower-cased a window at a time: `str.lower()` of non-ASCII text allocates twelve bytes a
    character before it shrinks the result, so lowering the index of a big trace at once cost
    more memory than the trace.
    """
    if len(text) <= _WINDOW:  # a trace's values nearly all: one window, no set arithmetic
        return _found(text.lower(), _LITERAL_GUARDS, set())
    found: set[str] = set()
    for start in range(0, len(text), _WINDOW):
        window = text[max(0, start - _OVERLAP) : start + _WINDOW].lower()
        _found(window, _LITERAL_GUARDS, found)
    return found


def _scanned(text: str) -> _Found:
    """The prefilter's findings in `text`, looked for in all of it."""
    return _literals_in(text), _found(text, _PREFIX_GUARDS, set())


# What ids, times and numbers are written with (hex digits, a time's `T` and `Z`, the renderer's run
# marks, the line breaks new words are joined with), and the few literals and texts rules begin
# with that can be written with nothing else
_ID_CHARS = "0123456789abcdefABCDEF:.+-_TZ()[]#,\ue002\ue003\n"
_ID_LITERALS = tuple(sorted(lit for lit in _LITERALS if set(lit) <= set(_ID_CHARS.lower())))
_ID_PREFIXES = tuple(sorted(p for p in set(_PREFIXES.values()) - {""} if set(p) <= set(_ID_CHARS)))
_NOT_ID = re.compile(f"[^{re.escape(_ID_CHARS)}]")
_ID_LINE_CHARS = _ID_CHARS.replace("\n", "")


def _scanned_words(text: str) -> _Found:
    """`_scanned(text)` for the new words of a rendering (`redact_memo`), the ids and times of the
    renderer's own text looked for only as what they can hold.

    Why: most words a rendering has not seen are ids, times and numbers (a run's id, its parent's,
    its start and end), learnt a few at a time, and each lot was looked for every literal's rarest
    character: about a fifth of redaction. A literal can only occur in a text that holds all of its
    characters, so a text written wholly in `_ID_CHARS` can only hold those of `_ID_LITERALS` and
    `_ID_PREFIXES`: the same findings for a few searches. A lot that mixes them with other words (a
    file's name among its runs' ids) is looked through so line by line: the lines written wholly in
    `_ID_CHARS` for what they can hold, the others for everything."""
    if len(text) > _WINDOW:
        return _scanned(text)
    if not _NOT_ID.search(text):  # every character one of them
        low = text.lower()
        return {lit for lit in _ID_LITERALS if lit in low}, {p for p in _ID_PREFIXES if p in text}
    lines = text.split("\n")
    rest = [line for line in lines if line.strip(_ID_LINE_CHARS)]  # the lines not written wholly in them
    if len(rest) == len(lines):
        return _scanned(text)
    # the lines written wholly in them hold only what they can hold (looked for in all of the text), the
    # rest anything: no literal holds a line break, so each occurrence lies within one line
    low = text.lower()
    present, starts = _scanned("\n".join(rest))
    present.update(lit for lit in _ID_LITERALS if lit in low)
    starts.update(p for p in _ID_PREFIXES if p in text)
    return present, starts


# Literals and texts rules begin with that hold an ASCII digit, each with its form with every ASCII
# digit written as 0 (`_alike`)
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")


def _alike(text: str) -> str:
    """`text` with every ASCII digit written as 0 (one byte of UTF-8 each: one character for one)."""
    return text.encode("utf-8", "surrogatepass").translate(_DIGITS_AS_ZERO).decode("utf-8", "surrogatepass")


_DIGIT_LITERALS = {lit: _alike(lit) for lit in sorted(_LITERALS) if re.search("[0-9]", lit)}
_DIGIT_PREFIXES = {p: _alike(p) for p in sorted(set(_PREFIXES.values())) if re.search("[0-9]", p)}
_LITERAL_FORMS = frozenset(_DIGIT_LITERALS.values())
_PREFIX_FORMS = frozenset(_DIGIT_PREFIXES.values())


def _scanned_alike(text: str) -> _Found:
    """What the word memo of the renderer's own text learns of a lot of its words (written with
    digits as 0): `_scanned_words`, and the forms of the literals and texts rules begin with that
    hold a digit (see `_prefiltered_own`)."""
    present, starts = _scanned_words(text)
    low = text.lower()
    present.update(form for form in _LITERAL_FORMS if form in low)
    starts.update(form for form in _PREFIX_FORMS if form in text)
    return present, starts
