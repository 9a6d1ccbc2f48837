"""Who&When (Zhang et al., ICML 2025): which agent, and which step, made a multi-agent run fail.

Two sets of figures per data folder (one subset: algorithm-generated, hand-crafted):

- `official_*` (`eval.official`): Who&When's own `evaluate.py`, quirks included — the agent read
  with `[\\w_]+` and matched by case-sensitive substring, the step by string containment, a
  prediction whose step is not digits dropped whole, every file in the folder in the denominator;
- refinery's strict metrics: the agent's name exactly (a Magentic-One speaker's trailing
  `(role)` removed on both sides: `Orchestrator (-> WebSurfer)` is `Orchestrator`; case counts),
  the step exactly, within ±1/±3/±5, and the mean distance |predicted − gold| over the logs with
  a predicted step; a missing prediction counts wrong.

Beside each metric, the score a uniform guess gets on the same files, computed exactly with the
same definition as that metric: an agent drawn from the log's agents as the strict metric
compares them (each speaker's trailing `(role)` removed, each agent once), a step from its
steps. A log that does not parse is skipped with a warning and counted.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refinery.errors import InputFileError
from refinery.eval import official

log = logging.getLogger("refinery.eval")
_ROLE = re.compile(r"\s*\([^()]*\)\s*$")
STEP_TOLERANCES = (1, 3, 5)


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
    agent_text: str = ""  # mistake_agent and mistake_step exactly as written: the official script compares these
    step_text: str = ""

    @property
    def key(self) -> str:
        """How predictions find this log: `<subset>/<file>` (23 file names exist in both subsets)."""
        return f"{self.subset}/{self.name}"


def load_gold(path: Path, subset: str) -> Gold:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        history = data["history"]
        step = int(_unquote(data["mistake_step"]))
        agent = _unquote(data["mistake_agent"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputFileError(
            f"{path}: not a Who&When log with history, mistake_agent and mistake_step ({exc})"
        ) from None
    speakers = tuple(dict.fromkeys(str(h.get("name") or h.get("role") or "") for h in history if isinstance(h, dict)))
    return Gold(
        path.name,
        subset,
        agent,
        step,
        speakers,
        len(history),
        str(path),
        _unquote(data.get("question", "")),
        _unquote(data.get("ground_truth", "")),
        str(data["mistake_agent"]),
        str(data["mistake_step"]),
    )


def json_files(root: str | Path, what: str) -> list[Path]:
    """The `*.json` files of a benchmark folder: directly in it, or one level down (its subsets)."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(f"{root}: no such folder of {what}")
    files = sorted(root.glob("*.json")) or sorted(root.glob("*/*.json"))
    if not files:
        raise InputFileError(f"{root}: no {what} (*.json) found")
    return files


def load_dataset(root: str | Path, skipped: list[dict[str, str]] | None = None) -> list[Gold]:
    """Every log under `root` (its subfolders are the subsets, or `root` itself is one); one that
    does not parse is skipped with a warning line and listed in `skipped`."""
    golds = []
    for f in json_files(root, "Who&When logs"):
        try:
            golds.append(load_gold(f, f.parent.name))
        except InputFileError as exc:
            log.warning("skipped: %s", exc)
            if skipped is not None:
                skipped.append({"file": str(f), "reason": str(exc)})
    return golds


def folder_sizes(golds: list[Gold]) -> dict[str, int]:
    """Every JSON file of each subset's folder (the official denominator: parsed or not)."""
    return {g.subset: len(list(Path(g.path).parent.glob("*.json"))) if g.path else 0 for g in golds}


def predicted_step(value: Any) -> int | None:
    """A step number from `12`, `"12"`, `"step-12"` or `"step 12"`; None when there is none
    (also for `-1`, which some tools write for "no step")."""
    if value is None or re.fullmatch(r"\s*-\d+\s*", str(value)):
        return None
    m = re.search(r"(\d+)\s*$", str(value).strip())
    return int(m.group(1)) if m else None


def score_one(gold: Gold, prediction: Mapping[str, Any] | None) -> dict[str, Any]:
    pred_agent = str((prediction or {}).get("predicted_agent") or "")
    step = predicted_step((prediction or {}).get("predicted_step"))
    row: dict[str, Any] = {
        "file": gold.name,
        "subset": gold.subset,
        "gold_agent": gold.agent,
        "gold_step": gold.step,
        "predicted_agent": pred_agent or None,
        "predicted_step": step,
        "agent": bool(pred_agent) and agent_name(pred_agent) == agent_name(gold.agent),
        "step": step == gold.step,
        "step_distance": abs(step - gold.step) if step is not None else None,
    }
    for k in STEP_TOLERANCES:
        row[f"step_within_{k}"] = step is not None and abs(step - gold.step) <= k
    return row


