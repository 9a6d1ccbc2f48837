"""`refinery eval trail` given the whole annotation folder and only some of the traces: it scores
the traces it has and lists what it could not pair, in eval.json and eval.md."""

from __future__ import annotations

import json
from pathlib import Path

from refinery.app.cli import amain


def write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def trace(question: str) -> dict:
    return {
        "question": question,
        "history": [
            {"id": "s1", "role": "assistant", "name": "planner", "content": "Plan: search, then answer."},
            {"id": "s2", "role": "assistant", "name": "searcher", "content": "search failed: HTTP 500"},
            {"id": "s3", "role": "assistant", "name": "planner", "content": "The answer is 12."},
        ],
    }


def dataset(tmp_path: Path) -> tuple[Path, Path]:
    annotations, traces = tmp_path / "annotations", tmp_path / "traces"
    for name in ("aaa", "bbb", "ccc"):
        write(annotations / "gaia" / f"{name}.json", {"errors": [{"category": "Tool-related", "location": "s2"}]})
    write(traces / "gaia" / "aaa.json", trace("How many moons does Mars have?"))
    write(traces / "gaia" / "zzz.json", trace("Who wrote Dune?"))  # no annotation names it
    return annotations, traces


async def test_eval_trail_scores_the_traces_it_has_and_lists_the_rest(openai_env, tmp_path):
    annotations, traces = dataset(tmp_path)
    out = tmp_path / "out"
    assert await amain(["eval", "trail", str(traces), str(annotations), "--out", str(out)]) == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["analysed"] == 1 and result["scores"]["overall"]["traces"] == 1
    assert result["annotations_without_trace"] == ["gaia/bbb", "gaia/ccc"]
    assert result["traces_without_annotation"] == ["gaia/zzz.json"]
    md = (out / "eval.md").read_text()
    assert "- annotations with no trace (not scored): 2: `gaia/bbb`, `gaia/ccc`" in md
    assert "- traces with no annotation (not analysed): 1: `gaia/zzz.json`" in md


async def test_eval_trail_with_no_trace_for_any_annotation_is_an_input_error(openai_env, tmp_path, capsys):
    annotations, _ = dataset(tmp_path)
    empty = tmp_path / "none"
    empty.mkdir()
    assert await amain(["eval", "trail", str(empty), str(annotations), "--out", str(tmp_path / "out")]) == 2
    assert "no trace for any of the 3 annotations" in capsys.readouterr().err


async def test_eval_reads_annotations_and_traces_and_writes_its_files_off_the_event_loop(monkeypatch, tmp_path):
    """An eval inside a host's loop: the labels, every trace and eval.json are read and written in
    refinery's worker thread, never on the loop (a big trace would stop the host for seconds)."""
    from refinery.app import eval_runner
    from refinery.core.offload import worker_thread

    threads: dict[str, list[bool]] = {}

    def recorded(name, func):
        def call(*args, **kwargs):
            threads.setdefault(name, []).append(worker_thread())
            return func(*args, **kwargs)

        return call

    monkeypatch.setattr(eval_runner, "load_trace", recorded("load_trace", eval_runner.load_trace))
    monkeypatch.setattr(
        eval_runner.trail_scoring,
        "load_annotations",
        recorded("annotations", eval_runner.trail_scoring.load_annotations),
    )
    monkeypatch.setattr(eval_runner, "write_json_atomic", recorded("write", eval_runner.write_json_atomic))
    annotations, traces = dataset(tmp_path)
    predictions = tmp_path / "predictions"
    write(predictions / "aaa.json", {"errors": [{"category": "Tool-related", "location": "s2"}]})
    result = await eval_runner.eval_trail(traces, annotations, out=tmp_path / "out", predictions_dir=predictions)
    assert result["scores"]["overall"]["traces"] == 3
    assert threads == {"annotations": [True], "load_trace": [True], "write": [True]}  # aaa.json read for its spans
    assert json.loads((tmp_path / "out" / "eval.json").read_text())["benchmark"] == "trail"
