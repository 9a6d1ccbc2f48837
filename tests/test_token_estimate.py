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


def _prose(rng: random.Random, words: int, longest: int) -> str:
    """Words of 1 to `longest` letters (runs of one piece, of exactly ten letters, of eleven and more)
    among the renderer's own characters past ASCII, question marks, white space past ASCII, digits."""
    seps = [" ", " ", " ", "  ", "\n", " · ", " — ", "?", " ? ", "\u3000", "\xa0", "·\u2003", "—\n", "\t", "1"]
    return "".join(
        "".join(rng.choice("abcXYZ") for _ in range(rng.randint(1, longest))) + rng.choice(seps) for _ in range(words)
    )


def test_prose_counts_as_the_pattern_does_whatever_its_long_runs_and_characters_past_ascii():
    rng = random.Random(8)
    for _ in range(1500):
        text = _prose(rng, rng.randint(10, 200), rng.choice([10, 11, 12, 25]))
        assert tokens.piece_count(text) == sum(1 for _ in PIECES.finditer(text)), repr(text[:80])


def test_a_window_of_many_long_runs_of_letters_counts_as_one_of_few_does():
    for long_runs in (tokens._FEW_LONG - 1, tokens._FEW_LONG, tokens._FEW_LONG + 1, 5 * tokens._FEW_LONG):
        for length in (11, 20, 21, 31):
            text = ("word " * 50 + "q" * length + " ") * long_runs
            assert estimate_tokens(text) == sum(1 for _ in PIECES.finditer(text))


def test_every_run_of_white_space_but_a_lone_space_is_one_piece_whatever_its_spaces_and_other_white_space():
    """Runs of spaces and other white space of every length and order, at a window's start and end,
    next to each other's words: the runs made to start with other white space count as the pattern's."""
    rng = random.Random(11)
    blanks = [" ", "\n", "\t", "\u3000"]
    for _ in range(3000):
        runs = ["".join(rng.choice(blanks) for _ in range(rng.choice([1, 1, 2, 3, 4, 7]))) for _ in range(30)]
        words = [rng.choice(["a", "bc", "1", ".", "é"]) for _ in range(30)]
        text = "".join(w + r for w, r in zip(words, runs, strict=True))
        text = rng.choice(["", " ", "  ", "\n "]) + text
        assert tokens.piece_count(text) == sum(1 for _ in PIECES.finditer(text)), repr(text[:80])
