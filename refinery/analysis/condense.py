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


async def fitted_prior(
    calls: StageCalls,
    store: StoreKeeper,
    run: AnalysisRun,
    stage: Stage,
    prior: Mapping[str, Any],
    expectation_text: str | None,
) -> tuple[dict[str, Any], int, list[str]]:
    """The prior stages' JSON for `stage`'s prompt, Stage 1 condensed when it would not fit the
    input budget (the full Stage 1 then goes to the store as a file, and a note says so; read with
    no store, into half of it, the other half left for the runs read inline)."""

    def fit() -> tuple[dict[str, Any], TraceAnalysisOutput | None, int]:  # a big Stage 1 is CPU work: off the loop
        prior_json = {k: v.model_dump(mode="json") for k, v in prior.items()}
        if "stage1" not in prior:
            return prior_json, None, 0
        empty = stage_user_text(
            stage, {**prior_json, "stage1": ""}, expectation_text=expectation_text, notes=[STAGE1_FILE_NOTE]
        )
        overhead = calls.worst_input(stage, calls.body(stage, empty, run.store_id or PLANNED_STORE), run.store_id)
        room = calls.input_budget - overhead
        # read with no store, the runs that matter come inline too: Stage 1 gets half the room
        fitted, level = condense_stage1(prior["stage1"], room // 2 if run.reading == "none" else room)
        return prior_json, fitted, level

    prior_json, fitted, level = await in_worker(fit)
    if fitted is None:
        return prior_json, 0, []
    if level == 0:
        return prior_json, 0, []
    log.info(
        "%s: stage 1 condensed (level %d) to fit the input budget of %d tokens", stage.key, level, calls.input_budget
    )
    prior_json["stage1"] = fitted.model_dump(mode="json")
    if run.store_id and stage.searches:
        text = await in_worker(stage1_file_text, prior["stage1"])
        await store.add_file(run, f"{safe_name(run.trace_id or 'trace')}_stage1_full.md", text)
        return prior_json, level, [STAGE1_FILE_NOTE]
    return prior_json, level, []
