"""`refinery eval`: scorers on hand-worked cases, baselines against brute force, gold-as-prediction
at the maximum, and the whole path over ../shared/eval-data against the local server."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from refinery.cli import amain
from refinery.errors import InputFileError
from refinery.eval import trail as tr
from refinery.eval import who_and_when as ww
from refinery.eval.runner import trail_prediction, who_and_when_prediction
from tests.helpers import SHARED

EVAL = SHARED / "eval-data"
needs_eval_data = pytest.mark.skipif(not (EVAL / "trail").is_dir() or not (EVAL / "who-and-when").is_dir(), reason="../shared/eval-data not present")


def gold(name="a.json", agent="Orchestrator", step=2, speakers=("human", "Orchestrator (thought)", "WebSurfer"), steps=6, subset="hand"):
    return ww.Gold(name, subset, agent, step, tuple(speakers), steps)


# --- Who&When -------------------------------------------------------------------------------
def test_who_and_when_accuracies_worked_by_hand():
    golds = [gold("a.json"), gold("b.json", agent="WebSurfer", step=4), gold("c.json", agent="Websurfer", step=0)]
    preds = {
        "a.json": {"predicted_agent": "Orchestrator (-> WebSurfer)", "predicted_step": "step-3"},  # agent right, step off by 1
        "b.json": {"predicted_agent": "WebSurfer", "predicted_step": "4"},  # both right
        "c.json": {"predicted_agent": "WebSurfer", "predicted_step": 9},  # the label says Websurfer: an exact miss, a substring hit
    }
    s = ww.score(golds, preds)["overall"]
    assert s["agent_accuracy"] == pytest.approx(2 / 3)
    assert s["agent_substring_accuracy"] == pytest.approx(1.0)  # Who&When's own matching forgives case
    assert s["step_accuracy"] == pytest.approx(1 / 3)
    assert s["step_within_1_accuracy"] == pytest.approx(2 / 3)
    assert s["step_within_5_accuracy"] == pytest.approx(2 / 3)


def test_a_missing_prediction_scores_zero_but_counts():
    s = ww.score([gold()], {})["overall"]
    assert (s["files"], s["predicted"], s["agent_accuracy"], s["step_accuracy"]) == (1, 0, 0.0, 0.0)


def test_who_and_when_random_baseline_equals_brute_force():
    g = gold(agent="WebSurfer", step=1, speakers=("human", "Orchestrator (thought)", "Orchestrator (-> WebSurfer)", "WebSurfer"), steps=4)
    base = ww.random_baseline(g)
    agents = list(dict.fromkeys(ww.agent_name(s) for s in g.speakers))
    guesses = list(itertools.product(agents, range(g.steps)))
    rows = [ww.score_one(g, {"predicted_agent": a, "predicted_step": st}) for a, st in guesses]
    for key in ("agent", "step", "step_within_1", "step_within_5"):
        assert base[key] == pytest.approx(sum(r[key] for r in rows) / len(rows)), key
    assert base["agent_uniform_over_speakers"] == pytest.approx(1 / 4)


def test_gold_as_prediction_scores_the_maximum():
    golds = [gold("a.json"), gold("b.json", agent="WebSurfer", step=4)]
    s = ww.score(golds, {g.name: {"predicted_agent": g.agent, "predicted_step": str(g.step)} for g in golds})["overall"]
    assert all(s[k] == 1.0 for k in ("agent_accuracy", "agent_substring_accuracy", "step_accuracy", "step_within_1_accuracy", "step_within_5_accuracy"))


def test_a_malformed_who_and_when_log_names_the_file(tmp_path):
    (tmp_path / "bad.json").write_text('{"history": []}')
    with pytest.raises(InputFileError, match=r"bad\.json: not a Who&When log"):
        ww.load_dataset(tmp_path)


def test_a_diagnosis_becomes_a_who_and_when_prediction():
    pred = who_and_when_prediction({"responsible_agent": "WebSurfer", "decisive_step": {"run_id": "step-12", "reason": "…"}})
    assert pred == {"predicted_agent": "WebSurfer", "predicted_step": "12"}


# --- TRAIL ----------------------------------------------------------------------------------
def tg(trace_id, *errors, subset="gaia"):
    return tr.TraceGold(trace_id, subset, tuple((loc, tr.category_key(cat)) for loc, cat in errors))


def test_trail_metrics_worked_by_hand_with_spelling_quirks():
    golds = [
        tg("t1", ("s1", "Formatting Errors"), ("s2", "Tool-related")),
        tg("t2", ("s9", "Instruction non complience")),
        tg("t3"),  # no gold errors: counts 0 in the accuracies, as upstream does
    ]
    preds = {
        "t1": {"errors": [{"location": "s1", "category": "formatting errors"}, {"location": "s3", "category": "Tool-related"}]},
        "t2": {"errors": [{"location": "s9", "category": "Instruction Non-compliance"}]},
        "t3": {"errors": [{"location": "s5", "category": "Goal Deviation"}]},
    }
    s = tr.score(golds, preds)["overall"]
    # location: t1 1/2, t2 1/1, t3 0 → 0.5; joint: t1 1/2 (s1 formatting), t2 1/1, t3 0 → 0.5
    assert s["location_accuracy"] == pytest.approx(0.5) and s["joint_accuracy"] == pytest.approx(0.5)
    # precision: t1 1/2, t2 1/1, t3 0/1 → 0.5
    assert s["location_precision"] == pytest.approx(0.5)
    # per-category F1 over traces: formatting 1 (t1 tp), tool-related 1 (t1 tp), instruction 1 (t2 tp);
    # goal deviation has no gold support: weight 0 → weighted F1 = 1.0
    assert s["category_f1_weighted"] == pytest.approx(1.0)


def test_weighted_f1_weights_each_category_by_its_gold_support():
    gold_sets = [{"a"}, {"a"}, {"b"}]
    pred_sets = [{"a"}, set(), {"a"}]
    # a: tp 1, fn 1, fp 1 → F1 0.5, support 2; b: tp 0 → F1 0, support 1 → (2*0.5 + 1*0) / 3
    assert tr.weighted_f1(gold_sets, pred_sets) == pytest.approx(1 / 3)


def test_predicting_every_span_scores_full_recall_but_low_precision():
    golds = [tg("t1", ("s1", "Goal Deviation"))]
    everything = {"t1": {"errors": [{"location": f"s{i}", "category": "Goal Deviation"} for i in range(10)]}}
    s = tr.score(golds, everything)["overall"]
    assert s["location_accuracy"] == 1.0 and s["location_precision"] == pytest.approx(0.1)


def test_a_malformed_annotation_names_the_file(tmp_path):
    (tmp_path / "x.json").write_text('{"errors": [{"category": "Goal Deviation"}]}')
    with pytest.raises(InputFileError, match=r"x\.json: not a TRAIL annotation"):
        tr.load_annotations(tmp_path)


def test_a_diagnosis_becomes_a_trail_prediction_in_trails_spelling():
    pred = trail_prediction({"errors": [{"run_id": "abc", "category": "tool_selection_error"}, {"run_id": "def", "category": "other"}]})
    assert pred == {"errors": [{"category": "Tool Selection Errors", "location": "abc"}, {"category": "Other", "location": "def"}]}


# --- over ../shared/eval-data ---------------------------------------------------------------
def write_gold_predictions(folder: Path, benchmark: str) -> None:
    folder.mkdir()
    if benchmark == "trail":
        for g in tr.load_annotations(EVAL / "trail" / "annotations"):
            (folder / f"{g.trace_id}.json").write_text(json.dumps(tr.gold_as_prediction(g)))
    else:
        for g in ww.load_dataset(EVAL / "who-and-when"):
            (folder / g.name).write_text(json.dumps({"predicted_agent": g.agent, "predicted_step": str(g.step)}))


@needs_eval_data
@pytest.mark.parametrize("benchmark", ["trail", "who-and-when"])
async def test_score_of_the_gold_labels_gives_the_metrics_maximum(tmp_path, capsys, benchmark):
    write_gold_predictions(tmp_path / "pred", benchmark)
    args = ["trail", str(EVAL / "trail" / "traces"), str(EVAL / "trail" / "annotations")] if benchmark == "trail" else ["who-and-when", str(EVAL / "who-and-when" / "hand-crafted")]
    assert await amain(["eval", *args, "--score", str(tmp_path / "pred"), "--out", str(tmp_path / "out"), "--json"]) == 0
    overall = json.loads(capsys.readouterr().out)["scores"]["overall"]
    keys = ("category_f1_weighted", "location_accuracy", "joint_accuracy", "location_precision") if benchmark == "trail" else ("agent_accuracy", "step_accuracy")
    assert all(overall[k] == pytest.approx(1.0) for k in keys), overall
    assert (tmp_path / "out" / "eval.json").is_file() and (tmp_path / "out" / "eval.md").is_file()


@needs_eval_data
async def test_eval_who_and_when_runs_against_the_local_server_and_says_it_is_the_stand_in(openai_env, tmp_path, capsys):
    out = tmp_path / "ww"
    assert await amain(["eval", "who-and-when", str(EVAL / "who-and-when" / "hand-crafted"), "--limit", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "**These figures are the stand-in model's**" in printed and "| step accuracy (exact) |" in printed
    result = json.loads((out / "eval.json").read_text())
    assert result["stand_in"] is True and result["analysed"] == 2 and result["scores"]["overall"]["predicted"] == 2
    assert sorted(p.name for p in (out / "predictions").iterdir()) == sorted(p.name for p in sorted((EVAL / "who-and-when" / "hand-crafted").glob("*.json"))[:2])


@needs_eval_data
async def test_eval_trail_runs_against_the_local_server(openai_env, tmp_path):
    out = tmp_path / "trail"
    assert await amain(["eval", "trail", str(EVAL / "trail" / "traces"), str(EVAL / "trail" / "annotations"), "--limit", "1", "--out", str(out)]) == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["benchmark"] == "trail" and result["analysed"] == 1
    [pred] = list((out / "predictions").iterdir())
    assert json.loads(pred.read_text())["errors"]
