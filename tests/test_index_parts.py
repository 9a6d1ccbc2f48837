"""A trace of tens of thousands of runs gets its index in parts of `INDEX_LINES` lines, each read
as the index: one index of 22 M characters (a 100 MB chat log's) was made, redacted and read back
as one string, each copy one C call that held the host's event loop (issue 31)."""

from __future__ import annotations

from types import SimpleNamespace

from refinery.analysis.analysis_run import file_attributes
from refinery.analysis.inline_reading import context_files
from refinery.traces import render
from refinery.traces.render import RenderOptions, render_trace_files
from tests.fixtures_traces import make_trace

ROW_HEAD = "| seq | run_id | name | type | status | file |"


def _index_files(monkeypatch, n_runs: int, lines: int) -> list[tuple[str, str]]:
    monkeypatch.setattr(render, "INDEX_LINES", lines)
    files = render_trace_files(make_trace(n_runs=n_runs), options=RenderOptions(runs_per_file=5))
    return [(n, t) for n, t in files if n.endswith("_index.md")]


def _rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and line != ROW_HEAD]


def test_a_small_trace_keeps_one_index_as_before(monkeypatch):
    ((name, text),) = _index_files(monkeypatch, 12, 10_000)
    assert name == "t1_index.md" and "part 2" not in text and len(_rows(text)) == 12


def test_a_long_index_is_cut_into_parts_that_hold_every_row_once_in_order(monkeypatch):
    whole = dict(_index_files(monkeypatch, 45, 10_000))["t1_index.md"]
    parts = _index_files(monkeypatch, 45, 16)
    assert [n for n, _ in parts] == ["t1_index.md", "t1_part002_index.md", "t1_part003_index.md", "t1_part004_index.md"]
    assert [row for _, text in parts for row in _rows(text)] == _rows(whole)
    for k, (_, text) in enumerate(parts[1:], start=2):
        assert text.startswith(f"# Trace t1 — index, part {k} of 4\n\n{ROW_HEAD}\n")  # its table's heading again
    for (_, text), (after, _) in zip(parts, parts[1:]):
        assert text.rstrip().endswith(f"(the index goes on in {after})")
    assert parts[0][1].startswith(whole[: whole.index(ROW_HEAD)])  # the task, agents, prompts: first


def test_every_part_is_read_as_the_index(monkeypatch):
    parts = _index_files(monkeypatch, 45, 16)
    names = [n for n, _ in parts]
    assert {a["kind"] for a in file_attributes(parts, []).values()} == {"index"}
    files = [("t1_prompt_a.md", "p"), *parts, ("t1_expectations.md", "e")]
    layouts = SimpleNamespace(layout=lambda i: SimpleNamespace(run_ids=[]))
    run = SimpleNamespace(texts=SimpleNamespace(files=files, layout=layouts.layout))
    assert [files[i][0] for i in context_files(run)] == ["t1_expectations.md", "t1_prompt_a.md", *names]
