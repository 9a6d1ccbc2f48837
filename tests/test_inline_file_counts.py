"""Inline reading takes a spooled file's token count from the spool (taken when the file was
written) instead of measuring the file again for every Stage 1 group and later stage."""

from __future__ import annotations

from types import SimpleNamespace

from refinery.analysis import inline_reading
from refinery.core.tokens import estimate_tokens
from refinery.traces.spool import SpooledFiles


def test_a_spooled_file_s_piece_carries_the_spool_s_count_without_measuring_it_again(monkeypatch):
    files = SpooledFiles()
    texts = {"t_index.md": "# Index\n" + "| run | name |\n" * 500, "t_prompts.md": "You are a careful agent.\n" * 40}
    for name, text in texts.items():
        files.append(name, text)
    measured: list[str] = []
    monkeypatch.setattr(inline_reading, "estimate_tokens", lambda t: measured.append(t) or estimate_tokens(t))
    run = SimpleNamespace(texts=SimpleNamespace(files=files))
    pieces = inline_reading.file_pieces(run, [0, 1])
    assert [(p.file, p.text, p.tokens) for p in pieces] == [(n, t, estimate_tokens(t)) for n, t in texts.items()]
    assert not any(t in measured for t in texts.values())  # only the short separator lines were measured
    files.close()


def test_files_not_spooled_are_measured():
    text = "plain text of a file " * 30
    run = SimpleNamespace(texts=SimpleNamespace(files=[("a.md", text)]))
    (piece,) = inline_reading.file_pieces(run, [0])
    assert piece.tokens == estimate_tokens(text)
