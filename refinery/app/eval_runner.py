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
from typing import Any, TypedDict, Unpack

from refinery.app.batch import BatchItem, analyze_many
from refinery.core.artifacts import read_json, write_json_atomic, write_text_atomic
from refinery.core.offload import in_worker
from refinery.core.taxonomy import ErrorCategory, trail_name
from refinery.errors import InputFileError
from refinery.eval import labels as label_scoring
from refinery.eval import trail as trail_scoring
from refinery.eval import who_and_when as ww
from refinery.eval.report import render_eval_md
from refinery.traces import load_trace
from refinery.traces.sources import fetched_copy, is_source_ref
from refinery.wire.responses_client import ResponsesClient

RUNS_DIR, PREDICTIONS_DIR = "runs", "predictions"


class EvalOptions(TypedDict, total=False):
    """What the three benchmarks' evals take alike: where runs and predictions go (`out`), how many
    labelled items (`limit`), how each is analysed (model, client, store, search calls, concurrency,
    progress lines), or the folder of predictions to score instead of analysing (`predictions_dir`).
    One definition, so the options pass through the runner as one value and cannot drift apart."""

    out: str | Path | None
    limit: int | None
    model: str
    client: ResponsesClient | None
    store: str
    search_calls: int
    concurrency: int
    predictions_dir: str | Path | None
    progress: Callable[[str], None] | None


_DEFAULTS: EvalOptions = {
    "out": None,
    "limit": None,
    "model": "gpt-4o",
    "client": None,
    "store": "auto",
    "search_calls": 0,
    "concurrency": 4,
    "predictions_dir": None,
    "progress": None,
}


