"""TRAIL (Deshpande et al. 2025): which spans hold errors, and of which kind.

Two sets of figures per split (one folder of annotations: gaia, swe_bench):

- `official_*` (`eval.official`): TRAIL's own `calculate_scores.py`, quirks included — loose
  category matching by substring, blank categories paired by index, traces without a prediction
  skipped — so they can be set beside published results;
- refinery's strict metrics: a category counts only when its name is a canonical label (case,
  spaces and hyphens aside), every annotated trace counts (a missing prediction scores 0),
  location precision beside the accuracies (both official accuracies count recall only:
  predicting every span scores 1.0), and per-category precision, recall and F1.

Rubric scores (Pearson r) are not predicted here. An annotation that does not parse is skipped
with a warning and counted (`skipped_labels`), as the official script skips it.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refinery.errors import InputFileError
from refinery.eval import official
from refinery.eval.who_and_when import json_files

log = logging.getLogger("refinery.eval")


def category_key(name: str) -> str:
    """A category by its canonical TRAIL label when the name is one (case, spaces, hyphens aside);
    any other spelling keeps its own, marked, and matches nothing."""
    bare = re.sub(r"[\s\-_]+", "", name.lower())
    for label in official.TRAIL_CATEGORIES:
        if bare == re.sub(r"[\s\-_]+", "", label.lower()):
            return label
    return "unmatched:" + " ".join(name.lower().split())


@dataclass(frozen=True)
class TraceGold:
    trace_id: str
    subset: str
    errors: tuple[tuple[str, str], ...]  # (span id, category key)
    raw: tuple[dict[str, Any], ...] = ()  # the annotation's errors as written (the official scorer reads these)


def load_annotation(path: Path, subset: str = "") -> TraceGold:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        raw = tuple(dict(e) for e in data.get("errors") or [])
        errors = tuple((str(e["location"]), category_key(str(e.get("category") or ""))) for e in raw)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputFileError(
            f"{path}: not a TRAIL annotation with errors[].location and errors[].category ({exc})"
        ) from None
    return TraceGold(path.stem, subset or path.parent.name, errors, raw)


def load_annotations(root: str | Path, skipped: list[dict[str, str]] | None = None) -> list[TraceGold]:
    """Every annotation under `root`; one that does not parse is skipped with a warning line and
    listed in `skipped` (the public release has one with a trailing comma)."""
    golds = []
    for f in json_files(root, "TRAIL annotations"):
        try:
            golds.append(load_annotation(f))
        except InputFileError as exc:
            log.warning("skipped: %s", exc)
            if skipped is not None:
                skipped.append({"file": str(f), "reason": str(exc)})
    return golds


def prediction_pairs(prediction: Mapping[str, Any] | None) -> set[tuple[str, str]]:
    """(span id, category key) pairs from `{"errors": [{"category", "location"}]}`."""
    out = set()
    for e in (prediction or {}).get("errors") or []:
        if isinstance(e, Mapping) and e.get("location"):
            out.add((str(e["location"]), category_key(str(e.get("category") or ""))))
    return out


def _ratio(hit: int, total: int) -> float:
    return hit / total if total else 0.0


def per_category(gold_sets: list[set[str]], pred_sets: list[set[str]]) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 and support of each canonical category over traces (strict)."""
    out: dict[str, dict[str, float | int]] = {}
    for label in official.TRAIL_CATEGORIES:
        tp, fp, fn = official.label_counts(gold_sets, pred_sets, label)
        if tp or fp or fn:
            out[label] = {
                "precision": _ratio(tp, tp + fp),
                "recall": _ratio(tp, tp + fn),
                "f1": _ratio(2 * tp, 2 * tp + fp + fn),
                "support": tp + fn,
            }
    return out