def random_baseline(gold: Gold) -> dict[str, float]:
    """What a uniform guess scores on this log, in expectation, by each metric's own definition:
    an agent drawn from the log's agents as the strict metric compares them, a step from its steps."""
    n = gold.steps
    agents = guess_agents(gold)
    out = {
        "agent": sum(a == agent_name(gold.agent) for a in agents) / len(agents),
        "official_agent": sum(_official_agent_hit(gold, a) for a in agents) / len(agents),
        "step": 1 / n if n else 0.0,
        "official_step": sum(gold.step_text in str(k) for k in range(n)) / n if n else 0.0,
        "step_distance": sum(abs(k - gold.step) for k in range(n)) / n if n else 0.0,
    }
    for k in STEP_TOLERANCES:
        lo, hi = max(0, gold.step - k), min(n - 1, gold.step + k)
        out[f"step_within_{k}"] = max(0, hi - lo + 1) / n if n else 0.0
    return out


def guess_agents(gold: Gold) -> tuple[str, ...]:
    """The agents a uniform guess draws from: the log's speakers as the strict metric compares them,
    each once (`Orchestrator (-> WebSurfer)` and `Orchestrator (thought)` are one agent, `Orchestrator`)."""
    return tuple(dict.fromkeys(agent_name(s) for s in gold.speakers)) or ("",)


def _official_agent_hit(gold: Gold, speaker: str) -> bool:
    read = official.who_and_when_read({"predicted_agent": speaker, "predicted_step": "0"})
    return read is not None and (gold.agent_text or gold.agent) in read[0]


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return sum(float(r[key]) for r in rows) / len(rows) if rows else 0.0


def score(
    golds: list[Gold],
    predictions: Mapping[str, Mapping[str, Any] | None],
    folder_files: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Per subset: the official figures (`folder_files`: each subset folder's JSON files, the
    official denominator; default the logs given) and the strict ones, each beside a uniform
    guess; overall: the strict ones. Predictions are looked up by `<subset>/<file>`, then by file."""
    sizes = dict(folder_files or {})

    def pred(g: Gold) -> Mapping[str, Any] | None:
        return predictions.get(g.key, predictions.get(g.name))

    rows = [score_one(g, pred(g)) for g in golds]
    baselines = [random_baseline(g) for g in golds]
    metrics = ("agent", "step", *(f"step_within_{k}" for k in STEP_TOLERANCES))

    def summary(subset: str | None) -> dict[str, Any]:
        picked = [i for i, g in enumerate(golds) if subset is None or g.subset == subset]
        sub_rows = [rows[i] for i in picked]
        base = [baselines[i] for i in picked]
        distances = [r["step_distance"] for r in sub_rows if r["step_distance"] is not None]
        out: dict[str, Any] = {"files": len(sub_rows), "predicted": sum(pred(golds[i]) is not None for i in picked)}
        if subset is not None:
            chosen = [golds[i] for i in picked]
            out.update(
                official.who_and_when_scores(
                    [(g.name, g.agent_text or g.agent, g.step_text or str(g.step)) for g in chosen],
                    {g.name: p for g in chosen if (p := pred(g)) is not None},
                    sizes.get(subset, len(chosen)),
                )
            )
        out.update({f"{m}_accuracy": _mean(sub_rows, m) for m in metrics})
        out["step_distance_mean"] = sum(distances) / len(distances) if distances else None
        keys = ("agent", "step", *(f"step_within_{k}" for k in STEP_TOLERANCES)) + (
            ("official_agent", "official_step") if subset else ()
        )
        out["random_baseline"] = {f"{k}_accuracy": sum(b[k] for b in base) / len(base) if base else 0.0 for k in keys}
        out["random_baseline"]["step_distance_mean"] = (
            sum(b["step_distance"] for b in base) / len(base) if base else None
        )
        return out

    subsets = sorted({g.subset for g in golds})
    return {"subsets": {s: summary(s) for s in subsets}, "overall": summary(None), "rows": rows}


# The paper's Table 1 (GPT-4o, all-at-once, given the task's ground-truth answer), cited as printed:
# computed with the official script, so they stand beside the official_* figures, and only in an
# eval run in the same setting (`--with-answer`).
PAPER_BASELINES = {
    "source": "Zhang et al., ICML 2025 (arXiv 2505.00212), Table 1: GPT-4o, all-at-once, with ground truth",
    "setting": "with the task's answer",
    "algorithm-generated": {"official_agent_accuracy": 0.5433, "official_step_accuracy": 0.1250},
    "hand-crafted": {"official_agent_accuracy": 0.5517, "official_step_accuracy": 0.0526},
}
