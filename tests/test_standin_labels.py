"""Every output made from the stand-in's answers says so; a resumed demo says it resumed; counts
under `--limit` say "N of M"."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from refinery.app.cli import amain
from refinery.report.view import STAND_IN

FIX = Path(__file__).parent / "fixtures"
EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "eval-data"


async def test_a_second_demo_says_it_resumed(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = str(tmp_path / "d")
    assert await amain(["demo", "--out", out]) == 0
    assert "demo: ran upload, indexing and four stages" in capsys.readouterr().out
    assert await amain(["demo", "--out", out, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["resumed_stages"] == ["stage1", "stage2", "stage3", "stage4"]
    assert await amain(["demo", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "demo: resumed the analysis already in" in printed and "ran upload" not in printed


async def test_patterns_made_from_the_stand_ins_diagnoses_say_so(openai_env, tmp_path, capsys):
    folder = tmp_path / "traces"
    folder.mkdir()
    for name in ("otlp_trace.json", "langsmith_runs.json"):
        shutil.copy(FIX / name, folder / name)
    out = tmp_path / "batch"
    assert await amain(["batch", str(folder), "--expect", str(FIX / "expectation.json"), "--out", str(out)]) == 0
    assert STAND_IN in (out / "summary.md").read_text()
    capsys.readouterr()
    assert await amain(["patterns", str(out), "--no-llm"]) == 0
    assert capsys.readouterr().out.startswith(STAND_IN)
    assert await amain(["patterns", str(out), "--no-llm", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stand_in_model"] is True


def test_the_eval_tables_head_the_stand_ins_column_as_the_stand_ins():
    from refinery.eval.report import render_eval_md

    scores = {
        "traces": 1,
        "predicted": 1,
        **{k: 0.0 for k in ("root_step_accuracy", "root_agent_accuracy", "failure_recall", "failure_precision")},
        **{f"root_step_within_{k}_accuracy": 0.0 for k in (1, 3, 5)},
        "root_step_distance_mean": 0.0,
    }
    result = {"benchmark": "labels", "data": "x", "stand_in": True, "scores": scores, "model": "gpt-4o"}
    md = render_eval_md(result)
    assert "| metric | stand-in model (test double, not an analysis) |" in md and "| metric | refinery |" not in md
    assert "| metric | refinery |" in render_eval_md({**result, "stand_in": False})


@pytest.mark.skipif(not (EVAL / "who-and-when").is_dir(), reason="../shared/eval-data not present")
async def test_an_eval_under_limit_counts_n_of_the_folders_files(tmp_path, capsys):
    data = EVAL / "who-and-when" / "hand-crafted"
    in_folder = len(list(data.glob("*.json")))
    preds = tmp_path / "preds"
    preds.mkdir()
    argv = ["eval", "who-and-when", str(data), "--limit", "2", "--score", str(preds), "--out", str(tmp_path / "o")]
    assert await amain(argv) == 0
    assert f"2 of {in_folder} files in the folder" in capsys.readouterr().out
