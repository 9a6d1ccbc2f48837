"""Who&When (Zhang et al., ICML 2025): which agent, and which step, made a multi-agent run fail.

Scores predictions `{predicted_agent, predicted_step}` against a log's `mistake_agent` and
`mistake_step` (a 0-based index into `history`, stored as a string), and computes the baseline a
uniform guess would score on the same files — exactly, as an expectation, never copied.

How agents are compared, and why: Magentic-One logs (the hand-crafted set) write the speaker as
`Agent (role)` — `Orchestrator (thought)`, `Orchestrator (-> WebSurfer)` — while the labels name
the agent (`Orchestrator`). So `agent_accuracy` compares names exactly after removing that
trailing parenthesised role from both sides; case still counts (the labels' `Websurfer` against
the log's `WebSurfer` is a miss, as it is in the data). Who&When's own script matches by
substring; `agent_accuracy_substring` reports that too, so figures can be set beside the paper's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refinery.errors import InputFileError

_ROLE = re.compile(r"\s*\([^()]*\)\s*$")
STEP_TOLERANCES = (1, 5)


def agent_name(speaker: str) -> str:
    """`Orchestrator (-> WebSurfer)` → `Orchestrator`; other names as they are."""
    return _ROLE.sub("", str(speaker)).strip()


def _unquote(value: Any) -> str:
    return str(value).strip().strip("'\"").strip()


@dataclass(frozen=True)
class Gold:
    name: str  # the log's file name: predictions are keyed by it
    subset: str  # its folder (algorithm-generated, hand-crafted, …)
    agent: str
    step: int
    speakers: tuple[str, ...]  # distinct speakers as written, in order of appearance
    steps: int
    path: str = ""
    question: str = ""
    answer: str = ""  # the task's ground truth (not the failure label)


def load_gold(path: Path, subset: str) -> Gold:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        history = data["history"]
        step = int(_unquote(data["mistake_step"]))
        agent = _unquote(data["mistake_agent"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputFileError(f"{path}: not a Who&When log with history, mistake_agent and mistake_step ({exc})") from None
    speakers = tuple(dict.fromkeys(str(h.get("name") or h.get("role") or "") for h in history if isinstance(h, dict)))
    return Gold(path.name, subset, agent, step, speakers, len(history), str(path), _unquote(data.get("question", "")), _unquote(data.get("ground_truth", "")))


def json_files(root: str | Path, what: str) -> list[Path]:
    """The `*.json` files of a benchmark folder: directly in it, or one level down (its subsets)."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(f"{root}: no such folder of {what}")
    files = sorted(root.glob("*.json")) or sorted(root.glob("*/*.json"))
    if not files:
        raise InputFileError(f"{root}: no {what} (*.json) found")
    return files


def load_dataset(root: str | Path) -> list[Gold]:
    """Every log under `root` (its subfolders are the subsets, or `root` itself is one)."""
    return [load_gold(f, f.parent.name) for f in json_files(root, "Who&When logs")]


def predicted_step(value: Any) -> int | None:
    """A step number from `12`, `"12"`, `"step-12"` or `"step 12"`; None when there is none."""
    m = re.search(r"(\d+)\s*$", str(value).strip()) if value is not None else None
    return int(m.group(1)) if m else None


def score_one(gold: Gold, prediction: Mapping[str, Any] | None) -> dict[str, Any]:
    pred_agent = str((prediction or {}).get("predicted_agent") or "")
    step = predicted_step((prediction or {}).get("predicted_step"))
    row = {
        "file": gold.name, "subset": gold.subset, "gold_agent": gold.agent, "gold_step": gold.step,
        "predicted_agent": pred_agent or None, "predicted_step": step,
        "agent": bool(pred_agent) and agent_name(pred_agent) == agent_name(gold.agent),
        "agent_substring": bool(pred_agent) and gold.agent.lower() in pred_agent.lower(),
        "step": step == gold.step,
    }
    for k in STEP_TOLERANCES:
        row[f"step_within_{k}"] = step is not None and abs(step - gold.step) <= k
    return row


def random_baseline(gold: Gold) -> dict[str, float]:
    """What a uniform guess scores on this log, in expectation.

    `agent_uniform_over_speakers`: 1 / the number of distinct speakers as written (the gold is
    taken to be one of them) — Who&When's definition; `agent`: a uniform guess over the agent
    names our `agent_accuracy` compares, counting only a guess that matches exactly.
    """
    names = list(dict.fromkeys(agent_name(s) for s in gold.speakers))
    out = {
        "agent_uniform_over_speakers": 1 / len(gold.speakers) if gold.speakers else 0.0,
        "agent": (agent_name(gold.agent) in names) / len(names) if names else 0.0,
        "step": 1 / gold.steps if gold.steps else 0.0,
    }
    for k in STEP_TOLERANCES:
        lo, hi = max(0, gold.step - k), min(gold.steps - 1, gold.step + k)
        out[f"step_within_{k}"] = max(0, hi - lo + 1) / gold.steps if gold.steps else 0.0
    return out


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return sum(float(r[key]) for r in rows) / len(rows) if rows else 0.0


def score(golds: list[Gold], predictions: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Any]:
    """Accuracy per subset and overall, beside the uniform-guess baseline on the same files."""
    rows = [score_one(g, predictions.get(g.name)) for g in golds]
    baselines = {g.name: random_baseline(g) for g in golds}
    metrics = ("agent", "agent_substring", "step", *(f"step_within_{k}" for k in STEP_TOLERANCES))
    base_keys = ("agent", "agent_uniform_over_speakers", "step", *(f"step_within_{k}" for k in STEP_TOLERANCES))

    def summary(subset_rows: list[dict[str, Any]]) -> dict[str, Any]:
        names = {r["file"] for r in subset_rows}
        base = [b for n, b in baselines.items() if n in names]
        return {
            "files": len(subset_rows),
            "predicted": sum(r["predicted_agent"] is not None or r["predicted_step"] is not None for r in subset_rows),
            **{f"{m}_accuracy": _mean(subset_rows, m) for m in metrics},
            "random_baseline": {f"{k}_accuracy": sum(b[k] for b in base) / len(base) if base else 0.0 for k in base_keys},
        }

    subsets = sorted({g.subset for g in golds})
    return {
        "subsets": {s: summary([r for r in rows if r["subset"] == s]) for s in subsets},
        "overall": summary(rows),
        "rows": rows,
    }


# The paper's Table 1 (GPT-4o, all-at-once, given the task's ground-truth answer), cited as printed.
PAPER_BASELINES = {
    "source": "Zhang et al., ICML 2025 (arXiv 2505.00212), Table 1: GPT-4o, all-at-once, with ground truth",
    "algorithm-generated": {"agent_accuracy": 0.5433, "step_accuracy": 0.1250},
    "hand-crafted": {"agent_accuracy": 0.5517, "step_accuracy": 0.0526},
}