def _settled(options: EvalOptions) -> EvalOptions:
    """The options with every default filled in."""
    return {**_DEFAULTS, **options}


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
    """`PRED_DIR/<name>.json` → {name: prediction} (name: a log's file name, or a trace id), and
    `PRED_DIR/<subset>/<name>.json` → {"<subset>/<name>": …} (Who&When's subsets share 23 file
    names, so a flat folder cannot tell them apart)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"{folder}: no such folder of predictions")
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")) + sorted(folder.glob("*/*.json")):
        data = read_json(path)
        if not isinstance(data, dict):
            raise InputFileError(f"{path}: expected a JSON object")
        if path.parent == folder:
            out[path.name] = out[path.stem] = data
        else:
            out[f"{path.parent.name}/{path.name}"] = out[f"{path.parent.name}/{path.stem}"] = data
            out.setdefault(path.stem, data)  # TRAIL trace ids are unique across splits
    return out


async def _analyse(items: list[BatchItem], out: Path, options: EvalOptions) -> dict[str, Any]:
    store, search_calls = options["store"], options["search_calls"]
    summary = await analyze_many(
        items,
        out_dir=out / RUNS_DIR,
        model=options["model"],
        client=options["client"],
        concurrency=options["concurrency"],
        progress=options["progress"],
        **({"store": store} if store != "auto" else {}),
        **({"search_calls": search_calls} if search_calls else {}),
    )
    answered = sorted({m for o in summary.outcomes.values() for m in o.answered_by})
    return {
        "model": options["model"],
        "answered_by": answered,
        "stand_in": any("standin" in m for m in answered),
        "analysed": sum(o.status == "done" for o in summary.outcomes.values()),
        "failed": {o.name: f"{o.error_type or 'error'}: {o.error}" for o in summary.failed},
        "failed_exit_codes": {o.name: o.exit_code for o in summary.failed},
        "tokens": summary.total_tokens,
    }


def _finish(out: str | Path | None, result: dict[str, Any]) -> dict[str, Any]:
    if out is not None:
        write_json_atomic(Path(out) / "eval.json", result)
        write_text_atomic(Path(out) / "eval.md", render_eval_md(result))
    return result


async def _predictions(
    result: dict[str, Any],
    keyed: list[tuple[str, str, BatchItem]],
    convert: Callable[[Mapping[str, Any] | None, BatchItem], dict[str, Any] | None],
    options: EvalOptions,
) -> dict[str, dict[str, Any]]:
    """Predictions by key: read from `predictions_dir`, or made by analysing each item.

    `keyed` is (key the scorer looks up, prediction file name, the item to analyse)."""
    predictions_dir, out = options["predictions_dir"], options["out"]
    if predictions_dir is not None:
        result.update(predictions_from=str(predictions_dir), stand_in=False)
        return await in_worker(read_predictions, predictions_dir)
    if out is None:
        raise InputFileError("an eval that runs analyses needs --out DIR for its runs and predictions")
    out_dir = Path(out)
    result.update(await _analyse([item for _, _, item in keyed], out_dir, options))
    return await in_worker(_written_predictions, out_dir, keyed, convert)


def _written_predictions(
    out_dir: Path,
    keyed: list[tuple[str, str, BatchItem]],
    convert: Callable[[Mapping[str, Any] | None, BatchItem], dict[str, Any] | None],
) -> dict[str, dict[str, Any]]:
    """Each analysed item's diagnosis in the benchmark's shape, written to `PRED_DIR/<file name>`."""
    predictions = {}
    for key, file_name, item in keyed:
        pred = convert(_diagnosis(out_dir, item.name), item)
        if pred is not None:
            predictions[key] = pred
            write_json_atomic(out_dir / PREDICTIONS_DIR / file_name, pred)
    return predictions


async def eval_who_and_when(
    root: str | Path,
    *,
    with_answer: bool = False,
    **given: Unpack[EvalOptions],
) -> dict[str, Any]:
    """Score predictions from `predictions_dir`, or make them by analysing each log."""
    options = _settled(given)
    result, golds, keyed = await in_worker(_who_and_when_items, root, with_answer, options)
    predictions = await _predictions(result, keyed, lambda d, _: who_and_when_prediction(d), options)
    result["scores"] = ww.score(golds, predictions, None if options["limit"] else ww.folder_sizes(golds))
    result["paper_baselines"] = ww.PAPER_BASELINES
    return await in_worker(_finish, options["out"], result)


def _who_and_when_items(
    root: str | Path, with_answer: bool, options: EvalOptions
) -> tuple[dict[str, Any], list[ww.Gold], list[tuple[str, str, BatchItem]]]:
    """The logs' labels read, the result's head, and each log as a batch item (with its expectation
    written when the task's answer is given)."""
    out = options["out"]
    skipped: list[dict[str, str]] = []
    every = ww.load_dataset(root, skipped)
    golds = every[: options["limit"] or None]
    result: dict[str, Any] = {
        "benchmark": "who-and-when",
        "data": str(root),
        "setting": "with the task's answer" if with_answer else "task only",
        "skipped_labels": skipped,
        "folder_files": ww.folder_sizes(every),  # each subset folder's JSON files, `--limit` or not ("10 of 39")
    }
    keyed = []
    for g in golds:
        name = f"{g.subset}-{Path(g.name).stem}"
        expect = None  # task only: the expectation is derived from the log's own question
        if with_answer and options["predictions_dir"] is None and out is not None:  # the paper's "with ground truth"
            expect = str(
                write_json_atomic(
                    Path(out) / "expectations" / f"{name}.json",
                    {
                        "description": f"The agents answer the question correctly. The question: {g.question}",
                        "expected_output": g.answer,
                    },
                )
            )
        keyed.append((g.key, g.key, BatchItem(name=name, trace=g.path, expect=expect)))
    return result, golds, keyed


async def eval_trail(
    traces: str | Path | None,
    annotations: str | Path,
    **given: Unpack[EvalOptions],
) -> dict[str, Any]:
    """Score predictions from `predictions_dir`, or make them by analysing each annotated trace
    found under `traces` (`<subset>/<trace_id>.json` or `<trace_id>.json`). Annotations with no
    trace, and traces with no annotation, are listed in the result, not fatal: the traces at hand
    are scored; only when none is, it is an error."""
    options = _settled(given)
    result, golds, keyed, spans = await in_worker(_trail_items, traces, annotations, options)
    predictions = await _predictions(result, keyed, lambda d, _: trail_prediction(d), options)
    result["scores"] = trail_scoring.score(golds, predictions, spans)
    result["paper_baselines"] = trail_scoring.PAPER_BASELINES
    return await in_worker(_finish, options["out"], result)


def _trail_items(
    traces: str | Path | None, annotations: str | Path, options: EvalOptions
) -> tuple[dict[str, Any], list[trail_scoring.TraceGold], list[tuple[str, str, BatchItem]], dict[str, int]]:
    """The annotations read and matched to trace files, the result's head, each trace as a batch item
    (with the one expectation TRAIL implies written), and each trace's span count."""
    out, predictions_dir = options["out"], options["predictions_dir"]
    skipped: list[dict[str, str]] = []
    every = trail_scoring.load_annotations(annotations, skipped)
    result: dict[str, Any] = {"benchmark": "trail", "data": str(traces or annotations), "skipped_labels": skipped}
    root = Path(traces or annotations)
    expect = None
    if predictions_dir is None and out is not None:  # TRAIL gives no task: the expectation is the agents' job itself
        expect = str(
            write_json_atomic(
                Path(out) / "expectation.json",
                {
                    "description": "The agents complete their task correctly, using their tools as instructed, "
                    "without errors."
                },
            )
        )
    found = {g.trace_id: _trail_trace(root if traces else None, g) for g in every}
    golds = every if predictions_dir is not None else [g for g in every if found[g.trace_id]]
    golds = golds[: options["limit"] or None]
    if predictions_dir is None:
        result["annotations_without_trace"] = [f"{g.subset}/{g.trace_id}" for g in every if not found[g.trace_id]]
        if not golds:
            raise InputFileError(
                f"{root}: no trace for any of the {len(every)} annotations (expected <subset>/<trace_id>.json or "
                "<trace_id>.json)"
            )
    if traces:
        result["traces_without_annotation"] = _unannotated(root, {g.trace_id for g in every})
    spans: dict[str, int] = {}  # for the uniform guess's location figures
    keyed = []
    for g in golds:
        path = found[g.trace_id]
        if path is not None:
            spans[g.trace_id] = len(load_trace(path).runs)
        item = BatchItem(name=f"{g.subset}-{g.trace_id}", trace=str(path or ""), expect=expect)
        keyed.append((g.trace_id, f"{g.trace_id}.json", item))
    return result, golds, keyed, spans


def _trail_trace(root: Path | None, gold: trail_scoring.TraceGold) -> Path | None:
    if root is None:
        return None
    return next(
        (p for p in (root / gold.subset / f"{gold.trace_id}.json", root / f"{gold.trace_id}.json") if p.is_file()), None
    )


def _unannotated(root: Path, annotated: set[str]) -> list[str]:
    """The trace files under `root` (and its subset folders) that no annotation names."""
    files = sorted(root.glob("*.json")) + sorted(root.glob("*/*.json"))
    return [p.relative_to(root).as_posix() for p in files if p.stem not in annotated]


def labels_prediction(diagnosis: Mapping[str, Any] | None, run_ids: list[str], base: int) -> dict[str, Any] | None:
    """A diagnosis in the labels' own shape: the decisive step as the root cause, the faulty runs as
    the failures, each run id turned into its step (its place in the trace's runs, from `base`)."""
    if not diagnosis:
        return None
    position = {rid: i for i, rid in enumerate(run_ids)}
    failures = [
        {"step": position[e["run_id"]] + base, "agent": "", "category": str(e.get("category") or "")}
        for e in diagnosis.get("errors") or []
        if e.get("run_id") in position
    ]
    decisive = str((diagnosis.get("decisive_step") or {}).get("run_id") or "")
    if decisive not in position:
        return {"failures": failures, "root_cause": None} if failures else None
    return {
        "failures": failures,
        "root_cause": {"step": position[decisive] + base, "agent": str(diagnosis.get("responsible_agent") or "")},
    }


async def _labelled_trace(
    g: label_scoring.Labels,
    traces: str | Path | None,
    labels_dir: str | Path,
    out: str | Path | None,
    *,
    analysing: bool,
) -> tuple[str, Path] | None:
    """(what the batch is given, the file to read run ids from) for a label file's trace: the one it
    names — fetched by id into its run folder, where the batch finds it again — else
    `TRACES/<name>.json`. None when there is none and only predictions are scored."""
    ref = is_source_ref(g.trace) if g.trace else None
    if ref is not None:
        if not analysing or out is None:
            return None  # scoring: the predictions hold the steps already
        return str(ref), await fetched_copy(ref, Path(out) / RUNS_DIR / g.name)
    candidates = [Path(labels_dir) / g.trace] if g.trace else []  # a path: from the labels' folder
    if traces:
        candidates += [Path(traces) / f"{g.name}.json", Path(traces) / f"{g.name}.jsonl"]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None and analysing:
        where = f"{g.trace} (named in its label file)" if g.trace else f"{traces or 'TRACES'}/{g.name}.json (or .jsonl)"
        raise InputFileError(f"no trace {where} for the label file {g.name}.json")
    return (str(found), found) if found else None


async def eval_labels(
    traces: str | Path | None,
    labels_dir: str | Path,
    *,
    step_base: int = 0,
    **given: Unpack[EvalOptions],
) -> dict[str, Any]:
    """Score predictions (or make them by analysing each trace) against labels of several
    failures per trace with one root cause (`eval.labels`)."""
    options = _settled(given)
    out, analysing = options["out"], options["predictions_dir"] is None
    skipped: list[dict[str, str]] = []
    golds = (await in_worker(label_scoring.load_labels, labels_dir, step_base, skipped))[: options["limit"] or None]
    result: dict[str, Any] = {
        "benchmark": "labels",
        "data": str(traces or labels_dir),
        "step_base": step_base,
        "skipped_labels": skipped,
    }
    run_ids: dict[str, list[str]] = {}
    keyed = []
    for g in golds:
        trace = await _labelled_trace(g, traces, labels_dir, out, analysing=analysing)
        if trace is not None:
            run_ids[g.name] = await in_worker(_run_ids, trace[1])
        keyed.append((g.name, f"{g.name}.json", BatchItem(name=g.name, trace=trace[0] if trace else "")))

    def convert(diagnosis: Mapping[str, Any] | None, item: BatchItem) -> dict[str, Any] | None:
        return labels_prediction(diagnosis, run_ids.get(item.name, []), step_base)

    raw = await _predictions(result, keyed, convert, options)
    predictions: dict[str, label_scoring.Labels | None] = {}
    for g in golds:
        data = raw.get(g.name)
        try:
            predictions[g.name] = (
                label_scoring.parse_labels(data, g.name, step_base, f"prediction {g.name}", need_root=False)
                if data
                else None
            )
        except InputFileError as exc:
            skipped.append({"file": f"prediction {g.name}", "reason": str(exc)})
            predictions[g.name] = None
    result["scores"] = label_scoring.score(golds, predictions)
    return await in_worker(_finish, out, result)


def _run_ids(path: Path) -> list[str]:
    """The trace's run ids in order: a labelled step is a place in them."""
    return [r.id for r in load_trace(path).runs]
