"""`eval.md`: an eval's figures beside the random baseline on the same files and the papers' own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def _pct(x: Any) -> str:
    return "—" if x is None else f"{100 * float(x):.1f} %"


def _num(x: Any) -> str:
    return "—" if x is None else f"{float(x):.3f}"


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    return (lines[0] if lines else "no message").replace("<", "&lt;").replace(">", "&gt;")


def _header(result: dict[str, Any]) -> list[str]:
    lines = [f"# refinery eval — {result['benchmark']}", "", f"- data: `{result['data']}`"]
    if result.get("setting"):
        lines.append(f"- setting: {result['setting']}")
    if result.get("predictions_from"):
        lines.append(f"- predictions scored from: `{result['predictions_from']}`")
    else:
        lines.append(
            f"- model asked: {result.get('model')}; answered by: {', '.join(result.get('answered_by') or []) or '—'}"
        )
        lines.append(
            f"- analysed: {result.get('analysed', 0)}; failed: {len(result.get('failed') or {})}; tokens: "
            f"{result.get('tokens', 0)}"
        )
    for skipped in result.get("skipped_labels") or []:
        lines.append(f"- skipped (does not parse): `{skipped['file']}`")
    for key, what in (
        ("annotations_without_trace", "annotations with no trace (not scored)"),
        ("traces_without_annotation", "traces with no annotation (not analysed)"),
    ):
        names = result.get(key) or []
        if names:
            shown = ", ".join(f"`{n}`" for n in names[:20]) + (
                f" and {len(names) - 20} more" if len(names) > 20 else ""
            )
            lines.append(f"- {what}: {len(names)}: {shown}")
    failed = result.get("failed") or {}
    if failed:
        lines += ["", "## Traces that could not be analysed", ""]
        lines += [f"- `{name}` — {_one_line(str(why))}" for name, why in sorted(failed.items())]
    if result.get("stand_in"):
        lines += [
            "",
            "**These figures are the stand-in model's** (refinery's test double: a deterministic heuristic over the "
            "request text, no model): they show the eval path works, not how well any model localises failures.",
        ]
    return lines + [""]


def _per_subset(result: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, scores, the paper's figures) for each subset, then overall."""
    paper = result.get("paper_baselines") or {}
    for name, s in [*result["scores"]["subsets"].items(), ("overall", result["scores"]["overall"])]:
        yield name, s, paper.get(name, {})


def _paper(result: dict[str, Any]) -> dict[str, Any]:
    """The published figures, only when they were computed in this eval's setting."""
    paper = result.get("paper_baselines") or {}
    same = paper.get("setting") in (None, result.get("setting"))
    return paper if same else {}


def _ours(result: dict[str, Any]) -> str:
    """The head of our column: whose answers the figures are."""
    return "stand-in model (test double, not an analysis)" if result.get("stand_in") else "refinery"


def _of(counted: int, in_folder: int | None) -> str:
    """How many files the figure is over: "39 files in the folder", or "10 of 39" with `--limit`."""
    if in_folder is None or in_folder == counted:
        return f"{counted} files in the folder"
    return f"{counted} of {in_folder} files in the folder"


