"""The model's pass over failure patterns: merge the groups that describe one cause, and name each.

Why: the deterministic pass (`refinery.patterns.grouping`) groups identical error texts, but two wordings
of one cause ("timeout calling lookup_order", "lookup_order gave no answer in 30 s") stay apart,
and a normalised error text is no title. One structured-output call (strict schema, no tools) over
the groups' compact summaries merges and names them. The model may only merge groups it was shown:
ids it invents are ignored, and a group it leaves out stays as it was.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from refinery.core.pricing import estimate_cost_usd
from refinery.core.strict_schema import make_strict
from refinery.patterns.grouping import Pattern, ranked, total_cost
from refinery.wire.responses_client import ResponsesClient
from refinery.wire.responses_request_builder import build_responses_body_no_tools

__all__ = ["MERGE_SCHEMA", "PatternMergeOutput", "merge_body", "merge_patterns", "merged"]

SYSTEM = (
    "You group the failures of an AI agent's runs into the few causes worth fixing. You are given groups "
    "of failed runs, each with its id, its failing run and normalised error, its size, and root causes "
    "written for some of its traces. Merge groups only when they describe the same underlying cause; "
    "name each resulting pattern with a short title, the cause in one sentence, the agents or tools it "
    "affects, and the fix most likely to remove it. List every group id you were given exactly once."
)
MAX_OUTPUT_TOKENS = 3000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MergedPattern(_Strict):
    title: str
    cause: str
    affected: list[str]
    suggested_fix: str
    groups: list[str]  # the ids of the groups it merges


class PatternMergeOutput(_Strict):
    patterns: list[MergedPattern]


MERGE_SCHEMA = make_strict(PatternMergeOutput.model_json_schema())


def merge_body(patterns: Sequence[Pattern], root_causes: dict[str, list[str]], model: str) -> dict[str, Any]:
    """The request (pure): the groups' compact summaries, the strict schema, no tools."""
    groups = [
        {"id": p.id, "pattern": p.title, "traces": p.count, "root causes": root_causes.get(p.id, [])[:3]}
        for p in patterns
    ]
    return build_responses_body_no_tools(
        model,
        SYSTEM,
        "Groups of failed runs:\n" + json.dumps(groups, ensure_ascii=False, indent=1),
        MERGE_SCHEMA,
        max_output_tokens=MAX_OUTPUT_TOKENS,
        schema_name="failure_patterns",
    )


def merged(patterns: Sequence[Pattern], answer: PatternMergeOutput) -> list[Pattern]:
    """The patterns after the model's merge: only groups it was shown, each used once; the rest kept."""
    by_id = {p.id: p for p in patterns}
    used: set[str] = set()
    out: list[Pattern] = []
    for m in answer.patterns:
        members = [by_id[g] for g in dict.fromkeys(m.groups) if g in by_id and g not in used]
        if not members:
            continue
        used.update(p.id for p in members)
        total = sum(p.count for p in members)
        out.append(
            members[0].model_copy(
                update={
                    "title": m.title.strip() or members[0].title,
                    "cause": m.cause.strip() or members[0].cause,
                    "traces": sorted(t for p in members for t in p.traces),
                    "count": total,
                    "share": round(sum(p.share for p in members), 3),
                    "tokens": sum(p.tokens for p in members),
                    "cost_usd": total_cost(p.cost_usd for p in members),
                    "wall_s": round(sum(p.wall_s for p in members), 3),
                    "affected": [a for a in m.affected if a.strip()],
                    "suggested_fix": m.suggested_fix.strip() or None,
                    "merged_from": [p.id for p in members],
                }
            )
        )
    out += [p for p in patterns if p.id not in used]
    return ranked(out)


async def merge_patterns(
    client: ResponsesClient,
    patterns: Sequence[Pattern],
    root_causes: dict[str, list[str]],
    *,
    model: str = "gpt-4o",
    max_cost_usd: float | None = None,
) -> tuple[list[Pattern], str | None]:
    """The merged patterns, and a note when the call was skipped (fewer than two groups, or over
    `max_cost_usd` in the worst case)."""
    if len(patterns) < 2:
        return list(patterns), None
    body = merge_body(patterns, root_causes, model)
    worst = estimate_cost_usd({"input_tokens": len(json.dumps(body)) // 3, "output_tokens": MAX_OUTPUT_TOKENS}, model)
    if max_cost_usd is not None and (worst is None or worst > max_cost_usd):
        return list(patterns), f"pattern merge skipped: its worst case (${worst}) is over --max-cost"
    answer = await client.create_json(body, MERGE_SCHEMA, label="patterns")
    return merged(patterns, PatternMergeOutput.model_validate(answer.data)), None
