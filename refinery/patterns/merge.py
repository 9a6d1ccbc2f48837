"""The model's pass over failure patterns: merge the groups that describe one cause, split a group
that holds several, and name each.

Why: the deterministic pass (`refinery.patterns.grouping`) groups identical error texts, but two wordings
of one cause ("timeout calling lookup_order", "lookup_order gave no answer in 30 s") stay apart,
a group keyed on the diagnosis's type and categories may hold several causes, and a normalised
error text is no title. One structured-output call (strict schema, no tools) over the groups'
compact summaries — each with its traces' root causes — merges, splits and names them. A pattern
takes whole groups (`groups`) and single traces out of groups it splits (`traces`). The model may
only use groups and traces it was shown: ids it invents are ignored, each group or trace counts
once (the first pattern to take it), and what it leaves out stays in its group.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
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
    "of failed runs, each with its id, its failing run and normalised error, its size, and its traces with "
    "the root cause written for each. Merge groups only when they describe the same underlying cause: list "
    "their ids in `groups`. Split a group only when its traces' root causes show different causes: list its "
    "traces one by one, by name, in `traces` of the patterns they belong to. Name each resulting pattern with "
    "a short title, the cause in one sentence, the agents or tools it affects, and the fix most likely to "
    "remove it. Use every group id or trace name at most once; a group you neither list nor split stays as it is."
)
MAX_OUTPUT_TOKENS = 3000
TRACES_SHOWN = 12  # a group's traces listed with their root causes (the rest move with the group)
CAUSE_CHARS = 300  # of each root cause: enough to tell causes apart, bounded for a big batch


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MergedPattern(_Strict):
    title: str
    cause: str
    affected: list[str]
    suggested_fix: str
    groups: list[str]  # the ids of the whole groups it holds
    traces: list[str]  # single traces it takes out of groups it splits


class PatternMergeOutput(_Strict):
    patterns: list[MergedPattern]


MERGE_SCHEMA = make_strict(PatternMergeOutput.model_json_schema())


def merge_body(
    patterns: Sequence[Pattern],
    root_causes: Mapping[str, Sequence[str]],
    model: str,
    trace_causes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The request (pure): the groups' compact summaries, the strict schema, no tools. With
    `trace_causes` (trace name → root cause) each group lists its traces with their causes, so
    the model can split it; else its first root causes (`root_causes`, by group id)."""
    groups = []
    for p in patterns:
        group: dict[str, Any] = {"id": p.id, "pattern": p.title, "traces": p.count}
        if trace_causes:
            group["trace root causes"] = [
                {"trace": t, "root cause": trace_causes.get(t, "")[:CAUSE_CHARS]} for t in p.traces[:TRACES_SHOWN]
            ]
        else:
            group["root causes"] = list(root_causes.get(p.id, []))[:3]
        groups.append(group)
    return build_responses_body_no_tools(
        model,
        SYSTEM,
        "Groups of failed runs:\n" + json.dumps(groups, ensure_ascii=False, indent=1),
        MERGE_SCHEMA,
        max_output_tokens=MAX_OUTPUT_TOKENS,
        schema_name="failure_patterns",
    )


