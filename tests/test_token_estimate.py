"""The token estimate counts, with byte operations, exactly the pieces its pattern (`_PIECE`)
finds: on random text of every kind of character — letters, digits, punctuation, every white
space, text past ASCII, a lone surrogate — short, across windows and on one long line."""

from __future__ import annotations

import random
import re

from refinery.core import tokens
from refinery.core.tokens import estimate_tokens

PIECES = re.compile(tokens._PIECE.pattern)
KINDS = [
    "a", "Z", "abcdefghijkl", "1", "2024", "1234567", ".", ",", "...", '"},{"', "`", " ", "  ", "\n", "\t",
    "\r\n", "\x0b", "\x1c", "\x85", "\xa0", "\u2003", "\u3000", "é", "日本", "\U0001f600", "\ud800", "x", "s",
]  # fmt: skip


def _random_texts(seed: int, count: int, longest: int, shortest: int = 1) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(KINDS) for _ in range(rng.randint(shortest, longest))) for _ in range(count)]


def test_the_estimate_is_the_count_of_the_pieces():
    for text in _random_texts(37, 2000, 400):
        expected = sum(1 for _ in PIECES.finditer(text)) if len(text) >= 64 else -(-len(text) // 4)
        assert estimate_tokens(text) == expected, repr(text[:80])


def test_texts_longer_than_a_window_count_as_one_pass_would():
    for text in [*_random_texts(5, 6, 60_000, 40_000), "word " * 30_000 + "x" * 70_000, "日本\u3000 " * 20_000]:
        assert len(text) > tokens._WINDOW
        assert estimate_tokens(text) == sum(1 for _ in PIECES.finditer(text))


def test_the_white_space_past_ascii_is_what_the_pattern_calls_white_space():
    listed = {chr(c) for c in range(128, 0x110000) if tokens._UNICODE_SPACE.fullmatch(chr(c))}
    assert listed == {chr(c) for c in range(128, 0x110000) if re.fullmatch(r"\s", chr(c))}
