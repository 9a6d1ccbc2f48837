"""Rendered files spooled to disk: the same files, read back exactly, in a private folder that goes
away when the spool does — and nothing of a big trace's text left in memory meanwhile."""

from __future__ import annotations

import gc
import json
import os
import random

from refinery.analysis.verification import RunTexts, verify
from refinery.traces import json_stream, load_trace
from refinery.traces.render import render_trace_files
from refinery.traces.source_text import run_mark, source, strip_marks
from refinery.traces.spool import SpooledFiles, upload_files_for
from tests.fixtures_traces import make_trace

FILES = [("a_runs_001-006.md", "# one\n«ünïcode» ✓ 📦\n"), ("../odd name.md", "two"), ("empty.md", "")]


def test_spooled_files_read_back_as_given_in_order():
    spool = SpooledFiles(FILES)
    assert list(spool) == FILES and len(spool) == 3
    assert spool[0] == FILES[0] and spool[-1] == FILES[-1] and spool[1:] == FILES[1:]
    assert spool.names == [n for n, _ in FILES] and spool.sizes == [len(t.encode()) for _, t in FILES]


def test_the_spool_folder_is_private_and_deleted_on_close():
    spool = SpooledFiles(FILES)
    folder = spool.folder
    assert folder.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in folder.iterdir()] == ["texts"]  # one file for all: names never become paths
    spool.close()
    assert not folder.exists()


def test_the_spool_folder_is_deleted_when_the_spool_is_dropped():
    spool = SpooledFiles(FILES)
    folder = spool.folder
    del spool
    gc.collect()
    assert not folder.exists()


def test_upload_files_are_the_rendered_files_redacted():
    trace = make_trace(n_runs=8)
    trace.runs[0].inputs = {"headers": {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz012345"}}
    spool, report = upload_files_for(trace)
    rendered = render_trace_files(trace)
    secret = "abcdefghijklmnopqrstuvwxyz012345"
    assert [n for n, _ in spool] == [n for n, _ in rendered] and any(secret in t for _, t in rendered)
    assert not any(secret in t for _, t in spool) and report.as_dict() == {"bearer_token": 1}


def test_citation_texts_are_read_when_checked_not_held():
    files = SpooledFiles(render_trace_files(make_trace()))
    runs = RunTexts(files)
    assert "run-2" in runs and "run-99" not in runs
    assert runs._texts == {}  # nothing read yet
    assert "KeyError: 'order_id'" in runs.text("run-2") and set(runs._texts) == {"run-2"}
    assert runs.text("run-99") == ""


def test_a_big_chat_log_is_analysed_from_the_file_with_the_same_files_and_citations(tmp_path, monkeypatch):
    steps = [
        {
            "role": "assistant",
            "name": f"agent{i % 3}",
            "content": f"step {i} says KeyError: 'order_id'" if i == 7 else f"step {i}",
        }
        for i in range(40)
    ]
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"question": "Refund order 42", "history": steps}))
    eager = upload_files_for(load_trace(path))[0]
    monkeypatch.setattr(json_stream, "LAZY_BYTES", 0)
    lazy = upload_files_for(load_trace(path))[0]
    assert list(lazy) == list(eager)
    claims = {
        "errors": [
            {"run_id": "step-7", "evidence": "KeyError: 'order_id'"},
            {"run_id": "step-8", "evidence": "KeyError: 'order_id'"},
        ]
    }
    check = verify(claims, RunTexts(lazy))
    assert (check.verified, [u["path"] for u in check.unverified]) == (1, ["errors[1]"])


def test_a_run_in_several_files_is_checked_against_all_of_its_text():
    marked = [
        ("a.md", f"{run_mark('r1')}## Run 1: agent [run_id: r1]\n{source('first half of the answer')}\n"),
        ("b.md", f"{run_mark('r2')}## Run 2: tool [run_id: r2]\n{source('lookup')}\n"),
        ("c.md", f"{run_mark('r1')}## Run 1: agent [run_id: r1]\n{source('second half')}\n"),
    ]
    files = SpooledFiles()
    for name, text in marked:
        files.append(name, *strip_marks(text))
    runs = RunTexts(files)
    assert (
        "first half of the answer" in runs.text("r1")
        and "second half" in runs.text("r1")
        and "lookup" not in runs.text("r1")
    )


def test_spooled_text_is_the_owners_only_and_a_dead_processs_spool_is_swept(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    from refinery.traces import spool as spool_module

    monkeypatch.setattr(spool_module.tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"refinery-files-{dead.stdout.strip()}-abc"  # a process that has exited
    stale.mkdir()
    (stale / "000000").write_text("trace text")
    alive = tmp_path / f"refinery-files-{os.getppid()}-def"  # a live process's: kept
    alive.mkdir()
    monkeypatch.setattr(spool_module, "_swept", False)
    spool = SpooledFiles([("a.md", "secret-free text")])
    assert not stale.exists() and alive.exists()
    assert (spool.folder / "texts").stat().st_mode & 0o777 == 0o600 and spool.folder.stat().st_mode & 0o777 == 0o700


def _random_text(rng: random.Random, length: int) -> str:
    # one to four bytes of UTF-8 a character, and lone surrogates (spooled as U+FFFD)
    alphabet = ["a", " ", "\n", "é", "ß", "→", "語", "😀", "\U0010ffff", "\ud800"]
    return "".join(rng.choice(alphabet) for _ in range(length))


def test_a_spooled_file_s_two_ends_are_its_text_s_first_and_last_characters():
    rng = random.Random(7)
    files = SpooledFiles()
    texts = [_random_text(rng, n) for n in (0, 1, 5, 40, 300, 5000)]
    for i, text in enumerate(texts):
        files.append(f"f{i}.md", text)
    for i in range(len(texts)):
        whole = files.text(i)
        assert files.lengths[i] == len(whole)
        for _ in range(200):
            head, tail = rng.randrange(0, len(whole) + 3), rng.randrange(0, len(whole) + 3)
            assert files.text_ends(i, head, tail) == (whole[:head], whole[len(whole) - tail :])
    files.close()


def test_a_big_file_s_ends_are_read_without_the_rest(monkeypatch):
    files = SpooledFiles()
    text = _random_text(random.Random(3), 200_000)
    files.append("t_index.md", text)
    whole = files.text(0)
    reads: list[int] = []
    real = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, at: reads.append(n) or real(fd, n, at))
    assert files.text_ends(0, 1000, 1500) == (whole[:1000], whole[-1500:])
    assert sum(reads) <= 4 * 2500 + 3 < files.sizes[0] // 10
    files.close()


def test_a_closed_spool_holds_no_file():
    files = SpooledFiles(FILES)
    files.close()
    assert len(files) == 0 and files.layouts == [] and files.sizes == [] and files.tokens == []
