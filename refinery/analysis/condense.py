"""Making a big trace's Stage 1 fit the later stages' prompts. Pure.

Why: Stage 1 of a big trace runs group by group, and the merged result (every run of every
group) can be far larger than a prompt may hold; pasted whole into stage 2 it overflowed the
model's context. `condense_stage1` keeps what the later stages reason from — every failure and
anomaly, the runs that failed or that an event points at, the first and last runs, the coverage
— and shortens the rest, in steps, each tighter than the last, until the JSON fits the budget.
The full result is not lost: the analyst uploads it to the store as a file the later stages can
retrieve, and the artifact keeps it whole.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from refinery.analysis.analysis_run import AnalysisRun
from refinery.analysis.stage_calls import StageCalls
from refinery.analysis.staged_schemas import TraceAnalysisOutput
from refinery.analysis.stages import PLANNED_STORE, Stage, compact_json, stage_user_text
from refinery.analysis.store_keeper import StoreKeeper
from refinery.traces.render import safe_name

log = logging.getLogger("refinery.staged")
from refinery.core.offload import in_worker
from refinery.core.tokens import estimate_tokens

# (text limit for the timeline's fields, citations kept per item, evidence items kept, list items kept)
LEVELS = ((400, 3, 200, 200), (160, 2, 60, 60), (80, 1, 20, 20), (40, 1, 8, 8))


def json_tokens(output: TraceAnalysisOutput) -> int:
    return estimate_tokens(compact_json(output.model_dump(mode="json")))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _condensed(data: dict[str, Any], level: tuple[int, int, int, int]) -> dict[str, Any]:
    text, cites, evidence, items = level
    marked = {e["run_id"] for e in data["events"] if e.get("run_id")}
    timeline = data["timeline"]
    keep = [
        e
        for i, e in enumerate(timeline)
        if e["status"] in ("error", "partial") or e["run_id"] in marked or i in (0, len(timeline) - 1)
    ]
    return {
        "timeline": [
            {
                **e,
                "action": _cut(e["action"], text),
                "key_inputs": _cut(e["key_inputs"], text),
                "key_outputs": _cut(e["key_outputs"], text),
                "tool_calls": [_cut(t, text) for t in e["tool_calls"][:3]],
                "citations": e["citations"][:cites],
            }
            for e in keep
        ],
        "events": [  # every failure first; the other events as room allows
            {**e, "description": _cut(e["description"], text * 2), "citations": e["citations"][:cites]}
            for e in sorted(data["events"], key=lambda e: e["kind"] != "failure")[: items * 10]
        ],
        "coverage": {
            "files_scanned": _listed(data["coverage"]["files_scanned"], items),
            "remaining": _listed(data["coverage"]["remaining"], items),
        },
        "evidence": [{**e, "rationale": _cut(e["rationale"], text)} for e in data["evidence"][:evidence]],
    }


def _listed(values: list[str], limit: int) -> list[str]:
    return values if len(values) <= limit else [*values[:limit], f"… and {len(values) - limit} more"]


def condense_stage1(output: TraceAnalysisOutput, max_tokens: int) -> tuple[TraceAnalysisOutput, int]:
    """`output` as is when it fits `max_tokens`, else its first condensed form that fits (or the
    tightest one); with the condensation level used (0: untouched)."""
    if json_tokens(output) <= max_tokens:
        return output, 0
    data = output.model_dump(mode="json")
    smallest = output
    for n, level in enumerate(LEVELS, start=1):
        smallest = TraceAnalysisOutput.model_validate(_condensed(data, level))
        if json_tokens(smallest) <= max_tokens:
            return smallest, n
    return _first_that_fit(smallest.model_dump(mode="json"), max_tokens), len(LEVELS) + 1


def _first_that_fit(data: dict[str, Any], max_tokens: int) -> TraceAnalysisOutput:
    """The last resort: as many timeline entries and events as fit (failures first, then the
    order of the run), found by bisection; coverage and a note of what was left out stay."""
    timeline = sorted(data["timeline"], key=lambda e: e["status"] not in ("error", "partial"))
    events = data["events"]

    def cut(k: int) -> TraceAnalysisOutput:
        kept = sorted(timeline[:k], key=lambda e: e["sequence"])
        left = len(timeline) - len(kept) + max(0, len(events) - k)
        remaining = data["coverage"]["remaining"] + (
            [f"… {left} timeline entries and events left out here; the full Stage 1 is in the store"] if left else []
        )
        return TraceAnalysisOutput.model_validate(
            {
                **data,
                "timeline": kept,
                "events": events[:k],
                "evidence": data["evidence"][:k],
                "coverage": {**data["coverage"], "remaining": remaining},
            }
        )

    lo, hi = 0, max(len(timeline), len(events))
    while lo < hi:  # the largest k whose cut fits
        mid = (lo + hi + 1) // 2
        if json_tokens(cut(mid)) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return cut(lo)


STAGE1_FILE_NOTE = (
    "Stage 1's result was too large to paste whole: the JSON above keeps every failure, anomaly and the runs they "
    "concern. The full Stage 1 output is in the store as the file ending in _stage1_full.md; search it when you need "
    "a run left out."
)


def stage1_file_text(output: TraceAnalysisOutput) -> str:
    """The full Stage 1 output as a file for the store: one section per timeline entry, so each
    chunk carries a run id, then the events."""
    lines = ["# Stage 1 trace analysis (full)", ""]
    for e in output.timeline:
        lines += [
            f"## Timeline {e.sequence}: {e.run_name} [run_id: {e.run_id}]",
            f"- status: {e.status}",
            f"- action: {e.action}",
            f"- key inputs: {e.key_inputs}",
            f"- key outputs: {e.key_outputs}",
            f"- tool calls: {', '.join(e.tool_calls)}",
            "",
        ]
    lines += ["## Events", *[f"- {ev.kind} [run_id: {ev.run_id}]: {ev.description}" for ev in output.events]]
    return "\n".join(lines) + "\n"


# What each later stage is given of each earlier stage's output (issue 37), and the most tokens it
# may take there. Each view keeps the fields the stage's prompt works from, and is cut to its
# ceiling (`shrunk`), so the plan counts the ceiling, not the earlier stage's whole output budget:
# - Stage 2 compares what happened with each expectation clause: all of Stage 1 (timeline, events,
#   evidence, coverage), condensed beyond one Stage 1 call's output budget (`condense_stage1`);
# - Stage 3 re-reads the spans cited and builds causal chains from them, and names the decisive
#   step and the responsible agent: Stage 1's evidence (its events, evidence and the runs it
#   flagged, not every run's summary), every run in order as one line (sequence, id, name, status:
#   where a step lies and whose it is), and Stage 2's gaps (the clauses not met, missing context,
#   wrong assumptions, focus areas: not its coverage);
# - Stage 4 synthesises from the diagnosis: Stage 3's findings (chains, root cause, remediations,
#   localisation; not its long prose or the verbatim quotes, checked already) and Stage 2's gaps.
#   Stage 1's timeline is not repeated; a line in its slot says so.
PASTED_TOKENS: dict[str, dict[str, int | None]] = {
    "stage2": {"stage1": None},  # `stage1_ceiling`: a one-group Stage 1 whole
    "stage3": {"stage1": 1500, "stage2": 800},
    "stage4": {"stage2": 500, "stage3": 1200},
}
STAGE1_NOT_REPEATED = (
    "(Stage 1's timeline is not repeated here: Stage 2's gaps and Stage 3's diagnosis below are built on it and "
    "carry its citations.)"
)


def stage1_ceiling(stage1_budget: int) -> int:
    """The most of Stage 1 that Stage 2 reads: what one Stage 1 call may write (its output budget),
    and a quarter more for the estimate's error on JSON, so a one-group Stage 1 goes whole; a big
    trace's merged groups beyond it are condensed (the whole is in the store as a file)."""
    return stage1_budget + stage1_budget // 4


