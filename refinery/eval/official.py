"""The benchmarks' own scoring, reproduced to the letter — quirks included. Pure.

Why quirks and all: published TRAIL and Who&When figures were computed by these rules, so a
figure set beside them must be computed by them too. refinery's own, stricter metrics stand
beside these in `eval.trail` and `eval.who_and_when`; docs/eval.md lists every quirk below and
what it does to a score.

TRAIL (`benchmarking/calculate_scores.py`), per split:
- a predicted category is lower-cased and stripped; it becomes a canonical label when it equals
  one ignoring spaces, else the first label in the official list order that contains it (spaces
  removed) — "resource" → Resource Not Found, "tool" → Tool-related; anything else stays raw and
  drops out of the F1;
- errors with an empty category are dropped from the category list, which is then paired with
  the *unfiltered* location list by index: one blank category shifts every later pair;
- a trace without a prediction file is skipped (it leaves every denominator); an annotation that
  does not parse is skipped with a message;
- category F1: multi-hot sets over the 21 labels, per-label F1 weighted by gold support
  (scikit-learn's `average="weighted"`, zero division 0);
- location and joint accuracy: per trace |gold ∩ predicted| / |gold| (0 when there is no gold),
  averaged over the scored traces. Both count recall only.

Who&When (`evaluate.py`), per data folder:
- the prediction is read as text: the agent with `Agent Name:\\s*([\\w_]+)` (so `Blu-Ray_Expert`
  reads as `Blu`), the step with `Step Number:\\s*(\\d+)`; when either does not match, the
  whole prediction is dropped, agent included;
- agent correct when the gold agent is a substring of the predicted one, case-sensitively; step
  correct when the gold step's text is a substring of the predicted step's (`"4" in "14"`);
- the denominator is every JSON file in the folder, predicted or not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

TRAIL_CATEGORIES: tuple[str, ...] = (
    "Language-only",
    "Tool-related",
    "Poor Information Retrieval",
    "Incorrect Memory Usage",
    "Tool Output Misinterpretation",
    "Incorrect Problem Identification",
    "Tool Selection Errors",
    "Formatting Errors",
    "Instruction Non-compliance",
    "Tool Definition Issues",
    "Environment Setup Errors",
    "Rate Limiting",
    "Authentication Errors",
    "Service Errors",
    "Resource Not Found",
    "Resource Exhaustion",
    "Timeout Issues",
    "Context Handling Failures",
    "Resource Abuse",
    "Goal Deviation",
    "Task Orchestration",
)


def trail_label(category: str) -> str:
    """A category as TRAIL's script reads it: canonical, else raw (lower-cased, stripped)."""
    if not category:
        return ""
    name = category.lower().strip()
    bare = name.replace(" ", "")
    for label in TRAIL_CATEGORIES:
        if name == label.lower() or bare == label.lower().replace(" ", ""):
            return label
    for label in TRAIL_CATEGORIES:
        if bare in label.lower().replace(" ", ""):
            return label
    return name


def trail_trace(errors: Iterable[Mapping[str, Any]]) -> tuple[set[str], set[tuple[str, str]], set[str]]:
    """(locations, (location, category) pairs, canonical categories) of one annotation or
    prediction, as the script builds them (blank categories dropped, then paired by index)."""
    items = [e for e in errors if isinstance(e, Mapping)]
    locations = [str(e.get("location", "")) for e in items]
    categories = [trail_label(str(e.get("category") or "")) for e in items if e.get("category")]
    return set(locations), set(zip(locations, categories)), {c for c in categories if c in TRAIL_CATEGORIES}


def label_counts(gold_sets: Sequence[set[str]], pred_sets: Sequence[set[str]], label: str) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of one label over multi-hot sets."""
    tp = sum(label in g and label in p for g, p in zip(gold_sets, pred_sets))
    fp = sum(label not in g and label in p for g, p in zip(gold_sets, pred_sets))
    fn = sum(label in g and label not in p for g, p in zip(gold_sets, pred_sets))
    return tp, fp, fn


def weighted_f1(gold_sets: Sequence[set[str]], pred_sets: Sequence[set[str]], labels: Iterable[str]) -> float:
    """scikit-learn's `f1_score(average="weighted", zero_division=0)` over multi-hot sets."""
    total, acc = 0, 0.0
    for label in labels:
        tp, fp, fn = label_counts(gold_sets, pred_sets, label)
        support = tp + fn
        acc += support * (2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        total += support
    return acc / total if total else 0.0


def trail_scores(
    golds: Mapping[str, Sequence[Mapping[str, Any]]], predictions: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, Any]:
    """The official figures of one split: `golds` maps trace id → its annotation's errors (files
    that did not parse are not here), `predictions` trace id → the prediction (missing: absent)."""
    gold_cats: list[set[str]] = []
    pred_cats: list[set[str]] = []
    loc = joint = 0.0
    scored = 0
    for trace_id, errors in golds.items():
        prediction = predictions.get(trace_id)
        if prediction is None:
            continue  # the script skips a trace with no prediction file
        scored += 1
        g_locs, g_pairs, g_cats = trail_trace(errors)
        p_locs, p_pairs, p_cats = trail_trace(prediction.get("errors") or [])
        gold_cats.append(g_cats)
        pred_cats.append(p_cats)
        loc += len(g_locs & p_locs) / len(g_locs) if g_locs else 0.0
        joint += len(g_pairs & p_pairs) / len(g_pairs) if g_pairs else 0.0
    return {
        "official_category_f1": weighted_f1(gold_cats, pred_cats, TRAIL_CATEGORIES),
        "official_location_accuracy": loc / scored if scored else 0.0,
        "official_joint_accuracy": joint / scored if scored else 0.0,
        "official_traces_scored": scored,
    }


_AGENT = re.compile(r"Agent Name:\s*([\w_]+)", re.IGNORECASE)
_STEP = re.compile(r"Step Number:\s*(\d+)", re.IGNORECASE)


def who_and_when_read(prediction: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(agent, step) as the script reads a prediction written in its text form, or None when it
    drops it."""
    if not prediction:
        return None
    agent, step = (prediction.get(k) for k in ("predicted_agent", "predicted_step"))
    text = f"Agent Name: {'' if agent is None else agent}\nStep Number: {'' if step is None else step}"
    found, number = _AGENT.search(text), _STEP.search(text)
    return (found.group(1), number.group(1)) if found and number else None


def who_and_when_scores(
    golds: Sequence[tuple[str, str, str]], predictions: Mapping[str, Mapping[str, Any] | None], files: int
) -> dict[str, Any]:
    """The official figures of one folder: `golds` are (file name, mistake_agent, mistake_step as
    written), `files` every JSON file in the folder (the denominator)."""
    agent = step = 0
    for name, gold_agent, gold_step in golds:
        read = who_and_when_read(predictions.get(name))
        if read is None:
            continue
        agent += gold_agent in read[0]
        step += gold_step in read[1]
    return {
        "official_agent_accuracy": agent / files if files else 0.0,
        "official_step_accuracy": step / files if files else 0.0,
        "official_files": files,
    }
