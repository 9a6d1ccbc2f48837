"""What a run would send, built offline: the request body of every stage call, in order.

Why here and not in the CLI: it is the analyst's own request building (the same `Stage` table,
prompt filling and `build_request`), run with placeholders where prior-stage JSON will go, so
`refinery plan` shows exactly the bodies a run sends and cannot drift from them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from refinery.analysis.analysis_run import AnalysisRun, StageGroup
from refinery.analysis.condense import PASTED_TOKENS, pasted, pasted_worst
from refinery.analysis.inline_reading import later_stage_text
from refinery.analysis.stage1_groups import group_request
from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.analysis.stages import PLANNED_STORE, STAGE_BY_KEY, retrieval_allowance, stage_user_text
from refinery.analysis.verification import RunTexts
from refinery.core.gc_freeze import objects_frozen, survivors_frozen
from refinery.core.models import DomainExpertExpectation, Trace
from refinery.core.pricing import estimate_cost_usd
from refinery.core.tokens import estimate_body_tokens, estimate_tokens, estimate_tokens_around, joins, piece_count
from refinery.prompts.system_prompts import SYSTEM
from refinery.traces.redact import RedactionReport
from refinery.traces.spool import SpooledFiles, file_stats


def planned_requests(
    analyst: StagedFailureAnalyst, trace: Trace, files: Sequence[tuple[str, str]], expectation: DomainExpertExpectation
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(call name, body) for every `/responses` call of a run, prior-stage JSON as placeholders
    (Stage 4's Stage 1 slot as it is sent: `condense.pasted`). Stage 1 is built as the analyst
    reads it (`stage1_reading`): inline, each group's run files are in its body (every file, and
    no `file_search`, when one call holds every run); stages 2–3 search with a result count sized
    to the store."""
    prior = {f"stage{n}": f"<stage {n} JSON>" for n in (1, 2, 3)}
    if analyst.store == "none":
        yield from _planned_inline(analyst, trace, files, expectation, prior)
        return
    calls = analyst.calls
    groups = analyst.stage1_groups(files)
    run = AnalysisRun(trace_id=trace.trace_id, store_id=PLANNED_STORE, groups=groups, texts=RunTexts(files))
    slots: list[StageGroup | None] = [*groups] or [None]
    stage1 = STAGE_BY_KEY["stage1"]
    for g in slots:
        shape = group_request(calls, run, g, len(groups), analyst.stage1_reading)
        name = f"stage1 (group {g.number}/{len(groups)})" if g is not None and len(groups) > 1 else "stage1"
        if shape.reading != analyst.stage1_reading:
            name += f" (read by {shape.reading})"
        body = calls.body(stage1, shape.text, PLANNED_STORE, shape.filters, inline=shape.whole, results=shape.results)
        yield name, body
    expect_text = analyst.expectation_text(expectation, RedactionReport())  # counted by the rendering
    for key in ("stage2", "stage3", "stage4"):
        stage = STAGE_BY_KEY[key]
        text = stage_user_text(stage, pasted(key, prior), expectation_text=expect_text if key == "stage2" else None)
        yield key, calls.body(stage, text, PLANNED_STORE, results=calls.results(stage, run))


