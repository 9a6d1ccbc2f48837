"""Big strings worked on a piece at a time (`core.pieces`, so no one C call holds the GIL and the
host's loop for a whole big text) give exactly what the one call gives, wherever a piece's edge
falls: joins, searches, encodings and decodings; and the spool, which writes and reads its texts
through them, reads back the bytes it was given."""

from __future__ import annotations

import random

import pytest

from refinery.core import pieces
from refinery.traces.spool import SpooledFiles

# characters of every UTF-8 length, a lone surrogate apart: 1, 2, 3 and 4 bytes
ALPHABET = "ab\n é—✓📦\ue000"


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(n))


@pytest.fixture
def small_pieces(monkeypatch):
    monkeypatch.setattr(pieces, "PIECE_CHARS", 7)
    monkeypatch.setattr(pieces, "_LINES", 3)


@pytest.mark.parametrize("end", ["", "\n"])
def test_lines_joined_in_blocks_are_the_one_join(small_pieces, end):
    rng = random.Random(1)
    for n in range(0, 12):
        lines = [_text(rng, rng.randint(0, 4)) for _ in range(n)]
        assert pieces.joined_lines(lines, end) == "\n".join(lines) + end


def test_a_needle_is_found_across_a_pieces_edge_and_not_found_where_it_is_not(small_pieces):
    rng = random.Random(2)
    for _ in range(300):
        text = _text(rng, rng.randint(0, 40))
        for needle in ("", "a", "ab", "é—", text[3:9], text[5:20], "📦📦📦", "zz"):
            assert pieces.contains(text, needle) == (needle in text), (text, needle)


def test_pieces_encode_and_decode_to_the_one_calls_bytes_and_text(small_pieces):
    rng = random.Random(3)
    for _ in range(200):
        text = _text(rng, rng.randint(0, 40))
        data = b"".join(pieces.encoded_pieces(text))
        assert data == text.encode("utf-8")
        assert pieces.decoded(data) == text  # characters of 2–4 bytes split between pieces


def test_a_lone_surrogate_fails_in_pieces_as_in_one_encode_and_bad_bytes_fail_to_decode(small_pieces):
    with pytest.raises(UnicodeEncodeError):
        list(pieces.encoded_pieces("x" * 20 + "\ud800"))
    with pytest.raises(UnicodeDecodeError):
        pieces.decoded("é".encode() * 10 + b"\xff" + b"a" * 10)
    with pytest.raises(UnicodeDecodeError):
        pieces.decoded(b"a" * 20 + "📦".encode()[:2])  # cut in its last character


def test_the_spool_writes_and_reads_a_big_text_in_pieces_as_given(small_pieces):
    rng = random.Random(4)
    files = [(f"f{i}.md", _text(rng, rng.randint(0, 60))) for i in range(20)]
    spool = SpooledFiles(files)
    try:
        assert list(spool) == files
        assert spool.sizes == [len(t.encode()) for _, t in files]
        assert (spool.folder / "texts").read_bytes() == "".join(t for _, t in files).encode()
    finally:
        spool.close()


def test_a_lone_surrogate_in_a_later_piece_is_replaced_in_the_spool_and_what_follows_stays_in_place(small_pieces):
    spool = SpooledFiles([("a.md", "é" * 10 + "\ud800" + "z" * 10), ("b.md", "next")])
    try:
        assert spool[0] == ("a.md", "é" * 10 + "\ufffd" + "z" * 10)
        assert spool[1] == ("b.md", "next")
        assert spool.sizes[0] == len(("é" * 10 + "\ufffd" + "z" * 10).encode())
    finally:
        spool.close()