def stage1_evidence(data: Mapping[str, Any]) -> dict[str, Any]:
    """What Stage 3 reads of Stage 1: its events and evidence, the timeline entries of the runs it
    flagged (error, partial, or an event's run), and every run in order as one line."""
    marked = {e["run_id"] for e in data["events"] if e.get("run_id")}
    flagged = [t for t in data["timeline"] if t["status"] in ("error", "partial") or t["run_id"] in marked]
    runs = [f"{t['sequence']} {t['run_id']} {t['run_name']} ({t['status']})" for t in data["timeline"]]
    return {"events": data["events"], "evidence": data["evidence"], "flagged_runs": flagged, "runs": runs}


def stage2_gaps(data: Mapping[str, Any]) -> dict[str, Any]:
    """What stages 3 and 4 read of Stage 2: the clauses not met, and what it found missing or wrong."""
    return {
        "expectations": [e for e in data["expectations"] if e["status"] != "met"],
        "missing_context": data["missing_context"],
        "incorrect_assumptions": data["incorrect_assumptions"],
        "suggested_focus_areas": data["suggested_focus_areas"],
    }


def stage3_findings(data: Mapping[str, Any]) -> dict[str, Any]:
    """What Stage 4 reads of Stage 3: everything but its long prose (`detailed_analysis`) and the
    errors' verbatim quotes (verified against the runs already; the findings cite files)."""
    out = {k: v for k, v in data.items() if k != "detailed_analysis"}
    out["errors"] = [{k: v for k, v in e.items() if k != "evidence"} for e in data.get("errors", [])]
    return out


