"""`refinery eval`: scorers on hand-worked cases, baselines against brute force, gold-as-prediction
at the maximum, and the whole path over ../shared/eval-data against the local server."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from refinery.app.cli import amain
from refinery.app.eval_runner import trail_prediction, who_and_when_prediction
from refinery.eval import official as off
from refinery.eval import trail as tr
from refinery.eval import who_and_when as ww
from tests.helpers import SHARED

EVAL = SHARED / "eval-data"
needs_eval_data = pytest.mark.skipif(
    not (EVAL / "trail").is_dir() or not (EVAL / "who-and-when").is_dir(), reason="../shared/eval-data not present"
)


def gold(
    name="a.json",
    agent="Orchestrator",
    step=2,
    speakers=("human", "Orchestrator (thought)", "WebSurfer"),
    steps=6,
    subset="hand",
):
    return ww.Gold(name, subset, agent, step, tuple(speakers), steps, agent_text=agent, step_text=str(step))


# --- Who&When: refinery's strict metrics ----------------------------------------------------
def test_who_and_when_strict_accuracies_worked_by_hand():
    golds = [gold("a.json"), gold("b.json", agent="WebSurfer", step=4), gold("c.json", agent="Websurfer", step=0)]
    preds = {
        "a.json": {
            "predicted_agent": "Orchestrator (-> WebSurfer)",
            "predicted_step": "step-3",
        },  # agent right, step off by 1
        "b.json": {"predicted_agent": "WebSurfer", "predicted_step": "4"},  # both right
        "c.json": {"predicted_agent": "WebSurfer", "predicted_step": 9},  # the label says Websurfer: an exact miss
    }
    s = ww.score(golds, preds)["overall"]
    assert s["agent_accuracy"] == pytest.approx(2 / 3)
    assert s["step_accuracy"] == pytest.approx(1 / 3)
    assert s["step_within_1_accuracy"] == pytest.approx(2 / 3) and s["step_within_3_accuracy"] == pytest.approx(2 / 3)
    assert s["step_within_5_accuracy"] == pytest.approx(2 / 3)  # c is 9 steps off
    assert s["step_distance_mean"] == pytest.approx((1 + 0 + 9) / 3)


def test_minus_one_is_no_step_not_step_one():
    assert ww.predicted_step("-1") is None and ww.predicted_step("step-12") == 12 and ww.predicted_step(7) == 7


def test_a_missing_prediction_scores_zero_but_counts():
    s = ww.score([gold()], {})["overall"]
    assert (s["files"], s["predicted"], s["agent_accuracy"], s["step_accuracy"]) == (1, 0, 0.0, 0.0)


def test_who_and_when_random_baseline_equals_brute_force_for_every_metric():
    g = gold(
        agent="WebSurfer",
        step=1,
        speakers=("human", "Orchestrator (thought)", "Orchestrator (-> WebSurfer)", "WebSurfer"),
        steps=12,
    )
    base = ww.random_baseline(g)
    guesses = list(itertools.product(ww.guess_agents(g), range(g.steps)))
    rows = [ww.score_one(g, {"predicted_agent": a, "predicted_step": st}) for a, st in guesses]
    for key in ("agent", "step", "step_within_1", "step_within_3", "step_within_5", "step_distance"):
        assert base[key] == pytest.approx(sum(r[key] for r in rows) / len(rows)), key
    official = [
        off.who_and_when_scores(
            [(g.name, g.agent_text, g.step_text)], {g.name: {"predicted_agent": a, "predicted_step": st}}, 1
        )
        for a, st in guesses
    ]
    assert base["official_agent"] == pytest.approx(sum(o["official_agent_accuracy"] for o in official) / len(official))
    # "1" is contained in 1, 10 and 11: three of twelve steps
    assert (
        base["official_step"]
        == pytest.approx(sum(o["official_step_accuracy"] for o in official) / len(official))
        == pytest.approx(3 / 12)
    )


def test_the_uniform_guess_draws_from_the_agents_the_strict_metric_compares():
    g = gold(
        agent="WebSurfer",
        step=1,
        speakers=("human", "Orchestrator (thought)", "Orchestrator (-> WebSurfer)", "WebSurfer"),
        steps=12,
    )
    assert ww.guess_agents(g) == ("human", "Orchestrator", "WebSurfer")  # one Orchestrator, not two
    assert ww.random_baseline(g)["agent"] == pytest.approx(1 / 3)
    assert ww.random_baseline(gold(agent="Orchestrator (thought)", speakers=g.speakers))["agent"] == pytest.approx(
        1 / 3
    )


# --- Who&When: the official script, quirk by quirk ------------------------------------------
def official(golds, preds, files=None):
    return off.who_and_when_scores([(g.name, g.agent_text, g.step_text) for g in golds], preds, files or len(golds))


def test_official_reads_the_agent_up_to_the_first_non_word_character():
    g = gold(agent="Blu-Ray_Expert", step=3)
    # the gold itself reads as "Blu", and "Blu-Ray_Expert" is not in "Blu": gold scores 0 on the agent
    assert (
        official([g], {g.name: {"predicted_agent": "Blu-Ray_Expert", "predicted_step": "3"}})["official_agent_accuracy"]
        == 0.0
    )


def test_official_agent_match_is_a_case_sensitive_substring():
    g = gold(agent="Websurfer")
    assert (
        official([g], {g.name: {"predicted_agent": "WebSurfer", "predicted_step": "2"}})["official_agent_accuracy"]
        == 0.0
    )
    g2 = gold(agent="Orchestrator")
    assert (
        official([g2], {g2.name: {"predicted_agent": "Orchestrator_Agent", "predicted_step": "2"}})[
            "official_agent_accuracy"
        ]
        == 1.0
    )


def test_official_step_match_is_string_containment():
    g = gold(step=4)
    assert (
        official([g], {g.name: {"predicted_agent": "Orchestrator", "predicted_step": "14"}})["official_step_accuracy"]
        == 1.0
    )  # "4" in "14"


def test_official_drops_a_prediction_whose_step_is_not_digits_agent_included():
    g = gold(step=2)
    s = official([g], {g.name: {"predicted_agent": "Orchestrator", "predicted_step": "step-2"}})
    assert (s["official_agent_accuracy"], s["official_step_accuracy"]) == (0.0, 0.0)


def test_official_denominator_is_every_file_in_the_folder():
    golds = [gold("a.json"), gold("b.json")]
    # one right prediction of two logs, in a folder of four JSON files (two did not parse): 1/4
    assert (
        official(golds, {"a.json": {"predicted_agent": "Orchestrator", "predicted_step": 2}}, files=4)[
            "official_agent_accuracy"
        ]
        == 0.25
    )


def test_official_figures_appear_once_per_subset_and_use_its_folder(tmp_path):
    for subset in ("alg", "hand"):
        (tmp_path / subset).mkdir()
        (tmp_path / subset / "1.json").write_text(
            json.dumps({"history": [{"role": "a", "content": "x"}] * 3, "mistake_agent": "a", "mistake_step": "1"})
        )
    (tmp_path / "hand" / "broken.json").write_text("{not json")
    skipped: list = []
    golds = ww.load_dataset(tmp_path, skipped)
    assert [s["file"].endswith("broken.json") for s in skipped] == [True]
    preds = {
        "alg/1.json": {"predicted_agent": "a", "predicted_step": "1"},
        "hand/1.json": {"predicted_agent": "b", "predicted_step": "0"},
    }
    scores = ww.score(golds, preds, ww.folder_sizes(golds))
    assert scores["subsets"]["alg"]["official_agent_accuracy"] == 1.0
    assert (
        scores["subsets"]["hand"]["official_files"] == 2 and scores["subsets"]["hand"]["official_agent_accuracy"] == 0.0
    )
    assert not any(k.startswith("official_") for k in scores["overall"])


def test_gold_as_prediction_scores_the_strict_maximum():
    golds = [gold("a.json"), gold("b.json", agent="WebSurfer", step=4)]
    s = ww.score(golds, {g.name: {"predicted_agent": g.agent, "predicted_step": str(g.step)} for g in golds})["overall"]
    assert all(
        s[k] == 1.0 for k in ("agent_accuracy", "step_accuracy", "step_within_1_accuracy", "step_within_5_accuracy")
    )


def test_a_diagnosis_becomes_a_who_and_when_prediction():
    pred = who_and_when_prediction(
        {"responsible_agent": "WebSurfer", "decisive_step": {"run_id": "step-12", "reason": "…"}}
    )
    assert pred == {"predicted_agent": "WebSurfer", "predicted_step": "12"}


# --- TRAIL ----------------------------------------------------------------------------------
def tg(trace_id, *errors, subset="gaia"):
    raw = tuple({"location": loc, "category": cat} for loc, cat in errors)
    return tr.TraceGold(trace_id, subset, tuple((loc, tr.category_key(cat)) for loc, cat in errors), raw)


CASE_GOLDS = [
    tg("t1", ("s1", "Formatting Errors"), ("s2", "Tool-related")),
    tg("t2", ("s9", "Instruction non complience")),
    tg("t3"),  # no gold errors: counts 0 in the accuracies
]
CASE_PREDS = {
    "t1": {
        "errors": [{"location": "s1", "category": "formatting errors"}, {"location": "s3", "category": "Tool-related"}]
    },
    "t2": {"errors": [{"location": "s9", "category": "Instruction Non-compliance"}]},
    "t3": {"errors": [{"location": "s5", "category": "Goal Deviation"}]},
}


def test_trail_official_figures_worked_by_hand():
    s = tr.score(CASE_GOLDS, CASE_PREDS)["subsets"]["gaia"]
    # location: t1 {s1,s2}∩{s1,s3} = 1/2, t2 1/1, t3 no gold → 0; mean (0.5 + 1 + 0) / 3 = 0.5
    assert s["official_location_accuracy"] == pytest.approx(0.5)
    # joint: the gold's misspelt "instruction non complience" is no canonical label (nor inside one): t2 0;
    # t1 (s1, Formatting Errors) of 2; t3 0 → (0.5 + 0 + 0) / 3
    assert s["official_joint_accuracy"] == pytest.approx(1 / 6)
    # F1 over canonical sets: gold t1 {Formatting, Tool-related}, t2 {} (raw label dropped), t3 {};
    # pred t1 {Formatting, Tool-related}, t2 {Instruction}, t3 {Goal}: both supported labels F1 1 → 1.0
    assert s["official_category_f1"] == pytest.approx(1.0)


def test_trail_strict_figures_worked_by_hand():
    s = tr.score(CASE_GOLDS, CASE_PREDS)["overall"]
    assert s["location_accuracy"] == pytest.approx(0.5) and s["joint_accuracy"] == pytest.approx(1 / 6)
    assert s["location_precision"] == pytest.approx(0.5)  # t1 1/2, t2 1/1, t3 0/1
    assert s["per_category"]["Formatting Errors"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert (
        s["per_category"]["Goal Deviation"]["precision"] == 0.0 and s["per_category"]["Goal Deviation"]["support"] == 0
    )


@pytest.mark.parametrize(
    ("predicted", "label"),
    [
        ("Resource", "Resource Not Found"),
        ("Tool", "Tool-related"),
        ("  TOOL selection ERRORS ", "Tool Selection Errors"),
        ("Task Orchestration Errors", "task orchestration errors"),
        ("Goal Deviations", "goal deviations"),
        ("language only", "language only"),
    ],
)
def test_official_category_matching_is_canonical_else_first_label_containing_it_else_raw(predicted, label):
    assert off.trail_label(predicted) == label


def test_strict_categories_are_canonical_names_only():
    assert (
        tr.category_key("tool selection errors") == "Tool Selection Errors"
        and tr.category_key("Language only") == "Language-only"
    )
    assert tr.category_key("Resource").startswith("unmatched:") and tr.category_key("Goal Deviations").startswith(
        "unmatched:"
    )


def test_official_skips_a_trace_without_a_prediction_file():
    golds = [tg("t1", ("s1", "Goal Deviation")), tg("t2", ("s2", "Goal Deviation"))]
    s = tr.score(golds, {"t1": {"errors": [{"location": "s1", "category": "Goal Deviation"}]}})["subsets"]["gaia"]
    assert s["official_location_accuracy"] == 1.0 and s["official_traces_scored"] == 1  # t2 left the denominator
    assert s["location_accuracy"] == 0.5 and s["missing_predictions"] == 1  # strict: counted wrong


def test_official_drops_blank_categories_then_pairs_by_index():
    gold = [tg("t1", ("s1", "Goal Deviation"), ("s2", "Tool-related"))]
    # the blank at s1 is dropped, so "Tool-related" pairs with s1 (index 0): (s1, Tool-related) — not gold
    pred = {"t1": {"errors": [{"location": "s1", "category": ""}, {"location": "s2", "category": "Tool-related"}]}}
    s = tr.score(gold, pred)["subsets"]["gaia"]
    assert s["official_joint_accuracy"] == 0.0 and s["official_location_accuracy"] == 1.0
    assert tr.score(gold, pred)["overall"]["joint_accuracy"] == 0.5  # strict: (s2, Tool-related) is right


def test_weighted_f1_weights_each_category_by_its_gold_support():
    gold_sets = [{"a"}, {"a"}, {"b"}]
    pred_sets = [{"a"}, set(), {"a"}]
    # a: tp 1, fn 1, fp 1 → F1 0.5, support 2; b: tp 0 → F1 0, support 1 → (2*0.5 + 1*0) / 3
    assert off.weighted_f1(gold_sets, pred_sets, ["a", "b", "c"]) == pytest.approx(1 / 3)


def test_predicting_every_span_scores_full_recall_but_low_precision():
    golds = [tg("t1", ("s1", "Goal Deviation"))]
    everything = {"t1": {"errors": [{"location": f"s{i}", "category": "Goal Deviation"} for i in range(10)]}}
    s = tr.score(golds, everything)["overall"]
    assert s["location_accuracy"] == 1.0 and s["location_precision"] == pytest.approx(0.1)


def test_a_malformed_annotation_is_skipped_with_a_warning_and_counted(tmp_path, caplog):
    (tmp_path / "x.json").write_text(
        '{"errors": [{"category": "Goal Deviation", "location": "s1"},]}'
    )  # a trailing comma, as in the release
    (tmp_path / "y.json").write_text('{"errors": [{"category": "Goal Deviation", "location": "s1"}]}')
    skipped: list = []
    golds = tr.load_annotations(tmp_path, skipped)
    assert [g.trace_id for g in golds] == ["y"] and len(skipped) == 1 and "x.json" in skipped[0]["file"]
    assert "skipped" in caplog.text and "x.json" in caplog.text


def test_a_diagnosis_becomes_a_trail_prediction_in_trails_spelling():
    pred = trail_prediction(
        {"errors": [{"run_id": "abc", "category": "tool_selection_error"}, {"run_id": "def", "category": "other"}]}
    )
    assert pred == {
        "errors": [{"category": "Tool Selection Errors", "location": "abc"}, {"category": "Other", "location": "def"}]
    }


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
    args = (
        ["trail", str(EVAL / "trail" / "traces"), str(EVAL / "trail" / "annotations")]
        if benchmark == "trail"
        else ["who-and-when", str(EVAL / "who-and-when" / "hand-crafted")]
    )
    assert (
        await amain(["eval", *args, "--score", str(tmp_path / "pred"), "--out", str(tmp_path / "out"), "--json"]) == 0
    )
    overall = json.loads(capsys.readouterr().out)["scores"]["overall"]
    keys = (
        ("category_f1_weighted", "location_accuracy", "joint_accuracy", "location_precision")
        if benchmark == "trail"
        else ("agent_accuracy", "step_accuracy")
    )
    assert all(overall[k] == pytest.approx(1.0) for k in keys), overall
    assert (tmp_path / "out" / "eval.json").is_file() and (tmp_path / "out" / "eval.md").is_file()


@needs_eval_data
async def test_eval_who_and_when_runs_against_the_local_server_and_says_it_is_the_stand_in(
    openai_env, tmp_path, capsys
):
    out = tmp_path / "ww"
    assert (
        await amain(
            ["eval", "who-and-when", str(EVAL / "who-and-when" / "hand-crafted"), "--limit", "2", "--out", str(out)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "**These figures are the stand-in model's**" in printed and "| step accuracy (exact) |" in printed
    result = json.loads((out / "eval.json").read_text())
    assert result["stand_in"] is True and result["analysed"] == 2 and result["scores"]["overall"]["predicted"] == 2
    # predictions are written per subset: the two subsets share file names
    written = sorted(p.name for p in (out / "predictions" / "hand-crafted").iterdir())
    assert written == sorted(p.name for p in sorted((EVAL / "who-and-when" / "hand-crafted").glob("*.json"))[:2])


@needs_eval_data
async def test_eval_trail_runs_against_the_local_server(openai_env, tmp_path):
    out = tmp_path / "trail"
    assert (
        await amain(
            [
                "eval",
                "trail",
                str(EVAL / "trail" / "traces"),
                str(EVAL / "trail" / "annotations"),
                "--limit",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "eval.json").read_text())
    assert result["benchmark"] == "trail" and result["analysed"] == 1
    [pred] = list((out / "predictions").iterdir())
    assert json.loads(pred.read_text())["errors"]


@needs_eval_data
def test_on_the_dev_split_gold_scores_the_official_maximum_but_for_the_official_quirks():
    skipped: list = []
    golds = ww.load_dataset(EVAL / "who-and-when", skipped)
    preds = {g.key: {"predicted_agent": g.agent_text, "predicted_step": g.step_text} for g in golds}
    scores = ww.score(golds, preds, ww.folder_sizes(golds))
    for subset, s in scores["subsets"].items():
        chosen = [g for g in golds if g.subset == subset]
        # the script reads the agent up to the first non-word character: only plain names score
        plain = sum(bool(re.fullmatch(r"\w+", g.agent_text)) for g in chosen)
        assert s["official_agent_accuracy"] == pytest.approx(plain / s["official_files"]), subset
        assert s["official_step_accuracy"] == 1.0 and s["agent_accuracy"] == 1.0
    trail = tr.load_annotations(EVAL / "trail" / "annotations")
    half = {g.trace_id: tr.gold_as_prediction(g) for i, g in enumerate(trail) if i % 2 == 0}
    result = tr.score(trail, half)
    for split, s in result["subsets"].items():
        assert (
            s["official_location_accuracy"] == 1.0
            and s["official_joint_accuracy"] == 1.0
            and s["official_category_f1"] == 1.0
        )
        assert (
            s["official_traces_scored"] == s["traces"] - s["missing_predictions"]
        )  # the half without a prediction left the denominator
    assert result["overall"]["location_accuracy"] == pytest.approx(len(half) / len(trail))


def test_trail_uniform_guess_equals_brute_force_for_every_metric():
    golds = [tg("t1", ("s1", "Goal Deviation"), ("s2", "Tool-related")), tg("t2", ("s3", "Goal Deviation"))]
    spans = {"t1": 3, "t2": 2}
    choices = {
        t: [(f"s{i}" if t == "t1" else f"s{i + 2}", c) for i in range(1, n + 1) for c in off.TRAIL_CATEGORIES]
        for t, n in spans.items()
    }
    runs = [
        tr.score(
            golds,
            {
                "t1": {"errors": [{"location": a[0], "category": a[1]}]},
                "t2": {"errors": [{"location": b[0], "category": b[1]}]},
            },
        )
        for a, b in itertools.product(choices["t1"], choices["t2"])
    ]
    base = tr.score(golds, {}, spans)["overall"]["random_baseline"]
    for key in ("location_accuracy", "joint_accuracy", "location_precision"):
        assert base[key] == pytest.approx(sum(r["overall"][key] for r in runs) / len(runs)), key
    assert base["category_f1"] == pytest.approx(sum(r["overall"]["category_f1_weighted"] for r in runs) / len(runs))
    official = tr.score(golds, {g.trace_id: {} for g in golds}, spans)["subsets"]["gaia"]["official_random_baseline"]
    assert official["category_f1"] == pytest.approx(
        sum(r["subsets"]["gaia"]["official_category_f1"] for r in runs) / len(runs)
    )


def test_trail_uniform_guess_without_the_traces_gives_only_the_category_f1():
    base = tr.score([tg("t1", ("s1", "Goal Deviation"))], {})["overall"]["random_baseline"]
    assert base["location_accuracy"] is None and base["category_f1"] == pytest.approx(1 / 21)


@needs_eval_data
async def test_eval_trail_scores_from_annotations_and_predictions_alone(tmp_path, capsys):
    write_gold_predictions(tmp_path / "pred", "trail")
    assert (
        await amain(
            [
                "eval",
                "trail",
                str(EVAL / "trail" / "annotations"),
                "--score",
                str(tmp_path / "pred"),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    md = (tmp_path / "out" / "eval.md").read_text()
    assert "| official location accuracy (recall) | 1.000 | — | 0.546 |" in md
    result = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert {k for s in result["scores"]["subsets"].values() for k in s if k.startswith("official_")} >= {
        "official_category_f1",
        "official_location_accuracy",
        "official_joint_accuracy",
    }
    capsys.readouterr()
    assert (
        await amain(["eval", "trail", str(EVAL / "trail" / "annotations")]) == 2
    )  # without --score, the traces are needed


def test_an_empty_prediction_is_scored_not_skipped():
    s = tr.score([tg("t1", ("s1", "Goal Deviation"))], {"t1": {"errors": []}})["subsets"]["gaia"]
    assert (s["official_traces_scored"], s["official_location_accuracy"], s["official_category_f1"]) == (1, 0.0, 0.0)
