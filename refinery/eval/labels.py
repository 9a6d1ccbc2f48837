"""Your own labels (or a dataset's): several failures per trace, one of them the root cause. Pure.

Why a third shape: Who&When labels one step and TRAIL a set of spans, but many datasets — and a
team's own triage — label every failure of a run and mark the *critical* one. Per trace:

    {"failures": [{"step": 3, "agent": "Planner", "category": "Goal Deviation"}, …],
     "root_cause": 0}

`root_cause` is the index of the critical failure in `failures`. A label file may name its trace
(`"trace": "langsmith:<id>"`, any id `refinery.traces.sources` fetches, or a path from the label file's
folder); otherwise it labels `TRACES/<its stem>.json`. Steps count the trace's runs in
order (a step log's entries; otherwise the runs as refinery loads them), from `step_base` (0 or
1, declared, never guessed). Predictions use the same shape and base, `root_cause` may also be the
failure itself (`{"step", "agent"}`).

Scored: the root cause's step (exact, within ±1/±3/±5, mean distance) and agent (exact, after a
trailing `(role)` is removed from both, as for Who&When); and the failure set's recall (share of
labelled failure steps predicted) and precision (share of predicted steps labelled). A missing
prediction scores 0 and counts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refinery.errors import InputFileError
from refinery.eval.who_and_when import STEP_TOLERANCES, agent_name, json_files, predicted_step

log = logging.getLogger("refinery.eval")


@dataclass(frozen=True)
class Failure:
    step: int  # 0-based, whatever base the file declared
    agent: str = ""
    category: str = ""


@dataclass(frozen=True)
class Labels:
    name: str  # the label file's stem: the trace it labels, and the prediction's file name
    failures: tuple[Failure, ...]
    root: int | None  # index into failures (a prediction may name none)
    trace: str | None = None  # the trace it labels, when the file names one: a path or an id (`langsmith:…`)


def _failure(item: Any, base: int, where: str) -> Failure:
    if not isinstance(item, Mapping):
        raise InputFileError(f"{where}: expected an object {{step, agent, category}}")
    step = predicted_step(item.get("step"))
    if step is None or step < base:
        raise InputFileError(
            f"{where}.step: expected a step number from {base} (the declared base), got {item.get('step')!r}"
        )
    return Failure(step - base, str(item.get("agent") or ""), str(item.get("category") or ""))


def parse_labels(data: Any, name: str, base: int, where: str, *, need_root: bool = True) -> Labels:
    """Labels (or a prediction, which may name no root cause) from their JSON; a bad one gets an
    error naming the field."""
    if not isinstance(data, Mapping) or not isinstance(data.get("failures"), list):
        raise InputFileError(f"{where}: expected {{failures: [...], root_cause: N}}")
    failures = tuple(_failure(f, base, f"{where}: failures[{i}]") for i, f in enumerate(data["failures"]))
    trace = data.get("trace")
    if trace is not None and (not isinstance(trace, str) or not trace.strip()):
        raise InputFileError(f"{where}: trace: expected a trace file or a trace by id (langsmith:<id>), got {trace!r}")
    root = data.get("root_cause")
    if isinstance(root, Mapping):  # the failure itself
        failures = (*failures, _failure(root, base, f"{where}: root_cause"))
        return Labels(name, failures, len(failures) - 1, trace)
    if root is None and not need_root:
        return Labels(name, failures, None, trace)
    if not isinstance(root, int) or isinstance(root, bool) or not 0 <= root < len(failures):
        raise InputFileError(
            f"{where}: root_cause must be the index of one of the {len(failures)} failures, got {root!r}"
        )
    return Labels(name, failures, root, trace)


def load_labels(root: str | Path, base: int = 0, skipped: list[dict[str, str]] | None = None) -> list[Labels]:
    """Every label file under `root`; one that does not parse is skipped with a warning and listed."""
    if base not in (0, 1):
        raise InputFileError(f"--step-base must be 0 or 1, got {base}")
    out = []
    for path in json_files(root, "label files"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            out.append(parse_labels(data, path.stem, base, str(path)))
        except (OSError, ValueError, InputFileError) as exc:
            log.warning("skipped: %s: %s", path, exc)
            if skipped is not None:
                skipped.append({"file": str(path), "reason": str(exc)})
    return out


def score_one(gold: Labels, prediction: Labels | None) -> dict[str, Any]:
    g_root = gold.failures[gold.root or 0]
    p_root = prediction.failures[prediction.root] if prediction is not None and prediction.root is not None else None
    gold_steps = {f.step for f in gold.failures}
    pred_steps = {f.step for f in prediction.failures} if prediction else set()
    row: dict[str, Any] = {
        "name": gold.name,
        "gold_step": g_root.step,
        "gold_agent": g_root.agent,
        "predicted_step": p_root.step if p_root else None,
        "predicted_agent": p_root.agent if p_root else None,
        "root_step": p_root is not None and p_root.step == g_root.step,
        "root_agent": p_root is not None
        and bool(p_root.agent)
        and agent_name(p_root.agent) == agent_name(g_root.agent),
        "root_step_distance": abs(p_root.step - g_root.step) if p_root is not None else None,
        "failure_recall": len(gold_steps & pred_steps) / len(gold_steps) if gold_steps else 0.0,
        "failure_precision": len(gold_steps & pred_steps) / len(pred_steps) if pred_steps else 0.0,
    }
    for k in STEP_TOLERANCES:
        row[f"root_step_within_{k}"] = p_root is not None and abs(p_root.step - g_root.step) <= k
    return row


def score(golds: Sequence[Labels], predictions: Mapping[str, Labels | None]) -> dict[str, Any]:
    rows = [score_one(g, predictions.get(g.name)) for g in golds]
    n = len(rows) or 1
    keys = (
        "root_step",
        "root_agent",
        *(f"root_step_within_{k}" for k in STEP_TOLERANCES),
        "failure_recall",
        "failure_precision",
    )
    distances = [r["root_step_distance"] for r in rows if r["root_step_distance"] is not None]
    return {
        "traces": len(rows),
        "predicted": sum(predictions.get(g.name) is not None for g in golds),
        **{f"{k}_accuracy" if k.startswith("root") else k: sum(float(r[k]) for r in rows) / n for k in keys},
        "root_step_distance_mean": sum(distances) / len(distances) if distances else None,
        "rows": rows,
    }