VIEWS = {
    ("stage3", "stage1"): stage1_evidence,
    ("stage3", "stage2"): stage2_gaps,
    ("stage4", "stage2"): stage2_gaps,
    ("stage4", "stage3"): stage3_findings,
}


def _short(value: Any, text: int, items: int) -> Any:
    if isinstance(value, str):
        return _cut(value, text)
    if isinstance(value, list):
        return [_short(v, text, items) for v in value[:items]]
    if isinstance(value, dict):
        return {k: _short(v, text, items) for k, v in value.items()}
    return value


def shrunk(data: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """`data` as is when its compact JSON fits `max_tokens`, else shortened in steps (long texts
    cut, lists kept to their first items; each item keeps its shape, and a `shortened` line says
    what was cut), the first step that fits; the last step (texts of 20 characters, no list items)
    fits any ceiling of a few dozen tokens."""
    if estimate_tokens(compact_json(data)) <= max_tokens:
        return data
    for text, items in ((400, 40), (200, 20), (120, 10), (80, 5), (40, 2), (20, 0)):
        note = f"texts cut to {text} characters, lists to their first {items} items, for room"
        smaller = {"shortened": note, **_short(data, text, items)}
        if estimate_tokens(compact_json(smaller)) <= max_tokens:
            return smaller
    return smaller


def pasted(stage: str, prior: Mapping[str, Any]) -> dict[str, Any]:
    """The prompt slots of `stage`: each earlier stage's JSON-ready output as the stage reads it
    (its view, cut to its ceiling), a string (a plan's placeholder) as is, and Stage 4's Stage 1
    slot a line saying it is not repeated. Stage 2's Stage 1 is condensed by `fitted_prior`."""
    slots: dict[str, Any] = {}
    for key, value in prior.items():
        view = VIEWS.get((stage, key))
        ceiling = PASTED_TOKENS[stage][key] if view is not None else None
        slots[key] = value if isinstance(value, str) or ceiling is None else shrunk(view(value), ceiling)
    if stage == "stage4":
        slots["stage1"] = STAGE1_NOT_REPEATED
    return slots


def pasted_worst(stage: str, prior: str, whole: int, stage1_budget: int) -> int:
    """The most tokens `prior`'s output takes in `stage`'s prompt, for an output of at most
    `whole` tokens: its ceiling (`stage1_budget`, one Stage 1 call's output budget, for Stage 1 in
    Stage 2; 0 where it is not pasted)."""
    ceilings = PASTED_TOKENS.get(stage, {})
    if prior not in ceilings:
        return 0
    return min(whole, ceilings[prior] or stage1_ceiling(stage1_budget))


async def fitted_prior(
    calls: StageCalls,
    store: StoreKeeper,
    run: AnalysisRun,
    stage: Stage,
    prior: Mapping[str, Any],
    expectation_text: str | None,
) -> tuple[dict[str, Any], int, list[str]]:
    """The prior stages' JSON for `stage`'s prompt (`pasted`: what the stage reads of each), Stage
    1 condensed for Stage 2 beyond its ceiling or when it would not fit the input budget (the full
    Stage 1 then goes to the store as a file, and a note says so; read with no store, into half of
    the budget, the other half left for the runs read inline)."""

    def fit() -> tuple[dict[str, Any], TraceAnalysisOutput | None, int]:  # a big Stage 1 is CPU work: off the loop
        prior_json = pasted(stage.key, {k: v.model_dump(mode="json") for k, v in prior.items()})
        if "stage1" not in prior or stage.key != "stage2":
            return prior_json, None, 0
        empty = stage_user_text(
            stage, {**prior_json, "stage1": ""}, expectation_text=expectation_text, notes=[STAGE1_FILE_NOTE]
        )
        body = calls.body(stage, empty, run.store_id or PLANNED_STORE, results=calls.results(stage, run))
        room = calls.input_budget - calls.worst_input(body, run.store_id)
        # read with no store, the runs that matter come inline too: Stage 1 gets half the room
        room = room // 2 if run.reading == "none" else room
        fitted, level = condense_stage1(prior["stage1"], min(room, stage1_ceiling(calls.max_output_tokens["stage1"])))
        return prior_json, fitted, level

    prior_json, fitted, level = await in_worker(fit)
    if fitted is None:
        return prior_json, 0, []
    if level == 0:
        return prior_json, 0, []
    log.info(
        "%s: stage 1 condensed (level %d) to its ceiling here or the input budget of %d tokens",
        stage.key,
        level,
        calls.input_budget,
    )
    prior_json["stage1"] = fitted.model_dump(mode="json")
    if run.store_id and stage.searches:
        text = await in_worker(stage1_file_text, prior["stage1"])
        await store.add_file(run, f"{safe_name(run.trace_id or 'trace')}_stage1_full.md", text)
        return prior_json, level, [STAGE1_FILE_NOTE]
    return prior_json, level, []