def _part(group: Pattern, traces: list[str], per_trace: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """The figures of some of a group's traces: the group's own when it is all of them, else each
    trace's (`per_trace`: tokens, cost_usd, duration_s), else the group's shared out by count."""
    if len(traces) == group.count:
        return {
            "count": group.count,
            "share": group.share,
            "tokens": group.tokens,
            "cost_usd": group.cost_usd,
            "wall_s": group.wall_s,
        }
    k = len(traces) / group.count if group.count else 0.0
    if per_trace is not None and all(t in per_trace for t in traces):
        rows = [per_trace[t] for t in traces]
        tokens, wall = sum(int(r.get("tokens") or 0) for r in rows), sum(float(r.get("duration_s") or 0) for r in rows)
        cost = total_cost(r.get("cost_usd") for r in rows)
    else:
        tokens, wall = round(group.tokens * k), group.wall_s * k
        cost = None if group.cost_usd is None else group.cost_usd * k
    return {"count": len(traces), "share": group.share * k, "tokens": tokens, "cost_usd": cost, "wall_s": wall}


def _sum(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "count": sum(p["count"] for p in parts),
        "share": round(sum(p["share"] for p in parts), 3),
        "tokens": sum(p["tokens"] for p in parts),
        "cost_usd": total_cost(None if p["cost_usd"] is None else round(p["cost_usd"], 6) for p in parts),
        "wall_s": round(sum(p["wall_s"] for p in parts), 3),
    }


def merged(
    patterns: Sequence[Pattern],
    answer: PatternMergeOutput,
    per_trace: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Pattern]:
    """The patterns after the model's merge and split: only groups and traces it was shown, each
    used once (the first pattern to take it); the traces it left out stay in their groups."""
    by_id = {p.id: p for p in patterns}
    home = {t: p.id for p in patterns for t in p.traces}
    taken: dict[str, int] = {}  # trace → the model's pattern that took it
    for i, m in enumerate(answer.patterns):
        for g in dict.fromkeys(m.groups):
            for t in by_id[g].traces if g in by_id else []:
                taken.setdefault(t, i)
        for t in dict.fromkeys(m.traces):
            if t in home:
                taken.setdefault(t, i)
    out: list[Pattern] = []
    for i, m in enumerate(answer.patterns):
        mine = [t for t in home if taken.get(t) == i]
        if not mine:
            continue
        sources = list(dict.fromkeys(home[t] for t in mine))
        parts = [_part(by_id[g], [t for t in mine if home[t] == g], per_trace) for g in sources]
        first = by_id[sources[0]]
        whole = parts[0]["count"] == first.count  # it holds all of its first group: it keeps that id
        pid = first.id if whole else "p-" + hashlib.sha256("|".join(sorted(mine)).encode()).hexdigest()[:8]
        out.append(
            first.model_copy(
                update={
                    "id": pid,
                    "title": m.title.strip() or first.title,
                    "cause": m.cause.strip() or first.cause,
                    "traces": sorted(mine),
                    **_sum(parts),
                    "affected": [a for a in m.affected if a.strip()],
                    "suggested_fix": m.suggested_fix.strip() or None,
                    "merged_from": sources,
                }
            )
        )
    for p in patterns:  # a group kept whole, or what is left of one the model split
        rest = [t for t in p.traces if t not in taken]
        if len(rest) == p.count:
            out.append(p)
        elif rest:
            out.append(
                p.model_copy(update={"traces": rest, **_sum([_part(p, rest, per_trace)]), "merged_from": [p.id]})
            )
    return ranked(out)


async def merge_patterns(
    client: ResponsesClient,
    patterns: Sequence[Pattern],
    root_causes: Mapping[str, Sequence[str]],
    *,
    model: str = "gpt-4o",
    max_cost_usd: float | None = None,
    per_trace: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[list[Pattern], str | None]:
    """The merged and split patterns, and a note when the call was skipped (no group to split or
    merge, or over `max_cost_usd` in the worst case). `per_trace` (trace name → its outcome's
    root_cause, tokens, cost_usd, duration_s) lets the model see each trace's cause and a split
    pattern count its own figures."""
    if len(patterns) < 2 and not (per_trace and any(p.count > 1 for p in patterns)):
        return list(patterns), None
    causes = {t: str(o.get("root_cause") or "") for t, o in per_trace.items()} if per_trace else None
    body = merge_body(patterns, root_causes, model, causes)
    worst = estimate_cost_usd({"input_tokens": len(json.dumps(body)) // 3, "output_tokens": MAX_OUTPUT_TOKENS}, model)
    if max_cost_usd is not None and (worst is None or worst > max_cost_usd):
        return list(patterns), f"pattern merge skipped: its worst case (${worst}) is over --max-cost"
    answer = await client.create_json(body, MERGE_SCHEMA, label="patterns")
    return merged(patterns, PatternMergeOutput.model_validate(answer.data), per_trace), None
