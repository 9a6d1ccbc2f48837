"""A catalogue rule's matches found from where they can start: the texts every match begins with.

Why: most of redaction's time on real traces went to a few case-insensitive rules whose matches
begin with a field's or a provider's name (`client_secret=…`, `mailgun_key: …`). The regular
expression engine has no fast scan for such a start: it tries the whole alternation of names at
every character, about 1 µs a character (`provider_key`'s 75 names: 1.3 µs). Redacting the 24 MB
of raw run text in ../shared/eval-data took 29 s, and rendering the TRAIL traces redacted cost 9
times as much as rendering them plain. Where every match of a rule begins with one of a few
literal texts (its *leads*, read from the pattern's parse), the matches are found by looking for
the leads in the lower-cased text (C-level substring searches) and trying the pattern only there.

Why the result is `pattern.sub`'s: `sub` takes, from where the last match ended, the leftmost
position where the pattern matches, and the match the engine makes there. Every match starts at
an occurrence of a lead (case-insensitively), so trying the occurrences in order from where the
last match ended, and taking the first where `pattern.match` matches, is the same position and
(the same engine, from the same position, over the same string: look-behinds and `\\b` see what
is before it) the same match. Case: the pattern's `(?i)` matches a character where its case
folding does; `str.lower()` agrees with that for every character but `ı` and `ſ` (which `(?i)`
matches to `i` and `s`, written so before the search) and `İ` (lower-cased to two characters: the
offsets would move, so such a text is searched the old way). Leads are lower-cased, so a
case-sensitive piece (`(?-i:pwd)`) is looked for more widely than it matches, never less.

Pure; the leads of a pattern are worked out once and kept (`leads_of`), the same for every thread.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

try:  # the standard library's parser of regular expressions (what `re.compile` itself uses)
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - another Python's internals: no leads, the old search
    _parser = None

__all__ = ["Lowered", "leads_of", "sub_from_leads"]

_MOST = 256  # partial prefixes followed at once; past that a pattern's leads are cut where they stand
_SHORTEST = 2  # a lead of one character is no better than the engine's own scan
# more than one start in this many characters: the engine's own scan is as quick as a call a start
# (`bench_redact.py`'s adversarial texts: a lead every 3 to 10 characters cost up to 5 times more so)
_SPARSEST = 16
_WINDOW = 1 << 16  # a big text is lower-cased a window at a time (see `Lowered`)
_OVERLAP = 64  # windows overlap by this much: the longest lead a pattern may have

_Prefixes = list[tuple[str, bool]]  # (a text a match may begin with, whether the part read so far is all of it)


def _sequence(items: Any) -> _Prefixes:
    """The texts a match of the parsed sequence `items` may begin with."""
    prefixes: _Prefixes = [("", True)]
    for op, arg in items:
        ways = _item(op, arg)
        grown = [(p + q, whole) for p, open_ in prefixes if open_ for q, whole in ways]
        grown += [(p, False) for p, open_ in prefixes if not open_]
        if len(grown) > _MOST:
            return [(p, False) for p, _ in prefixes]
        prefixes = grown
        if not any(open_ for _, open_ in prefixes):
            break
    return prefixes


def _item(op: Any, arg: Any) -> _Prefixes:
    """The texts one parsed item may begin with, each marked whole where it is the item's all."""
    if op is _c.LITERAL:
        return [(chr(arg).lower(), True)]
    if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):  # `\b`, look-behinds and look-aheads take no text
        return [("", True)]
    if op is _c.SUBPATTERN:
        return _sequence(arg[-1])
    if op is _c.BRANCH:
        return [way for branch in arg[1] for way in _sequence(branch)]
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        least, most, body = arg
        inner = _sequence(body)
        taken = inner if most == 1 else [(p, False) for p, _ in inner]
        return ([("", True)] if least == 0 else []) + taken
    return [("", False)]  # a class, any character, a back reference: its text cannot be told


@cache
def leads_of(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """The lower-cased texts every match of `pattern` begins with (none a prefix of another), or
    None: where that cannot be told, where one would be shorter than two characters or longer than
    `_OVERLAP`, and where the engine's own scan is as quick (a case-sensitive pattern that begins
    with a literal: it looks for that literal itself, as fast as `str.find`)."""
    if _parser is None:
        return None
    try:
        parsed = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # noqa: BLE001 - a parse this module does not know: the old search
        return None
    if not (parsed.state.flags & re.IGNORECASE) and len(parsed) and parsed[0][0] is _c.LITERAL:
        return None
    found = {p for p, _ in _sequence(parsed)}
    if not found or any(not _SHORTEST <= len(p) <= _OVERLAP or not p.isascii() for p in found):
        return None
    return frozenset(p for p in found if not any(q != p and p.startswith(q) for q in found))


class Lowered:
    """A text lower-cased as `(?i)` compares it, one character for one, a window at a time; made
    once for all the rules tried on the same text.

    Why windows: one `lower()` of tens of MB (a big trace's index) would hold the GIL, and
    non-ASCII text costs twelve bytes a character while it is lowered. Windows overlap by
    `_OVERLAP`, more than any lead's length, and a lead is counted in the window it starts in.
    Why not just `lower()`: `(?i)` matches `ı` to `i` and `ſ` to `s` (written so here), and `İ`
    lower-cases to two characters (the offsets would move: such a text is not searched so)."""

    __slots__ = ("text", "_windows")

    def __init__(self, text: str) -> None:
        self.text = text
        self._windows: list[str] | None = None

    def windows(self) -> list[str] | None:
        if self._windows is None:
            text, windows = self.text, []
            for begin in range(0, max(len(text), 1), _WINDOW):
                window = text[begin : begin + _WINDOW + _OVERLAP]
                low = window.lower()
                if len(low) != len(window):
                    return None
                if not low.isascii() and ("ı" in low or "ſ" in low):
                    low = low.replace("ı", "i").replace("ſ", "s")
                windows.append(low)
            self._windows = windows
        return self._windows

    def starts(self, leads: frozenset[str]) -> list[int] | None:
        """Where in the text a lead occurs, in order; None if the text cannot be searched so, or
        as soon as there are more than one in `_SPARSEST` characters."""
        windows = self.windows()
        if windows is None:
            return None
        most = len(self.text) // _SPARSEST
        starts: set[int] = set()
        for n, low in enumerate(windows):
            begin = n * _WINDOW
            for lead in leads:
                i = low.find(lead)
                while 0 <= i < _WINDOW:
                    starts.add(begin + i)
                    i = low.find(lead, i + 1)
                    if len(starts) > most:
                        return None
        return sorted(starts)


def sub_from_leads(pattern: re.Pattern[str], lowered: Lowered, replace: Callable[[re.Match[str]], str]) -> str | None:
    """`pattern.sub(replace, lowered.text)`, the pattern tried only where one of its leads
    (`leads_of`) occurs; None where it has none, where the text cannot be searched so or where the
    leads are too dense to gain (then the caller searches it whole). The pattern must not match
    empty (the catalogue's rules never do)."""
    leads = leads_of(pattern)
    starts = None if leads is None else lowered.starts(leads)
    if starts is None:
        return None
    text = lowered.text
    out: list[str] = []
    copied = 0
    for start in starts:
        if start < copied:
            continue
        found = pattern.match(text, start)
        if found is None:
            continue
        out += (text[copied:start], replace(found))
        copied = found.end()
    if not out:
        return text
    out.append(text[copied:])
    return "".join(out)
