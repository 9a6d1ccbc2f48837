"""`refinery eval labels`: your own labels — several failures a trace, one the root cause, steps
counted from a declared base — scored on the project's own fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refinery.app.cli import amain
from refinery.app.eval_runner import labels_prediction
from refinery.errors import InputFileError
from refinery.eval import labels as lb

FIX = Path(__file__).parent / "fixtures" / "labels"


def test_labels_and_a_prediction_worked_by_hand():
    [gold] = lb.load_labels(FIX / "labels", base=1)
    assert gold.failures[gold.root] == lb.Failure(2, "Lookup", "Formatting Errors")  # step 3 counted from 1
    pred = lb.parse_labels(
        {"failures": [{"step": 3}, {"step": 6}], "root_cause": {"step": 4, "agent": "Lookup (tool)"}}, "refund", 1, "p"
    )
    s = lb.score([gold], {"refund": pred})
    # root: gold step index 2, predicted 3 → off by one; agent "Lookup (tool)" is Lookup
    assert (
        s["root_step_accuracy"],
        s["root_step_within_1_accuracy"],
        s["root_step_distance_mean"],
        s["root_agent_accuracy"],
    ) == (0.0, 1.0, 1.0, 1.0)
    # failures: labelled steps {2, 4}; predicted {2, 5, 3} (the root is one of them) → recall 1/2, precision 1/3
    assert s["failure_recall"] == pytest.approx(1 / 2) and s["failure_precision"] == pytest.approx(1 / 3)


def test_a_missing_prediction_scores_zero_and_counts():
    gold = lb.load_labels(FIX / "labels", base=1)
    s = lb.score(gold, {})
    assert (s["traces"], s["predicted"], s["root_step_accuracy"], s["failure_recall"]) == (1, 0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"failures": [{"step": 1}], "root_cause": 3}, "root_cause must be the index of one of the 1 failures"),
        ({"failures": [{"step": 0}], "root_cause": 0}, r"failures\[0\]\.step: expected a step number from 1"),
        ({"root_cause": 0}, "expected {failures: \\[...\\], root_cause: N}"),
        ({"failures": [{"step": 1}], "root_cause": 0, "trace": 7}, "trace: expected a trace file or a trace by id"),
    ],
)
def test_bad_labels_name_the_field(data, message):
    with pytest.raises(InputFileError, match=message):
        lb.parse_labels(data, "x", 1, "x.json")


def test_a_diagnosis_becomes_a_prediction_in_the_labels_base():
    run_ids = [f"step-{i}" for i in range(6)]
    diagnosis = {
        "responsible_agent": "Lookup",
        "decisive_step": {"run_id": "step-2", "reason": "…"},
        "errors": [{"run_id": "step-2", "category": "formatting_error"}, {"run_id": "step-9", "category": "other"}],
    }
    assert labels_prediction(diagnosis, run_ids, 1) == {
        "failures": [{"step": 3, "agent": "", "category": "formatting_error"}],
        "root_cause": {"step": 3, "agent": "Lookup"},
    }


async def test_eval_labels_runs_end_to_end_against_the_local_server(openai_env, tmp_path):
    out = tmp_path / "out"
    assert (
        await amain(["eval", "labels", str(FIX / "traces"), str(FIX / "labels"), "--step-base", "1", "--out", str(out)])
        == 0
    )
    result = json.loads((out / "eval.json").read_text())
    assert result["benchmark"] == "labels" and result["step_base"] == 1 and result["analysed"] == 1
    pred = json.loads((out / "predictions" / "refund.json").read_text())
    assert all(1 <= f["step"] <= 6 for f in pred["failures"])  # written in the labels' own base
    assert "| root cause: step exact |" in (out / "eval.md").read_text()


async def test_eval_labels_scores_predictions_from_the_labels_alone(tmp_path):
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "refund.json").write_text(json.dumps({"failures": [{"step": 3}, {"step": 5}], "root_cause": 0}))
    assert (
        await amain(
            [
                "eval",
                "labels",
                str(FIX / "labels"),
                "--score",
                str(pred),
                "--step-base",
                "1",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    s = json.loads((tmp_path / "out" / "eval.json").read_text())["scores"]
    assert (s["root_step_accuracy"], s["failure_recall"], s["failure_precision"]) == (1.0, 1.0, 1.0)


async def test_a_label_file_may_name_its_trace_by_id_and_it_is_fetched_once(openai_env, tmp_path, monkeypatch):
    import aioresponses

    from tests.test_trace_sources import LS, LS_KEY, ls_run

    monkeypatch.setenv("LANGSMITH_API_KEY", LS_KEY)
    labels = tmp_path / "labels"
    labels.mkdir()
    gold = {"trace": "langsmith:run-2", "failures": [{"step": 1, "agent": "step 2"}], "root_cause": 0}
    (labels / "prod-incident.json").write_text(json.dumps(gold))
    out = tmp_path / "out"
    with aioresponses.aioresponses(passthrough=["http://127.0.0.1"]) as m:  # the local OpenAI server is real
        m.get(f"{LS}/api/v1/runs/run-2", payload=ls_run(2, "run-1"))
        root = ls_run(1, None, inputs={"question": "Refund order 42"})  # the task: the expectation without --expect
        page = {"runs": [root, ls_run(2, "run-1", error="KeyError: 'order_id'")], "cursors": {"next": None}}
        m.post(f"{LS}/api/v1/runs/query", payload=page)
        assert await amain(["eval", "labels", str(labels), "--out", str(out)]) == 0  # no TRACES folder
        asked = [str(u) for (_, u), calls in m.requests.items() for _ in calls if "smith" in str(u)]
    assert asked.count("https://api.smith.langchain.com/api/v1/runs/run-2") == 1  # the batch read the eval's copy
    kept = json.loads((out / "runs" / "prod-incident" / "trace.json").read_text())
    assert kept["refinery_source"] == "langsmith:run-2"
    result = json.loads((out / "eval.json").read_text())
    assert result["failed"] == {} and result["analysed"] == 1 and result["scores"]["traces"] == 1
    assert json.loads((out / "predictions" / "prod-incident.json").read_text())["failures"]
    assert LS_KEY not in "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())


async def test_a_label_file_may_name_its_trace_by_path_from_its_own_folder(openai_env, tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    gold = json.loads((FIX / "labels" / "refund.json").read_text())
    (labels / "renamed.json").write_text(json.dumps({**gold, "trace": "../traces/refund.json"}))
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "refund.json").write_text((FIX / "traces" / "refund.json").read_text())
    out = tmp_path / "out"
    assert await amain(["eval", "labels", str(labels), "--step-base", "1", "--out", str(out)]) == 0
    assert json.loads((out / "eval.json").read_text())["analysed"] == 1


async def test_a_label_without_a_trace_says_where_it_looked(openai_env, tmp_path, capsys):
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "lost.json").write_text(json.dumps({"failures": [{"step": 0}], "root_cause": 0, "trace": "gone.json"}))
    assert await amain(["eval", "labels", str(labels), "--out", str(tmp_path / "out")]) == 2
    assert "no trace gone.json (named in its label file) for the label file lost.json" in capsys.readouterr().err
