"""`eval.md`: an eval's figures beside the random baseline on the same files and the papers' own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def _pct(x: Any) -> str:
    return "—" if x is None else f"{100 * float(x):.1f} %"


def _num(x: Any) -> str:
    return "—" if x is None else f"{float(x):.3f}"


def _header(result: dict[str, Any]) -> list[str]:
    lines = [f"# refinery eval — {result['benchmark']}", "", f"- data: `{result['data']}`"]
    if result.get("setting"):
        lines.append(f"- setting: {result['setting']}")
    if result.get("predictions_from"):
        lines.append(f"- predictions scored from: `{result['predictions_from']}`")
    else:
        lines.append(f"- model asked: {result.get('model')}; answered by: {', '.join(result.get('answered_by') or []) or '—'}")
        lines.append(f"- analysed: {result.get('analysed', 0)}; failed: {len(result.get('failed') or {})}; tokens: {result.get('tokens', 0)}")
    if result.get("stand_in"):
        lines += ["", "**These figures are the stand-in model's** (refinery's test double, which fills answers from retrieved text "
                  "without analysing): they show the eval path works, not how well any model localises failures."]
    return lines + [""]


def _per_subset(result: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, scores, the paper's figures) for each subset, then overall."""
    paper = result.get("paper_baselines") or {}
    for name, s in [*result["scores"]["subsets"].items(), ("overall", result["scores"]["overall"])]:
        yield name, s, paper.get(name, {})


def _who_and_when(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, s, ref in _per_subset(result):
        rb = s["random_baseline"]
        lines += [
            f"## {name} ({s['files']} logs, {s['predicted']} predicted)", "",
            "| metric | refinery | uniform guess (same files) | paper (GPT-4o) |", "|---|---|---|---|",
            f"| agent accuracy (exact name) | {_pct(s['agent_accuracy'])} | {_pct(rb['agent_accuracy'])} | {_pct(ref.get('agent_accuracy'))} |",
            f"| agent accuracy (substring, as Who&When's script) | {_pct(s['agent_substring_accuracy'])} | {_pct(rb['agent_uniform_over_speakers_accuracy'])} | |",
            f"| step accuracy (exact) | {_pct(s['step_accuracy'])} | {_pct(rb['step_accuracy'])} | {_pct(ref.get('step_accuracy'))} |",
            f"| step within ±1 | {_pct(s['step_within_1_accuracy'])} | {_pct(rb['step_within_1_accuracy'])} | |",
            f"| step within ±5 | {_pct(s['step_within_5_accuracy'])} | {_pct(rb['step_within_5_accuracy'])} | |",
            "",
        ]
    paper = result.get("paper_baselines") or {}
    if paper.get("source"):
        lines += [f"Paper figures: {paper['source']} (their full sets; these are the files given).", ""]
    return lines


def _trail(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, s, ref in _per_subset(result):
        lines += [
            f"## {name} ({s['traces']} traces)", "",
            "| metric | refinery | paper (best model) |", "|---|---|---|",
            f"| category F1 (weighted) | {_num(s['category_f1_weighted'])} | {_num(ref.get('category_f1_weighted'))} |",
            f"| location accuracy (recall) | {_num(s['location_accuracy'])} | {_num(ref.get('location_accuracy'))} |",
            f"| joint accuracy (recall) | {_num(s['joint_accuracy'])} | {_num(ref.get('joint_accuracy'))} |",
            f"| location precision (ours; not an official metric) | {_num(s['location_precision'])} | |",
            "",
        ]
    paper = result.get("paper_baselines") or {}
    if paper.get("source"):
        lines += [f"Paper figures: {paper['source']}.", ""]
    return lines


def render_eval_md(result: dict[str, Any]) -> str:
    body = _who_and_when(result) if result["benchmark"] == "who-and-when" else _trail(result)
    return "\n".join(_header(result) + body).rstrip() + "\n"
