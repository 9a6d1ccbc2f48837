"""`refinery eval`: analyse a labelled benchmark through the batch runner, turn each diagnosis into
the benchmark's own prediction shape, score it, and write `eval.json` and `eval.md`.

Why predictions in the benchmark's shape: so the same scorer can score predictions made by any
other tool (`--score PRED_DIR`), and ours can be re-scored without paying again. Runs go through
`analyze_many` (one rate budget, one folder per item, resume), so an interrupted eval continues.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from refinery.batch import BatchItem, analyze_many
from refinery.core.artifacts import read_json, write_json_atomic, write_text_atomic
from refinery.core.taxonomy import ErrorCategory, trail_name
from refinery.errors import InputFileError
from refinery.eval import trail as trail_scoring
from refinery.eval import who_and_when as ww
from refinery.eval.report import render_eval_md
from refinery.integrations.responses_client import ResponsesClient

RUNS_DIR, PREDICTIONS_DIR = "runs", "predictions"


def _diagnosis(out: Path, name: str) -> dict[str, Any] | None:
    data = read_json(out / RUNS_DIR / name / "stage3_diagnosis.json")
    return data.get("output") if isinstance(data, dict) else None


def who_and_when_prediction(diagnosis: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`{predicted_agent, predicted_step}` from a diagnosis (its decisive step's `step-N` id)."""
    if not diagnosis:
        return None
    run_id = str((diagnosis.get("decisive_step") or {}).get("run_id") or "")
    m = re.fullmatch(r"step-(\d+)", run_id)
    return {"predicted_agent": diagnosis.get("responsible_agent"), "predicted_step": m.group(1) if m else None}


def trail_prediction(diagnosis: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`{errors: [{category, location}]}` with TRAIL's category names."""
    if not diagnosis:
        return None
    errors = []
    for e in diagnosis.get("errors") or []:
        try:
            category = trail_name(ErrorCategory(e.get("category")))
        except ValueError:
            category = str(e.get("category"))
        errors.append({"category": category, "location": e.get("run_id")})
    return {"errors": errors}


def read_predictions(folder: str | Path) -> dict[str, dict[str, Any]]:
    """`PRED_DIR/<name>.json` → {name: prediction} (name: a log's file name, or a trace id)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"{folder}: no such folder of predictions")
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        data = read_json(path)
        if not isinstance(data, dict):
            raise InputFileError(f"{path}: expected a JSON object")
        out[path.name] = out[path.stem] = data
    return out


async def _analyse(
    items: list[BatchItem], out: Path, model: str, client: ResponsesClient | None, concurrency: int, progress: Callable[[str], None] | None
) -> dict[str, Any]:
    summary = await analyze_many(items, out_dir=out / RUNS_DIR, model=model, client=client, concurrency=concurrency, progress=progress)
    answered = sorted({m for o in summary.outcomes.values() for m in o.answered_by})
    return {
        "model": model,
        "answered_by": answered,
        "stand_in": any("standin" in m for m in answered),
        "analysed": sum(o.status == "done" for o in summary.outcomes.values()),
        "failed": {o.name: o.error for o in summary.failed},
        "tokens": summary.total_tokens,
    }


def _finish(out: Path | None, result: dict[str, Any]) -> dict[str, Any]:
    if out is not None:
        write_json_atomic(out / "eval.json", result)
        write_text_atomic(out / "eval.md", render_eval_md(result))
    return result


async def eval_who_and_when(
    root: str | Path,
    *,
    out: str | Path | None,
    with_answer: bool = False,
    limit: int | None = None,
    model: str = "gpt-4o",
    client: ResponsesClient | None = None,
    concurrency: int = 4,
    predictions_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score predictions from `predictions_dir`, or make them by analysing each log."""
    golds = ww.load_dataset(root)[: limit or None]
    result: dict[str, Any] = {"benchmark": "who-and-when", "data": str(root), "setting": "with the task's answer" if with_answer else "task only"}
    if predictions_dir is not None:
        predictions = read_predictions(predictions_dir)
        result.update(predictions_from=str(predictions_dir), stand_in=False)
    else:
        if out is None:
            raise InputFileError("an eval that runs analyses needs --out DIR for its runs and predictions")
        out_dir = Path(out)
        items = []
        for g in golds:
            name = f"{g.subset}-{Path(g.name).stem}"
            expect = None  # task only: the expectation is derived from the log's own question
            if with_answer:  # the paper's "with ground truth": the task's answer is the expectation
                expect = str(write_json_atomic(out_dir / "expectations" / f"{name}.json", {
                    "description": f"The agents answer the question correctly. The question: {g.question}",
                    "expected_output": g.answer,
                }))
            items.append(BatchItem(name=name, trace=g.path, expect=expect))
        result.update(await _analyse(items, out_dir, model, client, concurrency, progress))
        predictions = {}
        for g, item in zip(golds, items):
            pred = who_and_when_prediction(_diagnosis(out_dir, item.name))
            if pred is not None:
                predictions[g.name] = pred
                write_json_atomic(out_dir / PREDICTIONS_DIR / g.name, pred)
    result["scores"] = ww.score(golds, predictions)
    result["paper_baselines"] = ww.PAPER_BASELINES
    return _finish(Path(out) if out else None, result)


async def eval_trail(
    traces: str | Path,
    annotations: str | Path,
    *,
    out: str | Path | None,
    limit: int | None = None,
    model: str = "gpt-4o",
    client: ResponsesClient | None = None,
    concurrency: int = 4,
    predictions_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    golds = trail_scoring.load_annotations(annotations)[: limit or None]
    result: dict[str, Any] = {"benchmark": "trail", "data": str(traces)}
    if predictions_dir is not None:
        predictions = read_predictions(predictions_dir)
        result.update(predictions_from=str(predictions_dir), stand_in=False)
    else:
        if out is None:
            raise InputFileError("an eval that runs analyses needs --out DIR for its runs and predictions")
        out_dir, root = Path(out), Path(traces)
        items = []
        for g in golds:
            found = [p for p in (root / g.subset / f"{g.trace_id}.json", root / f"{g.trace_id}.json") if p.is_file()]
            if not found:
                raise InputFileError(f"{root}: no trace {g.trace_id}.json for annotation {g.subset}/{g.trace_id}.json")
            items.append(BatchItem(name=f"{g.subset}-{g.trace_id}", trace=str(found[0]), expect=None))
        expect = out_dir / "expectation.json"  # TRAIL gives no task: the expectation is the agents' job itself
        write_json_atomic(expect, {"description": "The agents complete their task correctly, using their tools as instructed, without errors."})
        items = [i.model_copy(update={"expect": str(expect)}) for i in items]
        result.update(await _analyse(items, out_dir, model, client, concurrency, progress))
        predictions = {}
        for g, item in zip(golds, items):
            pred = trail_prediction(_diagnosis(out_dir, item.name))
            if pred is not None:
                predictions[g.trace_id] = pred
                write_json_atomic(out_dir / PREDICTIONS_DIR / f"{g.trace_id}.json", pred)
    result["scores"] = trail_scoring.score(golds, predictions)
    result["paper_baselines"] = trail_scoring.PAPER_BASELINES
    return _finish(Path(out) if out else None, result)
