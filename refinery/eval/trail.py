"""TRAIL (Deshpande et al. 2025): which spans hold errors, and of which kind.

The official metrics as TRAIL defines them (its paper and `benchmarking/calculate_scores.py`,
reconstructed from their published description — the script itself was not at hand here):

- category F1: per trace, the set of error categories present (multi-hot over the taxonomy),
  gold against predicted; per-category F1 across traces, averaged weighted by each category's
  support (the number of traces whose gold has it) — scikit-learn's `average="weighted"`;
- location accuracy: per trace, the share of gold span ids that were predicted; averaged over
  traces, a trace with no gold errors counting 0 (as upstream does);
- joint accuracy: the same over gold (span id, category) pairs;
- categories are matched loosely (case, hyphens, plurals, near-misspellings), as upstream does.

Both accuracies count recall only — predicting every span scores 1.0 — so this module adds
location precision (per trace, the share of predicted span ids that are gold, averaged over
traces), which the official metrics lack. Rubric scores (Pearson r) are not predicted here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refinery.core.taxonomy import trail_category
from refinery.errors import InputFileError
from refinery.eval.who_and_when import json_files


def category_key(name: str) -> str:
    """One label per category however it is spelled (an unknown spelling keeps its own)."""
    known = trail_category(name)
    return known.value if known is not None else "unmatched:" + " ".join(name.lower().split())


@dataclass(frozen=True)
class TraceGold:
    trace_id: str
    subset: str
    errors: tuple[tuple[str, str], ...]  # (span id, category key)


def load_annotation(path: Path, subset: str = "") -> TraceGold:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        errors = tuple((str(e["location"]), category_key(str(e["category"]))) for e in data.get("errors") or [])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputFileError(f"{path}: not a TRAIL annotation with errors[].location and errors[].category ({exc})") from None
    return TraceGold(path.stem, subset or path.parent.name, errors)


def load_annotations(root: str | Path) -> list[TraceGold]:
    return [load_annotation(f) for f in json_files(root, "TRAIL annotations")]


def prediction_pairs(prediction: Mapping[str, Any] | None) -> set[tuple[str, str]]:
    """(span id, category key) pairs from `{"errors": [{"category", "location"}]}`."""
    out = set()
    for e in (prediction or {}).get("errors") or []:
        if isinstance(e, Mapping) and e.get("location"):
            out.add((str(e["location"]), category_key(str(e.get("category") or ""))))
    return out


def _ratio(hit: int, total: int) -> float:
    return hit / total if total else 0.0


def weighted_f1(gold_sets: list[set[str]], pred_sets: list[set[str]]) -> float:
    """Per-label F1 over traces, weighted by gold support (labels absent from gold weigh 0)."""
    labels = set().union(*gold_sets) if gold_sets else set()
    total_support, acc = 0, 0.0
    for label in labels:
        tp = sum(label in g and label in p for g, p in zip(gold_sets, pred_sets))
        fp = sum(label not in g and label in p for g, p in zip(gold_sets, pred_sets))
        fn = sum(label in g and label not in p for g, p in zip(gold_sets, pred_sets))
        support = tp + fn
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        acc += support * f1
        total_support += support
    return acc / total_support if total_support else 0.0


def score(golds: list[TraceGold], predictions: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Any]:
    def summary(items: list[TraceGold]) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        gold_cats: list[set[str]] = []
        pred_cats: list[set[str]] = []
        for g in items:
            pred = prediction_pairs(predictions.get(g.trace_id))
            gold_pairs = set(g.errors)
            gold_locs, pred_locs = {s for s, _ in gold_pairs}, {s for s, _ in pred}
            gold_cats.append({c for _, c in gold_pairs})
            pred_cats.append({c for _, c in pred})
            rows.append({
                "trace_id": g.trace_id, "gold_errors": len(gold_pairs), "predicted_errors": len(pred),
                "location_accuracy": _ratio(len(gold_locs & pred_locs), len(gold_locs)),
                "joint_accuracy": _ratio(len(gold_pairs & pred), len(gold_pairs)),
                "location_precision": _ratio(len(gold_locs & pred_locs), len(pred_locs)),
            })
        n = len(rows) or 1
        return {
            "traces": len(rows),
            "category_f1_weighted": weighted_f1(gold_cats, pred_cats),
            **{k: sum(float(r[k]) for r in rows) / n for k in ("location_accuracy", "joint_accuracy", "location_precision")},
            "rows": rows,
        }

    subsets = sorted({g.subset for g in golds})
    return {"subsets": {s: summary([g for g in golds if g.subset == s]) for s in subsets}, "overall": summary(golds)}


def gold_as_prediction(gold: TraceGold) -> dict[str, Any]:
    return {"errors": [{"location": s, "category": c} for s, c in gold.errors]}


PAPER_BASELINES = {
    "source": "Deshpande et al. 2025 (arXiv 2505.08638), Table 1, best model (Gemini-2.5-Pro)",
    "gaia": {"category_f1_weighted": 0.389, "location_accuracy": 0.546, "joint_accuracy": 0.183},
    "swe_bench": {"category_f1_weighted": 0.148, "location_accuracy": 0.238, "joint_accuracy": 0.050},
}
