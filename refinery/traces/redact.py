"""Redact secrets before anything is written or uploaded. Pure functions.

Why on by default: a trace routinely carries the agent's own credentials (headers, tool
configs, environment dumps), and the files go to a third party. The shapes looked for are the
catalogue in `traces.redact_rules` (each rule naming its source); each is specific enough that
look-alikes survive (a UUID, `sk-` in prose, "Bearer of bad news"), and every replacement says
what kind of secret stood there, so the analysis can still mention "an API key was sent".
What is not caught: a high-entropy string with no known prefix and no field name around it
(a bare random password in prose); `--redact-pattern` adds an organisation's own shapes.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from refinery.core.pieces import PIECE_CHARS
from refinery.errors import UserInputError
from refinery.traces.redact_leads import Lowered, sub_from_leads
from refinery.traces.redact_memo import WordMemo
from refinery.traces.redact_rules import FIELD_NAMES, HEADER_NAMES, K8S_DATA, K8S_KIND, K8S_REACH, RULES, Rule
from refinery.traces.redact_scan import (
    _DIGIT_LITERALS,
    _DIGIT_PREFIXES,
    _LITERAL_FORMS,
    _PREFIX_FORMS,
    _PREFIXES,
    _SPACED,
    _WINDOW,
    _alike,
    _Found,
    _scanned,
    _scanned_alike,
    _scanned_words,
)

__all__ = [
    "RULES",
    "SOURCE_SPAN",
    "RedactionReport",
    "compile_patterns",
    "extra_patterns",
    "redact_own_text",
    "redact_rendered",
    "redact_text",
    "redact_value",
    "redacting",
    "note_marks",
    "note_rendered",
    "outside_values",
    "secret_field_value",
]


@dataclass
class RedactionReport:
    """How many secrets of each kind were replaced."""

    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def _rule_order() -> list[tuple[Rule, frozenset[str], str]]:
    """The catalogue in its order, each rule with its literals (a set, checked against the text's in C)
    or, without any, the text its matches begin with."""
    return [(r, frozenset(r.literals), _PREFIXES.get(id(r), "")) for r in RULES]


_ORDER = _rule_order()


def compile_patterns(patterns: Iterable[str | re.Pattern[str]]) -> tuple[re.Pattern[str], ...]:
    """An organisation's own secret shapes (`--redact-pattern`), compiled; a bad one is refused
    with its text and the regex error on one line."""
    out = []
    for p in patterns:
        if isinstance(p, re.Pattern):
            out.append(p)
            continue
        try:
            out.append(re.compile(p))
        except re.error as exc:
            raise UserInputError(f"--redact-pattern {p!r}: not a regular expression ({exc})") from None
    return tuple(out)


# Extra patterns for everything redacted in this context (the CLI sets them once per command,
# so the report, batch summaries and fetched traces apply them too)
_EXTRA: ContextVar[tuple[re.Pattern[str], ...]] = ContextVar("refinery_redact_extra", default=())


@contextmanager
def extra_patterns(patterns: Sequence[str | re.Pattern[str]]) -> Iterator[None]:
    """Within this block every redaction also replaces matches of `patterns` (`[REDACTED:custom]`)."""
    token = _EXTRA.set(_EXTRA.get() + compile_patterns(patterns))
    try:
        yield
    finally:
        _EXTRA.reset(token)


def active_patterns() -> tuple[re.Pattern[str], ...]:
    """The organisation's own shapes in force here (`extra_patterns` blocks around this call)."""
    return _EXTRA.get()


def _apply(
    rule_kind: str,
    pattern: re.Pattern[str],
    text: str,
    report: RedactionReport | None,
    keep: bool = True,
    pieces: bool = False,
    lowered: Lowered | None = None,
) -> str:
    """`text` with `pattern`'s matches replaced; with `keep`, a catalogue rule's group 1 (a field's
    name) stays. An organisation's own pattern loses its whole match, whatever its groups. With
    `lowered` (`text` lower-cased, for a catalogue rule), the pattern is tried only where its matches
    can start (`redact_leads`), where that can be told; else with `pieces` (catalogue rules only:
    their reach is known), a big text is searched a piece at a time."""
    marker = f"[REDACTED:{rule_kind}]"

    def replace(m: re.Match[str]) -> str:
        if report is not None:
            report.counts[rule_kind] += 1
        prefix = (m.group(1) or "") if keep and m.re.groups else ""
        return f"{prefix}{marker}"

    done = None if lowered is None else sub_from_leads(pattern, lowered, replace)
    if done is not None:
        return done
    return _sub_in_pieces(pattern, text, replace) if pieces else pattern.sub(replace, text)


# A big text is searched a piece at a time (see `_sub_in_pieces`): each call looks at `_PIECE`
# characters for where a match may start and `_REACH` more (to a line's end) for how it ends
_PIECE = 1 << 18
_REACH = 1 << 17  # more than any catalogue rule's bounded parts (64 KiB at most)
_GUARD = 1 << 12  # a match that ends this near the view's end is looked for again in the whole text


def _sub_in_pieces(pattern: re.Pattern[str], text: str, replace: Callable[[re.Match[str]], str]) -> str:
    """`pattern.sub(replace, text)` for a catalogue rule, in calls that each search a piece.

    Why: the regular expression engine keeps the GIL for the whole of one call, so one `sub` over
    a big trace's index (tens of MB; 180 ms for 5 MB with a rule that has no literal to look for
    first) held the host's event loop however the rendering was put in a worker thread. Each
    search sees everything before it (a look-behind sees the text before `pos`) and `_REACH`
    characters past the starts it is trusted for, up to a line's end. Every catalogue rule reaches
    less far than that from where its match starts (its bounded parts are at most 64 KiB; its
    unbounded runs stop at a line break; a rule whose run does not is marked `whole` and searched
    in one call), so the matches are the whole text's. A match that ends near the view's end is
    looked for again in the whole text. Catalogue rules never match empty (both checked by
    tests/test_redact_in_pieces.py).
    """
    n = len(text)
    if n <= _PIECE + _REACH:
        return pattern.sub(replace, text)
    out: list[str] = []
    pos = copied = 0
    line_end = -2  # the first line break at or after where it was last looked for from; -1: none
    while pos < n:
        # looked for again only once the piece's reach passes the last one found: looking at every
        # match through a text with few line breaks was quadratic (8 MB of JWTs on one line: 45 s)
        if line_end != -1 and line_end < pos + _PIECE + _REACH:
            line_end = text.find("\n", pos + _PIECE + _REACH)
        limit = n if line_end < 0 else line_end + 1
        trusted = n if limit == n else limit - _REACH  # where a match may start to be found right here
        found = pattern.search(text, pos, limit)
        if found is not None and limit < n and found.end() > limit - _GUARD:
            found = pattern.search(text, pos)
        if found is None or found.start() >= trusted:
            pos = trusted  # no match starts before it
            continue
        out.append(text[copied : found.start()])
        out.append(replace(found))
        copied = pos = max(found.end(), found.start() + 1)
    out.append(text[copied:])
    return "".join(out)


_Index = tuple[list[Rule], dict[str, list[int]], dict[str, list[int]], list[int]]
_INDEXED: tuple[object, _Index] | None = None  # (the `_ORDER` it was made from, the index)


def _rules_for(present: set[str], starts: set[str]) -> list[Rule]:
    """The catalogue's rules, in order, that may match a text holding the literals `present` and
    the texts rules begin with `starts`: a rule with literals where one of them is present, a rule
    with the text its matches begin with where that is, a rule with neither always. Looked up, not
    tried rule by rule (a hundred tests a value, most of a value's redaction once the literals are
    looked for by their rarest character)."""
    global _INDEXED
    if _INDEXED is None or _INDEXED[0] is not _ORDER:  # `_ORDER` replaced (tests run every rule)
        by_literal: dict[str, list[int]] = {}
        by_prefix: dict[str, list[int]] = {}
        always = []
        for i, (_, literals, prefix) in enumerate(_ORDER):
            for literal in literals:
                by_literal.setdefault(literal, []).append(i)
            if not literals:
                (by_prefix.setdefault(prefix, []) if prefix else always).append(i)
        _INDEXED = (_ORDER, ([rule for rule, _, _ in _ORDER], by_literal, by_prefix, always))
    rules, by_literal, by_prefix, always = _INDEXED[1]
    if not present and not starts:
        return [rules[i] for i in always]
    chosen = set(always)
    for literal in present:
        chosen.update(by_literal.get(literal, ()))
    for prefix in starts:
        chosen.update(by_prefix.get(prefix, ()))
    return [rules[i] for i in sorted(chosen)]


def _no_rule_always() -> bool:
    """Whether every rule of the catalogue needs a literal or a text it begins with (then a text
    holding neither needs no rule run)."""
    if _INDEXED is None or _INDEXED[0] is not _ORDER:
        return not _rules_for(set(), set())
    return not _INDEXED[1][3]


def _prefiltered(text: str) -> _Found:
    """The prefilter's findings in `text`: inside a `redacting` block, from its words (`redact_memo`:
    each word of a rendering looked through once), a big text a window at a time as before."""
    state = _RENDERING.get()
    if state is not None and len(text) <= _WINDOW:
        return state[3].found(text)
    return _scanned(text)


def _prefiltered_own(text: str) -> _Found:
    """`_prefiltered(text)` for the renderer's own text (a file's headings and labels, a long
    section's scaffolding, a marker, the short values), its numbers learnt once a shape.

    Why: that text is mostly ids, times and counts, nearly each a word the rendering has not seen
    (`0000000000000012]`, `2023-11-14T22:13:20.018000+00:00`), so the word memo learnt, and kept,
    a few words a run: most of what the file's pass and the long sections' scaffolding cost. Its
    own memo (`redacting`) learns it written with every ASCII digit as 0 (`_alike`): a few shapes,
    learnt once. The findings are the same. The text so written differs from the text only at its
    digits, one character for one, and lower-casing does not change that (a digit is neither
    cased nor case-ignorable, as 0 is not, so no character's lower case changes; none becomes a
    digit), so a literal or text rules begin with that holds no digit occurs in one exactly where
    it occurs in the other. One that holds a digit occurs in the text only where its own form
    (written so too) occurs in the text so written: it is looked for in the text itself where its
    form was found — nearly never."""
    state = _RENDERING.get()
    if state is None or len(text) > _WINDOW:
        return _scanned(text)
    present, starts = state[4].found(_alike(text))
    literal_forms, prefix_forms = present & _LITERAL_FORMS, starts & _PREFIX_FORMS
    present.difference_update(_LITERAL_FORMS, _DIGIT_LITERALS)
    starts.difference_update(_PREFIX_FORMS, _DIGIT_PREFIXES)
    if literal_forms:
        low = text.lower()
        present.update(lit for lit, form in _DIGIT_LITERALS.items() if form in literal_forms and lit in low)
    if prefix_forms:
        starts.update(p for p, form in _DIGIT_PREFIXES.items() if form in prefix_forms and p in text)
    return present, starts


def redact_text(text: str, report: RedactionReport | None = None, extra: Sequence[re.Pattern[str]] = ()) -> str:
    """`text` with every secret replaced by `[REDACTED:<kind>]`; counts go to `report`.
    `extra`: an organisation's own patterns (see `compile_patterns`), as the context's are."""
    return _redacted(text, report, extra, _prefiltered(text))


def _redacted(text: str, report: RedactionReport | None, extra: Sequence[re.Pattern[str]], found: _Found) -> str:
    """`redact_text` with its prefilter's findings given."""
    present, starts = found
    lowered = Lowered(text)  # lower-cased once for the rules tried on it, again after one replaced something
    for rule in _rules_for(present, starts):
        text = _apply(rule.kind, rule.pattern, text, report, pieces=not rule.whole, lowered=lowered)
        if text is not lowered.text:
            lowered = Lowered(text)
    if "secret" in present:
        text = _kubernetes_secrets(text, report)
    for pattern in (*_EXTRA.get(), *extra):
        text = _apply("custom", pattern, text, report, keep=False)
    return text


def _kubernetes_secrets(text: str, report: RedactionReport | None) -> str:
    """The data blocks of Kubernetes Secret manifests replaced (see `redact_rules.K8S_DATA`)."""
    kinds = [m.start() for m in K8S_KIND.finditer(text)]
    if not kinds:
        return text

    def replace(m: re.Match[str]) -> str:
        i = bisect.bisect_left(kinds, m.start())
        near = (i < len(kinds) and kinds[i] - m.end() <= K8S_REACH) or (i > 0 and m.start() - kinds[i - 1] <= K8S_REACH)
        if not near:
            return m.group(0)
        if report is not None:
            report.counts["kubernetes_secret"] += 1
        block = m.group(3)
        indent = block[: len(block) - len(block.lstrip(" \t"))]
        end = re.search(r"(?:\r?\n|\\+n)$", block)  # the block's last line break, as written
        return f"{m.group(1)}{m.group(2)}{indent}[REDACTED:kubernetes_secret]{end.group(0) if end else ''}"

    return K8S_DATA.sub(replace, text)


# Redaction while rendering: each value of the trace is redacted before the renderer cuts it,
# wraps it or puts a run-id marker into it (a secret split by a cut or a marker is no longer
# recognised). A context variable, so concurrent renderings each count into their own report.
class _SinceLastFile:
    """What the prefilter found in every text redacted (or noted) since the last file's pass, and
    the source marks the renderer made meanwhile (see `redact_rendered`).

    Bounded: the findings are sets of the catalogue's literals; the short values, kept to be looked
    through together, are looked through and let go once they pass `_SHORT_CHARS`."""

    def __init__(self) -> None:
        self.present: set[str] = set()
        self.starts: set[str] = set()
        self.short: list[str] = []  # values too short to redact alone: looked through together
        self.short_chars = 0
        self.opened = self.closed = 0  # OPEN and CLOSE marks the renderer made (`note_marks`)

    def add(self, found: _Found) -> None:
        self.present |= found[0]
        self.starts |= found[1]

    def add_short(self, text: str) -> None:
        self.short.append(text)
        self.short_chars += len(text) + 1
        if self.short_chars > _SHORT_CHARS:
            self._flush_short()

    def _flush_short(self) -> None:
        if self.short:
            self.add(_prefiltered_own("\n".join(self.short)))  # no literal holds a line break
        self.short, self.short_chars = [], 0

    def take(self) -> tuple[_Found, int, int]:
        """All found since the last file, and the marks made; then start again."""
        self._flush_short()
        out = (self.present, self.starts), self.opened, self.closed
        self.__init__()  # type: ignore[misc]
        return out


_SHORT_CHARS = 1 << 16

# (the report, the extra patterns, what was found since the last file, the values' word memo, the
# renderer's own text's word memo, what each field name is: `_field_kind`)
_State = tuple[
    RedactionReport, tuple[re.Pattern[str], ...], _SinceLastFile, WordMemo, WordMemo, dict[str, tuple[bool, bool]]
]
_RENDERING: ContextVar[_State | None] = ContextVar("refinery_redaction", default=None)


@contextmanager
def redacting(report: RedactionReport, extra: Sequence[re.Pattern[str]] = ()) -> Iterator[None]:
    """Within this block, `redact_value` redacts into `report` (with `extra` patterns too)."""
    memos = WordMemo(_scanned_words, _SPACED), WordMemo(_scanned_alike, _SPACED)  # values; the renderer's text
    token = _RENDERING.set((report, tuple(extra), _SinceLastFile(), *memos, {}))
    try:
        yield
    finally:
        _RENDERING.reset(token)


def redact_value(text: str) -> str:
    """A trace value as it may be rendered: redacted inside a `redacting` block, else as it is.
    What the prefilter found in it (and in what it became, when a rule changed it) is noted for
    `redact_rendered`; a value too short to redact alone is noted to be looked through with the
    file's other short ones."""
    return _redact_rendering(text, own=False)


def redact_own_text(text: str) -> str:
    """`redact_value` for text the renderer wrote (a long section's scaffolding: ids, times,
    names), its numbers looked through as `_prefiltered_own` does: the same result."""
    return _redact_rendering(text, own=True)


def _redact_rendering(text: str, own: bool) -> str:
    state = _RENDERING.get()
    if state is None:
        return text
    report, extra, seen, memo = state[:4]
    plain = not extra and not _EXTRA.get()  # the catalogue's rules only
    if len(text) < 8 and plain:
        seen.add_short(text)
        return text
    if own:
        found = _prefiltered_own(text)
    else:
        found = memo.found(text) if len(text) <= _WINDOW else _scanned(text)  # as `_prefiltered`
    if plain and not found[0] and not found[1] and _no_rule_always():
        return text  # nearly every value: no rule can match it, and nothing found to note
    out = _redacted(text, report, extra, found)
    seen.add(found)
    if out != text:
        seen.add(_prefiltered(out))
    return out


def note_rendered(text: str) -> None:
    """Inside a `redacting` block, note what the prefilter finds in `text`, which the renderer put
    among the values it marked as source (a run-id marker inside a long message): the file's pass
    takes it as looked through (see `redact_rendered`)."""
    state = _RENDERING.get()
    if state is not None:
        state[2].add(_prefiltered_own(text))


def note_marks(opened: int, closed: int) -> None:
    """Inside a `redacting` block, count the OPEN and CLOSE source marks the renderer made (or, when
    negative, cut away), so the file's pass can tell them from marks the trace's own text brought."""
    state = _RENDERING.get()
    if state is not None:
        state[2].opened += opened
        state[2].closed += closed


_OPEN, _CLOSE = "\ue000", "\ue001"  # `source_text.OPEN`, `CLOSE` (which imports this module)
SOURCE_SPAN = re.compile(f"{_OPEN}[^{_OPEN}{_CLOSE}]*{_CLOSE}")  # one value's text as marked
_WHOLE_SPLIT_CHARS = 4 * PIECE_CHARS  # the largest file split at its marks in one call


def outside_values(marked: str) -> list[str]:
    """`SOURCE_SPAN.split(marked)`: the text between the values' marks (the renderer's own).

    Why not the pattern: its search walks every character of every value (most of a file) through
    the `[^…]*` loop; `str.split` at the OPEN marks is a plain scan, and each piece's first CLOSE
    one `find` — the same pieces. A value is OPEN, text holding neither mark, CLOSE: each OPEN is
    followed by its piece of the split, and it opens a value exactly when that piece holds a CLOSE
    (the first one ends it: the piece holds no OPEN). An OPEN with no CLOSE after it in its piece
    opens nothing and stays in the text around it, as it does for the pattern."""
    parts = marked.split(_OPEN)
    out: list[str] = []
    current = parts[0]
    for part in parts[1:]:
        end = part.find(_CLOSE)
        if end < 0:
            current = f"{current}{_OPEN}{part}"
        else:
            out.append(current)
            current = part[end + 1 :]
    out.append(current)
    return out


def redact_rendered(marked: str, report: RedactionReport | None = None, extra: Sequence[re.Pattern[str]] = ()) -> str:
    """A rendered file, its source marks still in, redacted as `redact_text` redacts it.

    Why: the whole file is redacted once more after its values were (names, ids and what else the
    renderer writes around them), and looking for the prefilter's literals in every character of
    it again was most of what redaction cost. Its values are not looked through again: the rules
    run are those for what was found in every text redacted or noted since the last file (its
    values, whole, before any cut; the markers put among them) and in what lies outside its
    values' marks (`SOURCE_SPAN`: the renderer's own text). No literal holds a mark or a line
    break, and what lies inside a value's marks is a piece of such a text (cut, wrapped, parted by
    a marker) or a marker, so this finds at least what looking through the whole file finds.
    At least, not exactly (a literal in a value's part that was cut away): so the rules run are
    trusted only where none replaced anything — then no rule of the exact set could have either,
    each seeing the file as it was — and otherwise the file is redacted again with what looking
    through all of it finds. Marks the renderer did not make (a trace's own text holding the
    private-use characters) could pass the renderer's text off as a value: then too the whole file
    is looked through. A big file (a big trace's index) is searched by `redact_text` a window at a
    time: splitting it at its marks is one C call over all of it, which holds the GIL (and a
    host's event loop) for as long as it runs."""
    state = _RENDERING.get()
    if state is None:
        return redact_text(marked, report, extra)
    found, opened, closed = state[2].take()
    if len(marked) > _WHOLE_SPLIT_CHARS or marked.count(_OPEN) != opened or marked.count(_CLOSE) != closed:
        return redact_text(marked, report, extra)
    outside = _prefiltered_own("\n".join(outside_values(marked)))
    trial = RedactionReport()
    out = _redacted(marked, trial, extra, (found[0] | outside[0], found[1] | outside[1]))
    if not trial.counts:
        return out  # nothing replaced: the file as it was, as the exact set of rules leaves it
    return redact_text(marked, report, extra)


_BASE64 = re.compile(r"[A-Za-z0-9+/]{8,}={0,2}")
_MOST_FIELD_NAMES = 4096  # field names remembered in one rendering; then forgotten


def _field_kind(key: str, known: dict[str, tuple[bool, bool]]) -> tuple[bool, bool]:
    """Whether `key` names a secret field (`FIELD_NAMES`) and a header (`HEADER_NAMES`), each name
    searched once a rendering: a trace repeats a few names in every run, and the two searches were
    most of what `secret_field_value` cost (the names are the trace's: kept for the rendering only)."""
    kind = known.get(key)
    if kind is None:
        if len(known) >= _MOST_FIELD_NAMES:
            known.clear()
        name = key.strip()
        kind = known[key] = (FIELD_NAMES.search(name) is not None, HEADER_NAMES.search(name) is not None)
    return kind


def secret_field_value(key: Any, value: Any, parent: Any = None) -> str | None:
    """The replacement for the whole value of a secret-named field of the trace's own structure
    (`password`, `client_secret`, `SessionToken`, a Kubernetes Secret's `data`…), inside a
    `redacting` block: any value, a list or an object too, whatever it holds. None otherwise."""
    state = _RENDERING.get()
    if state is None or not isinstance(key, str) or value in (None, "", [], {}) or isinstance(value, bool):
        return None
    if key == "auth" and isinstance(value, str) and _BASE64.fullmatch(value):  # Docker's `auths`
        state[0].counts["docker_auth"] += 1
        return "[REDACTED:docker_auth]"
    field, header = _field_kind(key, state[5])
    if not field and not (
        key in ("data", "stringData") and isinstance(parent, dict) and str(parent.get("kind", "")).lower() == "secret"
    ):
        return None
    if header and not isinstance(value, (list, dict)):
        return None  # one header value: the text rules know its scheme (`Bearer …`) and say so
    kind = "password_field" if re.search(r"(?i)pass|pwd", key) else "secret_field"
    state[0].counts[kind] += 1
    return f"[REDACTED:{kind}]"