def _who_and_when(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    paper = _paper(result)
    folder = result.get("folder_files") or {}
    for name, s, ref in _per_subset(result):
        ref = ref if paper else {}
        rb = s["random_baseline"]
        lines += [
            f"## {name} ({s['files']} logs, {s['predicted']} predicted)",
            "",
            f"| metric | {_ours(result)} | uniform guess (same files, same definition) | paper (same setting) |",
            "|---|---|---|---|",
        ]
        if "official_agent_accuracy" in s:
            in_folder = folder.get(name, sum(folder.values()) or None)  # overall: every subset's folder
            lines += [
                f"| official agent accuracy (Who&When's script; {_of(s['official_files'], in_folder)}) | "
                f"{_pct(s['official_agent_accuracy'])} "
                f"| {_pct(rb.get('official_agent_accuracy'))} | {_pct(ref.get('official_agent_accuracy'))} |",
                f"| official step accuracy (Who&When's script) | {_pct(s['official_step_accuracy'])} | "
                f"{_pct(rb.get('official_step_accuracy'))} "
                f"| {_pct(ref.get('official_step_accuracy'))} |",
            ]
        lines += [
            f"| agent accuracy (exact name) | {_pct(s['agent_accuracy'])} | {_pct(rb['agent_accuracy'])} | |",
            f"| step accuracy (exact) | {_pct(s['step_accuracy'])} | {_pct(rb['step_accuracy'])} | |",
            *(
                f"| step within ±{k} | {_pct(s[f'step_within_{k}_accuracy'])} | "
                f"{_pct(rb[f'step_within_{k}_accuracy'])} | |"
                for k in (1, 3, 5)
            ),
            f"| step distance, mean (predicted steps only) | {_num(s['step_distance_mean'])} | "
            f"{_num(rb['step_distance_mean'])} | |",
            "",
        ]
    if paper.get("source"):
        lines += [f"Paper figures: {paper['source']} (their full sets; these are the files given).", ""]
    elif (result.get("paper_baselines") or {}).get("source"):
        lines += [
            f"No published figure of this setting ({result.get('setting')}) is at hand; "
            f"{result['paper_baselines']['source']} is another setting, so it is not shown.",
            "",
        ]
    return lines


def _trail(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, s, ref in _per_subset(result):
        rb, orb = s.get("random_baseline") or {}, s.get("official_random_baseline") or {}
        lines += [
            f"## {name} ({s['traces']} traces, {s['missing_predictions']} without a prediction)",
            "",
            f"| metric | {_ours(result)} | uniform guess (same traces, same definition) | paper (best model) |",
            "|---|---|---|---|",
        ]
        if "official_category_f1" in s:
            lines += [
                f"| official category F1 (TRAIL's script; {s['official_traces_scored']} traces scored) | "
                f"{_num(s['official_category_f1'])} "
                f"| {_num(orb.get('category_f1'))} | {_num(ref.get('official_category_f1'))} |",
                f"| official location accuracy (recall) | {_num(s['official_location_accuracy'])} | "
                f"{_num(orb.get('location_accuracy'))} "
                f"| {_num(ref.get('official_location_accuracy'))} |",
                f"| official joint accuracy (recall) | {_num(s['official_joint_accuracy'])} | "
                f"{_num(orb.get('joint_accuracy'))} "
                f"| {_num(ref.get('official_joint_accuracy'))} |",
            ]
        lines += [
            f"| category F1, canonical names (weighted) | {_num(s['category_f1_weighted'])} | "
            f"{_num(rb.get('category_f1'))} | |",
            f"| location accuracy (every trace) | {_num(s['location_accuracy'])} | "
            f"{_num(rb.get('location_accuracy'))} | |",
            f"| joint accuracy (every trace) | {_num(s['joint_accuracy'])} | {_num(rb.get('joint_accuracy'))} | |",
            f"| location precision | {_num(s['location_precision'])} | {_num(rb.get('location_precision'))} | |",
            "",
        ]
        if s.get("per_category"):
            lines += ["| category | precision | recall | F1 | support |", "|---|---|---|---|---|"]
            lines += [
                f"| {c} | {_num(v['precision'])} | {_num(v['recall'])} | {_num(v['f1'])} | {v['support']} |"
                for c, v in s["per_category"].items()
            ]
            lines.append("")
    paper = result.get("paper_baselines") or {}
    if paper.get("source"):
        lines += [
            f"Paper figures: {paper['source']} (computed with TRAIL's script: set beside the official rows only).",
            "",
        ]
    lines += [
        "The uniform guess predicts one error a trace: a span drawn from the trace's spans, a category from the 21 "
        "(— where the traces were not given: their span counts are unknown).",
        "",
    ]
    return lines


def _labels(result: dict[str, Any]) -> list[str]:
    s = result["scores"]
    return [
        f"## {s['traces']} labelled traces, {s['predicted']} predicted (steps from {result.get('step_base', 0)})",
        "",
        f"| metric | {_ours(result)} |",
        "|---|---|",
        f"| root cause: step exact | {_pct(s['root_step_accuracy'])} |",
        *(f"| root cause: step within ±{k} | {_pct(s[f'root_step_within_{k}_accuracy'])} |" for k in (1, 3, 5)),
        f"| root cause: step distance, mean | {_num(s['root_step_distance_mean'])} |",
        f"| root cause: agent exact | {_pct(s['root_agent_accuracy'])} |",
        f"| failures: recall (labelled steps predicted) | {_pct(s['failure_recall'])} |",
        f"| failures: precision (predicted steps labelled) | {_pct(s['failure_precision'])} |",
        "",
    ]


def render_eval_md(result: dict[str, Any]) -> str:
    renderers = {"who-and-when": _who_and_when, "trail": _trail, "labels": _labels}
    body = renderers[result["benchmark"]](result)
    return "\n".join(_header(result) + body).rstrip() + "\n"
