"""Commands that run many traces (`batch`, `eval`) tell "all done" (0), "some failed" (5) and
"nothing could be analysed" (the one cause's code, else 4) apart, and name each failed trace."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from refinery.app.cli import amain
from refinery.app.exit_codes import EXIT_ACCESS, EXIT_FAILED, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, exit_code_of_many
from refinery.testing.faults import Fault

FIX = Path(__file__).parent / "fixtures"
EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "eval-data"


def test_the_exit_code_of_many_says_all_some_or_none():
    assert exit_code_of_many(3, []) == EXIT_OK
    assert exit_code_of_many(8, [EXIT_FAILED]) == EXIT_SOME_FAILED
    assert exit_code_of_many(0, [EXIT_ACCESS, EXIT_ACCESS]) == EXIT_ACCESS  # one cause: its code
    assert exit_code_of_many(0, [EXIT_USAGE, EXIT_ACCESS]) == EXIT_FAILED  # several causes: nothing analysed
    assert EXIT_SOME_FAILED not in (EXIT_OK, EXIT_USAGE, EXIT_ACCESS, EXIT_FAILED)


async def test_a_batch_whose_every_trace_fails_for_one_cause_exits_with_its_code(openai_env, tmp_path, capsys):
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "one.json").write_text('{"<tag>": "not a trace"}')
    (folder / "two.json").write_text('{"nor": "this"}')
    out = tmp_path / "out"
    assert await amain(["batch", str(folder), "--out", str(out)]) == EXIT_USAGE
    printed = capsys.readouterr().out
    assert [line.split(" — ")[0] for line in printed.splitlines() if line.startswith("failed:")] == [
        "failed: one",
        "failed: two",
    ]
    md = (out / "summary.md").read_text()
    # one escaping throughout: the table and the failures list both write `<tag>` as `&lt;tag&gt;`
    assert "<tag>" not in md and md.count("&lt;tag&gt;") == 2


@pytest.mark.skipif(not (EVAL / "who-and-when").is_dir(), reason="../shared/eval-data not present")
async def test_an_eval_whose_analyses_all_fail_does_not_exit_0_and_names_them(openai_env, tmp_path, capsys):
    openai_env.inject(Fault("refusal", times=100))  # every stage call refused: no analysis can finish
    data = tmp_path / "ww"
    data.mkdir()
    for src in sorted((EVAL / "who-and-when" / "hand-crafted").glob("*.json"))[:2]:
        shutil.copy(src, data / src.name)
    out = tmp_path / "out"
    rc = await amain(["eval", "who-and-when", str(data), "--out", str(out)])
    assert rc == EXIT_FAILED
    result = json.loads((out / "eval.json").read_text())
    assert result["analysed"] == 0 and len(result["failed"]) == 2
    md = (out / "eval.md").read_text()
    assert "## Traces that could not be analysed" in md and "RefusalError" in md


async def test_run_without_out_writes_one_folder_per_trace_and_a_rerun_resumes(
    openai_env, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    expect = str(FIX / "expectation.json")
    for trace in ("otlp_trace.json", "plain_chat.json"):
        assert await amain(["run", str(FIX / trace), "--expect", expect]) == EXIT_OK  # no --out: no collision
    folders = sorted(p.name for p in (tmp_path / "refinery-out").iterdir())
    assert folders == ["4bf92f3577b34da6a3ce929d0e0e4736", "chat-ece0cd62581c"]  # each trace's id
    calls = len(openai_env.response_bodies)
    assert await amain(["run", str(FIX / "otlp_trace.json"), "--expect", expect]) == EXIT_OK
    assert len(openai_env.response_bodies) == calls  # the same trace again: resumed, nothing asked twice
    assert "refinery-out/4bf92f3577b34da6a3ce929d0e0e4736/report.md" in capsys.readouterr().out


async def test_run_json_carries_the_verdict_and_says_the_answers_are_the_stand_ins(openai_env, tmp_path, capsys):
    from refinery.app.demo import example_paths

    trace, expect = example_paths()
    argv = ["run", str(trace), "--expect", str(expect), "--out", str(tmp_path / "o"), "--json"]
    assert await amain(argv) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["failure_type"] and data["responsible_agent"] == "RefundBot"
    assert data["decisive_step"]["run_id"] == "b2000000000000b2" and data["decisive_step"]["verified"] is True
    assert data["citations"]["cited"] >= data["citations"]["verified"] > 0
    assert data["stand_in_model"] is True  # the local server's stand-in answered
