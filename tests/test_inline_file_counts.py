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


def _spooled_run(texts: dict[str, str]) -> tuple[SpooledFiles, SimpleNamespace]:
    files = SpooledFiles()
    for name, text in texts.items():
        files.append(name, text)
    return files, SimpleNamespace(texts=SimpleNamespace(files=files))


def test_a_spooled_file_cut_to_its_share_is_the_same_cut_as_of_the_text_in_memory():
    texts = {"t_prompts.md": "Prompt → ünïcode 😀 line\n" * 300, "t_index.md": "| run ✓ | név |\n" * 20_000}
    files, run = _spooled_run(texts)
    in_memory = SimpleNamespace(texts=SimpleNamespace(files=list(texts.items())))
    for room in (100, 900, 5_000, 40_000, 10**7):
        spooled = inline_reading.fitted_pieces(inline_reading.file_pieces(run, [0, 1]), room)
        read = inline_reading.fitted_pieces(inline_reading.file_pieces(in_memory, [0, 1]), room)
        assert inline_reading.pieces_text(*spooled) == inline_reading.pieces_text(*read)
    files.close()


def test_a_big_spooled_file_is_not_read_whole_when_it_is_cut_or_left_out(monkeypatch):
    files, run = _spooled_run({"t_prompts.md": "Be careful.\n" * 40, "t_index.md": "| run ✓ | név |\n" * 50_000})
    whole: list[int] = []
    read_whole = SpooledFiles.text
    monkeypatch.setattr(SpooledFiles, "text", lambda self, i: whole.append(i) or read_whole(self, i))
    kept, dropped = inline_reading.fitted_pieces(inline_reading.file_pieces(run, [0, 1]), 5_000)
    text = inline_reading.pieces_text(kept, dropped)
    assert "[truncated:" in text and text.count("| run ✓ | név |") < 5_000
    assert whole == [0]  # the prompts, kept whole; the index only at its two ends
    files.close()
