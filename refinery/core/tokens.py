"""Rough token arithmetic, good enough for budgets and plans (no tokenizer dependency).

A count of the pieces a BPE tokenizer makes — words (long ones in parts), digit groups, short
punctuation runs — which tracks OpenAI's tokenizers within about 15 % on prose, JSON and code,
where four characters a token undercounted prose with numbers by a quarter. The estimates are
used for planning and admission, and are corrected by the `usage` the API reports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from refinery.core.context_windows import chunk_allowance

CHARS_PER_TOKEN = 4
# the counts an API call's usage reports, as artifacts and usage summaries record them
TOKEN_COUNTS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "total_tokens")


# The pieces counted: what a token estimate means (the counting below gives this pattern's count)
_PIECE = re.compile(r"[A-Za-z]{1,10}|[0-9]{1,3}|[^\sA-Za-z0-9]{1,2}|\s{2,}|[^\S ]")
_SPACE = re.compile(r"\s+")
_WINDOW = 1 << 16
_UNICODE_SPACE = re.compile("[\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")  # `\s` past ASCII


def _letter(b: int) -> bool:
    return 65 <= b <= 90 or 97 <= b <= 122


def _digit(b: int) -> bool:
    return 48 <= b <= 57


def _space(b: int) -> bool:
    return b < 128 and chr(b).isspace()


def _table(member: Callable[[int], bool]) -> bytes:
    return bytes(ord("x") if member(b) else ord(" ") for b in range(256))


# Each kind of run `_PIECE` cuts in pieces (letters, digits, anything else but white space), as the
# bytes that mark it ("x", the rest " "), the piece it is cut into, and whether each run's first
# character is taken off (else its last) to count the rest: letters are most of a text, and a
# search for the edge pattern is quicker where its last byte is the rarer ("x" for letters, " "
# for the others: 0.10 against 0.06 s over 26 MB of rendered files)
_RUNS = (
    (_table(_letter), b"x" * 10, True),
    (_table(_digit), b"x" * 3, False),
    (_table(lambda b: not (_letter(b) or _digit(b) or _space(b))), b"x" * 2, False),
)
# White space: a space "s", any other white space "x", the rest " "
_BLANKS = bytes(ord("s") if b == 32 else ord("x") if _space(b) else ord(" ") for b in range(256))


# The characters past ASCII the renderer writes itself (headings, notes): neither is white space, so a
# text whose only characters past ASCII are these has none of `_UNICODE_SPACE`'s to replace
_OWN = ("\u00b7", "\u2014")
_LONG_LETTERS = b"x" * 11  # a run of letters longer than one piece
_FEW_LONG = 32  # long runs of letters a window counts one by one; past that, all its runs are cut at once


def _letter_pieces(runs: bytes) -> int | None:
    """The pieces of the runs of letters in `runs` (each letter "x", the rest " "): one a run, counted
    where each ends (a search is quicker where its needle's last byte is the rarer), and the rest of
    each run longer than a piece, counted one long run at a time; None when there are more than
    `_FEW_LONG` of those (ids, base64: each cut at once is quicker then)."""
    count = runs.count(b"x ") + (runs[-1:] == b"x")
    at, seen = runs.find(_LONG_LETTERS), 0
    while at >= 0:
        seen += 1
        if seen > _FEW_LONG:
            return None
        start = runs.rfind(b" ", 0, at) + 1
        end = runs.find(b" ", at)
        end = len(runs) if end < 0 else end
        count += (end - start - 1) // 10
        at = runs.find(_LONG_LETTERS, end)
    return count


def _pieces(window: str) -> int:
    r"""How many pieces `_PIECE` finds in `window`, counted by byte operations that each run in C.

    Why: the regular expression engine took a fifth of a microsecond a piece, and `plan` counts
    every rendered file once: a tenth of a big plan's CPU. A run of n letters is ceil(n/10) pieces,
    of digits ceil(n/3), of other characters ceil(n/2): one piece where it starts and floor((n-1)/k)
    in the rest of it. A run of white space is one piece unless it is a single space. Outside ASCII
    a character is "other" (as `[^\s…]` has it) unless it is white space, which `_UNICODE_SPACE`
    lists: looked for only where a character past ASCII is not one of the renderer's own (`_OWN`;
    the search was a fifth of the count), told by the "?" the encoding puts for each. Letters, most
    of a text, are counted where each run ends, and the few runs longer than a piece one by one
    (`_letter_pieces`), not each run cut and counted again.
    """
    data = window.encode("ascii", "replace")  # one "?" (an "other") a character past ASCII
    if not window.isascii():
        strange = data.count(b"?") - window.count("?") - sum(window.count(c) for c in _OWN)
        if strange and _UNICODE_SPACE.search(window):
            data = _UNICODE_SPACE.sub("\n", window).encode("ascii", "replace")
    count = 0
    for table, piece, first in _RUNS:
        runs = data.translate(table)
        if first:
            letters = _letter_pieces(runs)
            if letters is not None:
                count += letters
                continue
            runs = b" " + runs if runs[:1] == b"x" else runs
            rest = runs.replace(b" x", b"  ")  # each run without its first character
        else:
            runs = runs + b" " if runs[-1:] == b"x" else runs
            rest = runs.replace(b"x ", b"  ")  # each run without its last character
        count += runs.count(b"x") - rest.count(b"x") + rest.count(piece)
    blanks = data.translate(_BLANKS)
    if blanks[:1] != b" ":
        blanks = b" " + blanks
    # a run of white space that starts with other than a space, or with a space and goes on: each run
    # longer than one is made to start with "x" (its first pair of spaces, or its space before other
    # white space, replaced: leftmost first, and a run's first character follows a " ", so no earlier
    # pair takes it), and the runs that start with "x" are counted. Two replaces and one search, where
    # three searches for needles holding the commonest byte (" ": no skip) were a third of the count.
    return count + blanks.replace(b"ss", b"xx").replace(b"sx", b"xx").count(b" x")


def estimate_tokens(text: str) -> int:
    if len(text) < 64:
        return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN
    return piece_count(text)


def piece_count(text: str) -> int:
    """How many pieces `_PIECE` finds in `text`, whatever its length (`estimate_tokens` of a text
    of 64 characters or more)."""
    # a window at a time (the byte copies stay small), each ending after a run of white space (no
    # run spans one's end)
    count, start, n = 0, 0, len(text)
    while start < n:
        end = start + _WINDOW
        if end < n:
            space = _SPACE.search(text, end)
            end = space.end() if space else n  # after a whole run of white space: a run is one piece
        count += _pieces(text[start:end])
        start = end
    return count


def _kind(ch: str) -> int:
    """Which kind of run `_PIECE` puts `ch` in: 0 letters, 1 digits, 2 white space, 3 anything else."""
    if ch.isascii():
        b = ord(ch)
        return 0 if _letter(b) else 1 if _digit(b) else 2 if _space(b) else 3
    return 2 if _UNICODE_SPACE.match(ch) else 3


def joins(left: str, right: str) -> bool:
    """Whether a run `_PIECE` cuts may cross from the end of `left` into `right` (their edge characters
    are of one kind): where it cannot, the pieces of `left + right` are those of each."""
    return bool(left) and bool(right) and _kind(left[-1]) == _kind(right[0])


def estimate_tokens_around(text: str, known: Iterable[tuple[int, int, int]]) -> int:
    """`estimate_tokens(text)`, given `piece_count` of some of its spans: (start, end, count), in
    order and apart. Only the rest is counted.

    Why: a plan measures request bodies that hold the rendered files whole, and the spool has
    counted each file already: counting them again was most of measuring a big trace's plan. A
    piece never crosses from one kind of character to another (letters, digits, white space, the
    rest), so where a span's edge characters differ in kind from their neighbours' its pieces are
    its own and the counts add up; a span where they do not is counted with the text around it.
    """
    if len(text) < 64:
        return estimate_tokens(text)
    count = pos = 0
    for start, end, pieces in known:
        if start < pos or end <= start or end > len(text):
            continue
        if (start > 0 and _kind(text[start - 1]) == _kind(text[start])) or (
            end < len(text) and _kind(text[end - 1]) == _kind(text[end])
        ):
            continue  # a run may cross the edge: counted with the rest
        count += piece_count(text[pos:start]) + pieces
        pos = end
    return count + piece_count(text[pos:])


def estimate_body_tokens(body: dict[str, Any], count: Callable[[str], int] = estimate_tokens) -> int:
    """Input tokens a Responses body will cost before retrieval adds its chunks (`count`: how a
    text of it is counted, `estimate_tokens` or the same figure found another way)."""
    texts = [
        part.get("text", "")
        for msg in body.get("input", [])
        if isinstance(msg, dict)
        for part in msg.get("content", [])
        if isinstance(part, dict)
    ]
    schema = json.dumps(((body.get("text") or {}).get("format") or {}).get("schema") or {}, separators=(",", ":"))
    return sum(count(t) for t in texts) + estimate_tokens(schema)


# what `file_search` returns when a request does not say (OpenAI's default `max_num_results`)
DEFAULT_MAX_NUM_RESULTS = 10


def worst_case_tokens(body: dict[str, Any]) -> int:
    """The most a Responses call can be charged: its input, every `file_search` filling its
    `max_num_results` with whole chunks (charged when the call completes, not at admission), and
    its whole `max_output_tokens` (4,096 when unset). What the rate budget reserves: a
    reservation smaller than the charge lets the server's bucket fall below the client's view
    for as long as the answer takes to reach the client."""
    retrieval = sum(
        chunk_allowance(int(tool.get("max_num_results") or DEFAULT_MAX_NUM_RESULTS))
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and tool.get("type") == "file_search"
    )
    return estimate_body_tokens(body) + retrieval + int(body.get("max_output_tokens") or 4096)


def trim_to_tokens(text: str, max_tokens: int) -> str:
    """`text` cut to about `max_tokens`, with a marker saying how much was cut."""
    limit = max_tokens * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… [trimmed: {len(text) - limit} of {len(text)} characters cut to fit the token budget]"