def score(
    golds: list[TraceGold], predictions: Mapping[str, Mapping[str, Any] | None], spans: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Per split: the official figures and refinery's strict ones; overall: the strict ones (the
    official script scores one split at a time). Each beside a uniform guess (`random_baseline`;
    `spans`: each trace's span count, when the traces are at hand)."""

    def summary(items: list[TraceGold], with_official: bool) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        gold_cats: list[set[str]] = []
        pred_cats: list[set[str]] = []
        for g in items:
            pred = prediction_pairs(predictions.get(g.trace_id))
            gold_pairs = set(g.errors)
            gold_locs, pred_locs = {s for s, _ in gold_pairs}, {s for s, _ in pred}
            gold_cats.append({c for _, c in gold_pairs if c in official.TRAIL_CATEGORIES})
            pred_cats.append({c for _, c in pred if c in official.TRAIL_CATEGORIES})
            rows.append(
                {
                    "trace_id": g.trace_id,
                    "gold_errors": len(gold_pairs),
                    "predicted_errors": len(pred),
                    "predicted": predictions.get(g.trace_id) is not None,
                    "location_accuracy": _ratio(len(gold_locs & pred_locs), len(gold_locs)),
                    "joint_accuracy": _ratio(len(gold_pairs & pred), len(gold_pairs)),
                    "location_precision": _ratio(len(gold_locs & pred_locs), len(pred_locs)),
                }
            )
        n = len(rows) or 1
        out: dict[str, Any] = {
            "traces": len(rows),
            "missing_predictions": sum(not r["predicted"] for r in rows),
        }
        if with_official:
            golds_raw = {g.trace_id: g.raw for g in items}
            out.update(
                official.trail_scores(
                    golds_raw,
                    {g.trace_id: predictions[g.trace_id] for g in items if predictions.get(g.trace_id) is not None},
                )
            )
        out.update(
            {
                "category_f1_weighted": official.weighted_f1(gold_cats, pred_cats, official.TRAIL_CATEGORIES),
                **{
                    k: sum(float(r[k]) for r in rows) / n
                    for k in ("location_accuracy", "joint_accuracy", "location_precision")
                },
                "per_category": per_category(gold_cats, pred_cats),
                "rows": rows,
            }
        )
        out["random_baseline"] = random_baseline(items, spans or {}, official_rules=False)
        if with_official:
            scored = [g for g in items if predictions.get(g.trace_id) is not None]
            out["official_random_baseline"] = random_baseline(scored, spans or {}, official_rules=True)
        return out

    subsets = sorted({g.subset for g in golds})
    return {
        "subsets": {s: summary([g for g in golds if g.subset == s], True) for s in subsets},
        "overall": summary(golds, False),
    }


def _expected_f1(support: int, traces: int, p: float) -> float:
    """E[F1] of one label when each of `traces` traces predicts it with probability `p`
    independently, `support` of them having it in gold: F1 = 2tp / (tp + fp + support), with tp
    and fp binomial, summed exactly."""
    if support == 0:
        return 0.0
    rest = traces - support
    total = 0.0
    for tp in range(support + 1):
        p_tp = math.comb(support, tp) * p**tp * (1 - p) ** (support - tp)
        if tp == 0 or p_tp == 0.0:
            continue
        for fp in range(rest + 1):
            total += p_tp * math.comb(rest, fp) * p**fp * (1 - p) ** (rest - fp) * 2 * tp / (tp + fp + support)
    return total


def random_baseline(
    golds: list[TraceGold], spans: Mapping[str, int], *, official_rules: bool
) -> dict[str, float | None]:
    """What a uniform guess scores, in expectation, by each metric's own definition: for every
    trace one error, its span drawn from the trace's `spans` (span counts, by trace id) and its
    category from the 21. Accuracies and precision are None when a trace's span count is unknown
    (scored from predictions alone, without the traces); category F1 needs none."""
    labels = official.TRAIL_CATEGORIES
    p = 1 / len(labels)
    cat_sets = [
        official.trail_trace(g.raw)[2] if official_rules else {c for _, c in g.errors if c in labels} for g in golds
    ]
    f1_den = 0
    f1 = 0.0
    for label in labels:
        support = sum(label in cats for cats in cat_sets)
        f1 += support * _expected_f1(support, len(golds), p)
        f1_den += support
    out: dict[str, float | None] = {"category_f1": f1 / f1_den if f1_den else 0.0}
    if not golds or any(g.trace_id not in spans or not spans[g.trace_id] for g in golds):
        return {**out, "location_accuracy": None, "joint_accuracy": None, "location_precision": None}
    loc = joint = precision = 0.0
    for g in golds:
        n = spans[g.trace_id]
        if official_rules:
            locs, pairs, _ = official.trail_trace(g.raw)
        else:
            locs, pairs = {s for s, _ in g.errors}, set(g.errors)
        loc += (
            (1 / n) if locs else 0.0
        )  # the guessed span is one of the gold ones with chance |gold| / n, scoring 1/|gold|
        joint += sum(c in labels for _, c in pairs) / (n * len(labels) * len(pairs)) if pairs else 0.0
        precision += len(locs) / n
    k = len(golds)
    return {**out, "location_accuracy": loc / k, "joint_accuracy": joint / k, "location_precision": precision / k}


def gold_as_prediction(gold: TraceGold) -> dict[str, Any]:
    """The annotation itself as a prediction (the metrics' maximum)."""
    return {
        "errors": [dict(e) for e in gold.raw] if gold.raw else [{"location": s, "category": c} for s, c in gold.errors]
    }


# Published with the official script, so they stand beside the official_* figures only.
PAPER_BASELINES = {
    "source": "Deshpande et al. 2025 (arXiv 2505.08638), Table 1, best model (Gemini-2.5-Pro)",
    "gaia": {"official_category_f1": 0.389, "official_location_accuracy": 0.546, "official_joint_accuracy": 0.183},
    "swe_bench": {"official_category_f1": 0.148, "official_location_accuracy": 0.238, "official_joint_accuracy": 0.050},
}