def _planned_inline(
    analyst: StagedFailureAnalyst,
    trace: Trace,
    files: Sequence[tuple[str, str]],
    expectation: DomainExpertExpectation,
    prior: dict[str, str],
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The bodies of a run with no store (`store="none"`): no tools, every stage's reading inline;
    stages 2–4 read the runs the trace says failed (Stage 1's flags are not known yet) in half the
    budget, the other half left for Stage 1's JSON."""
    calls = analyst.calls
    groups = analyst.stage1_groups(files, "none")
    failed = tuple(r.id for r in trace.get_failed_runs())
    run = AnalysisRun(trace_id=trace.trace_id, groups=groups, texts=RunTexts(files), reading="none", failed_runs=failed)
    for g in [*groups] or [None]:
        text = group_request(calls, run, g, len(groups), analyst.stage1_reading).text
        name = f"stage1 (group {g.number}/{len(groups)})" if g is not None and len(groups) > 1 else "stage1"
        yield name, calls.body(STAGE_BY_KEY["stage1"], text, None, inline=True)
    expect_text = analyst.expectation_text(expectation, RedactionReport())
    for key in ("stage2", "stage3", "stage4"):
        stage = STAGE_BY_KEY[key]
        base = stage_user_text(stage, pasted(key, prior), expectation_text=expect_text if key == "stage2" else None)
        text = later_stage_text(calls, run, stage, base, None, budget=calls.input_budget // 2)
        yield key, calls.body(stage, text, None, inline=True)


@dataclass(frozen=True)
class PlannedCall:
    """One planned `/responses` call as measured; its body kept only when asked for (read inline,
    a big trace's Stage 1 bodies hold the whole trace)."""

    name: str
    input_tokens: int
    max_output_tokens: int
    body: dict[str, Any] | None = None
    retrieval: int = 0  # what its `file_search` may add: its result count of whole chunks


def measure(
    bodies: Iterable[tuple[str, dict[str, Any]]],
    keep_bytes: int | None = 0,
    files: Sequence[tuple[str, str]] | None = None,
) -> list[PlannedCall]:
    """Each call's name and token counts, one body at a time; bodies kept while they add up to
    `keep_bytes` of JSON (None: all of them). The objects that exist (the trace, its rendering's
    records) are out of the garbage collector's passes meanwhile (`core.gc_freeze`). With `files`
    (spooled, so each file's count is known), a file a body holds whole is not counted again
    (`_counted_with_files`): the same counts."""
    count = _counted_with_files(files) if isinstance(files, SpooledFiles) else estimate_tokens
    calls, kept = [], 0
    with objects_frozen():
        for name, body in bodies:
            room = keep_bytes is not None and 0 < keep_bytes and kept < keep_bytes
            room = room and kept + _json_chars_at_least(body) <= keep_bytes  # else it cannot fit: not dumped
            size = len(json.dumps(body)) if room else 0  # measured only while there is room for it
            keep = keep_bytes is None or (room and kept + size <= keep_bytes)
            kept += size if keep else 0
            tokens, budget = estimate_body_tokens(body, count), int(body["max_output_tokens"])
            calls.append(PlannedCall(name, tokens, budget, body if keep else None, retrieval_allowance(body)))
            survivors_frozen()
    return calls


def _json_chars_at_least(body: dict[str, Any]) -> int:
    """At most `len(json.dumps(body))`: the characters of its input texts, each written as one
    character of JSON or more. Why: a big trace's Stage 1 bodies hold its files, and each was
    serialised whole only to learn that it would not fit in what `plan --json` keeps."""
    return sum(
        len(part["text"])
        for msg in body.get("input", [])
        if isinstance(msg, dict)
        for part in msg.get("content", [])
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    )


_FILE_HEAD = "===== file: "  # how an inline file opens in a prompt (`stages.inline_files_text`)


def _counted_with_files(files: SpooledFiles) -> Callable[[str], int]:
    """`estimate_tokens` of a prompt, with the spooled files it holds whole taken at the spool's
    counts (`tokens.estimate_tokens_around`).

    Why: a big trace's Stage 1 bodies hold every rendered file again, and counting them a second
    time was most of measuring its plan. A file is taken as found only where the prompt holds it
    exactly as `stages.inline_files_text` puts it — its opening line, its text as spooled less its
    trailing white space, its closing line — checked against the spool's text, so the count is
    `estimate_tokens`' whatever the prompt holds (a file cut, or a trace quoting those lines,
    is counted as text)."""
    index = {name: i for i, name in enumerate(files.names)}

    def spans(text: str) -> Iterator[tuple[int, int, int]]:
        pos = text.find(_FILE_HEAD)
        while pos >= 0:
            name_end = text.find(" =====\n", pos + len(_FILE_HEAD))
            i = index.get(text[pos + len(_FILE_HEAD) : name_end]) if name_end >= 0 else None
            found = _file_span(text, name_end + len(" =====\n"), files, i) if i is not None else None
            if found is not None:
                yield found
            pos = text.find(_FILE_HEAD, found[1] if found is not None else pos + 1)

    return lambda text: estimate_tokens_around(text, spans(text)) if _FILE_HEAD in text else estimate_tokens(text)


def _file_span(text: str, start: int, files: SpooledFiles, i: int) -> tuple[int, int, int] | None:
    """(start, end, pieces) of spooled file `i` where `text` holds it at `start`, as an inline file
    (its text less trailing white space, then its closing line); None where it does not."""
    whole = files.text(i)
    shown = whole.rstrip()
    end = start + len(shown)
    closing = f"\n===== end of file: {files.names[i]} ====="
    if not shown or not text.startswith(shown, start) or not text.startswith(closing, end):
        return None
    trailing = whole[len(shown) :]
    if joins(shown, trailing):
        return None
    pieces = files.tokens[i] if len(whole) >= 64 else piece_count(whole)
    return start, end, pieces - piece_count(trailing)


def naive_prompt_tokens(
    file_tokens: int, analyst: StagedFailureAnalyst, expectation: DomainExpertExpectation | None
) -> int:
    """The input tokens of the naive one-prompt baseline: the whole rendered trace (every file)
    and the instructions — refinery's system prompt and the expectation — sent once, in one
    request. What refinery's stages cost is read against it: they send the trace in groups, the
    earlier stages' JSON and retrieved chunks on top, to keep every request within the budget and
    every claim checkable."""
    expect = analyst.expectation_text(expectation, RedactionReport()) if expectation is not None else ""
    return file_tokens + estimate_tokens(SYSTEM.text) + estimate_tokens(expect)


def plan_summary(
    analyst: StagedFailureAnalyst,
    trace: Trace,
    files: Sequence[tuple[str, str]],
    calls: Sequence[PlannedCall],
    *,
    latency_s: float = 15.0,
    expectation: DomainExpertExpectation | None = None,
    prices: Mapping[str, tuple[float, float, float]] | None = None,
) -> dict[str, Any]:
    """What a run would cost, worst case: calls, input and output tokens per stage (the chunks
    each call's `file_search` may add, and the earlier stages' JSON as later stages would paste it:
    each at its ceiling in that stage, `condense.PASTED_TOKENS`, Stage 1's condensed to fit),
    estimated cost, duration at `latency_s` a call, and any request over the context budget.
    `calls` are `planned_requests`' bodies as `measure` counted them: built once, summed here.

    Stage 1's output size is unknown before the run; it is taken at its worst (every group using
    its whole output budget), capped where condensation would cap it. `prices`: another price
    table (the Batch API's rate, `core.pricing.batch_prices`).
    """
    budget = analyst.calls.input_budget
    groups = max(1, sum(1 for c in calls if c.name.startswith("stage1")))
    out_budget = analyst.max_output_tokens
    stage1_json = groups * out_budget["stage1"]  # what later stages read of it: at most its ceiling, and what fits
    stages: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    expected_input = 0  # outputs at half their budget: what a run usually pastes
    for call in calls:
        name = call.name
        key = name.split(" ")[0]
        known = call.input_tokens
        allowance = analyst.calls.search_allowance if analyst.store == "none" else call.retrieval
        room = max(0, budget - known - allowance)
        prior = expected = 0
        for p in sorted(PASTED_TOKENS.get(key, {})):
            whole = stage1_json if p == "stage1" else out_budget[p]
            worst, half = (pasted_worst(key, p, w, out_budget["stage1"]) for w in (whole, whole // 2))
            prior += min(worst, room) if p == "stage1" else worst
            expected += min(half, room) if p == "stage1" else half
        total_in = known + allowance + prior
        expected_input += known + allowance + expected
        row = stages.setdefault(key, {"calls": 0, "input_tokens": 0, "output_tokens": 0, "largest_request": 0})
        row["calls"] += 1
        row["input_tokens"] += total_in
        row["output_tokens"] += call.max_output_tokens  # the answer, and a reasoning model's thinking
        row["largest_request"] = max(row["largest_request"], total_in)
        if total_in > budget:
            warnings.append(f"{name}: about {total_in} input tokens, over the budget of {budget} for {analyst.model}")
    if stage1_json > budget:
        warnings.append(
            f"stage 1 may produce ~{stage1_json} tokens of JSON: later stages get it condensed (the full result is "
            f"uploaded to the store)"
        )
    for row in stages.values():
        row["estimated_cost_usd"] = estimate_cost_usd(row, analyst.base_model, prices)
    costs = [r["estimated_cost_usd"] for r in stages.values()]
    waves = -(-groups // analyst.stage1_concurrency)
    file_tokens = sum(tokens for _, _, tokens in file_stats(files))
    naive = naive_prompt_tokens(file_tokens, analyst, expectation)
    total_input = sum(r["input_tokens"] for r in stages.values())
    return {
        "trace_id": trace.trace_id,
        "runs": len(trace.runs),
        "failed_runs": len(trace.get_failed_runs()),
        "files": len(files),
        "file_tokens": file_tokens,
        "groups": groups,
        "model": analyst.model,
        "store": analyst.store,
        "input_budget": budget,
        "stages": stages,
        "total": {
            "calls": sum(r["calls"] for r in stages.values()),
            "input_tokens": total_input,
            "output_tokens": sum(r["output_tokens"] for r in stages.values()),
            "estimated_cost_usd": None
            if any(c is None for c in costs)
            else round(sum(c for c in costs if c is not None), 4),
            "estimated_duration_s": round((waves + 3) * latency_s, 1),
            "expected_input_tokens": expected_input,
        },
        "naive_prompt": {
            "input_tokens": naive,
            "planned_vs_naive": round(total_input / naive, 2) if naive else None,
            "expected_vs_naive": round(expected_input / naive, 2) if naive else None,
        },
        "latency_s": latency_s,
        "warnings": warnings,
        "notes": "worst case: every call uses its whole output budget and file_search fills its result count; "
        "verification re-asks (at most one a call) and indexing time are not included",
    }
