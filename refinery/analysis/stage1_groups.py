"""Stage 1 of a trace split into groups: each group one call, several at once, each checkpointed.

Why concurrent: a big trace makes hundreds of groups, and one after another at a real 10-30 s a
call that is hours. Calls go out together up to `concurrency` (the client's rate budget still
admits each one), finished groups are written as they arrive, results are kept in group order,
and when one group fails the others in flight are cancelled — what finished stays on disk for
the rerun.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from refinery.analysis.analysis_run import AnalysisRun, StageGroup, group_filter
from refinery.analysis.checkpoints import Checkpoints
from refinery.analysis.inline_reading import stage1_text
from refinery.analysis.stage_calls import StageCalls, file_totals, record_check
from refinery.analysis.staged_schemas import TraceAnalysisOutput
from refinery.analysis.stages import (
    LOOKUP_RESULTS,
    PLANNED_STORE,
    STAGE_BY_KEY,
    GroupNote,
    inline_files_text,
    stage_user_text,
)
from refinery.analysis.verification import Verification
from refinery.core.offload import in_worker, off_loop
from refinery.errors import RequestDeferred
from refinery.traces.spool import file_names
from refinery.wire.response_output import CallUsage

Emit = Callable[..., Awaitable[None]]
READINGS = ("inline", "search")


def inline_filter(group: StageGroup) -> dict[str, Any]:
    """With a group read inline, `file_search` covers everything else: the index, prompts, evals
    and expectations (group 0) and the other groups' runs."""
    return {"type": "ne", "key": "group", "value": group.number}


@dataclass(frozen=True)
class GroupCall:
    """One Stage 1 call as `group_request` shapes it: its user text, its `file_search` filter,
    how the group is read (`inline` / `search`), whether the call holds every file (`whole`: no
    `file_search` tool, nothing left to retrieve) and its result count."""

    text: str
    filters: dict[str, Any] | None
    reading: str
    whole: bool = False
    results: int | None = None


def run_files(run: AnalysisRun) -> set[str]:
    """The names of the rendered files that hold runs (the rest: index, prompts, evals, expectations)."""
    return set() if run.texts is None else set(file_totals(run.texts).run_files)


def whole_text(files: Sequence[tuple[str, str]]) -> str:
    """Every file for a Stage 1 call that reads them all: the index first (the task, the agents'
    system prompts, the tools, the table of runs: what the runs are read against), then the rest
    in the rendering's order."""
    names = file_names(files)
    index = {n for n in names if n.endswith("_index.md")}
    parts = [inline_files_text(files, index), inline_files_text(files, set(names) - index)]
    return "\n\n".join(p for p in parts if p)


def group_request(
    calls: StageCalls, run: AnalysisRun, group: StageGroup | None, groups: int, reading: str
) -> GroupCall:
    """The shape of one Stage 1 call.

    Inline: the group's run files go into the prompt whole, so every run is read, and the store
    is searched for the rest (a result count sized to the store). When the group holds every run
    file of the trace and the other files fit beside them, they go in too and the call has no
    `file_search` tool: nothing would be left to retrieve. Search: the model sees what
    `file_search` returns for the group. A group is read by search when there are no rendered
    files at hand (a store made by `refinery init`) or when its inline request would not fit the
    input budget.
    """
    stage = STAGE_BY_KEY["stage1"]
    note = (
        GroupNote(group.number, groups, group.first_run, group.last_run)
        if group is not None and groups > 1 and group.first_run
        else None
    )
    search_filters = group_filter(group) if group is not None and groups > 1 else None
    if run.reading == "none":  # no store: the group whole, then what else fits, cut with notes
        base = stage_user_text(stage, group=note)

        def measure(text: str) -> int:
            return calls.worst_input(calls.body(stage, text, None, inline=True), None)

        return GroupCall(stage1_text(base, run, group, measure, calls.input_budget), None, "inline", whole=True)
    if reading == "inline" and group is not None and run.texts is not None:
        # the request's size from the spool's token counts, before any text is built: the empty
        # request, each file, and its two separator lines (a whole counts no more than its parts)
        store, filters = run.store_id or PLANNED_STORE, inline_filter(group)
        totals = file_totals(run.texts)
        sizes, wanted = totals.inline_sizes, set(group.files)
        if totals.run_files <= wanted:  # every run in this call: the other files too, and no search, if they fit
            empty = calls.worst_input(
                calls.body(stage, stage_user_text(stage, group=note, whole_files=""), store, inline=True), store
            )
            if empty + sum(sizes.values()) <= calls.input_budget:
                text = stage_user_text(stage, group=note, whole_files=whole_text(run.texts.files))
                return GroupCall(text, None, "inline", whole=True)
        results = calls.results(stage, run, inline=wanted, most=LOOKUP_RESULTS)  # a lookup of what is not inline
        body = calls.body(stage, stage_user_text(stage, group=note, group_files=""), store, filters, results=results)
        if calls.worst_input(body, store) + sum(sizes[n] for n in wanted if n in sizes) <= calls.input_budget:
            text = stage_user_text(stage, group=note, group_files=inline_files_text(run.texts.files, wanted))
            return GroupCall(text, filters, "inline", results=results)
    return GroupCall(
        stage_user_text(stage, group=note), search_filters, "search", results=calls.results(stage, run, sized=False)
    )


def group_tokens(calls: StageCalls, wanted: int, reading: str, store: str = "hosted") -> int:
    """How many tokens of rendered runs one Stage 1 group holds. Read inline, a group's files go
    into the prompt, so a group holds at most what fits the input budget beside the prompt and
    the retrieval allowance (a tenth kept for file separators and the estimate's error); with no
    store (`store="none"`) there is no retrieval allowance."""
    if reading != "inline" and store != "none":
        return wanted
    stage = STAGE_BY_KEY["stage1"]
    empty = stage_user_text(stage, group=GroupNote(1, 2, 1, 1), group_files="")
    if store == "none":
        room = calls.input_budget - calls.worst_input(calls.body(stage, empty, None, inline=True), None)
        return max(1, min(wanted, room * 9 // 10))
    room = calls.input_budget - calls.worst_input(calls.body(stage, empty, PLANNED_STORE), PLANNED_STORE)
    return max(1, min(wanted, room * 9 // 10))


def run_owner(run: AnalysisRun) -> Callable[[str], int | None] | None:
    """run id → the index of the Stage 1 group holding it (for `merge_stage1`), when known."""
    texts = run.texts
    if texts is None or len(run.groups) < 2:
        return None
    group_of = {name: i for i, g in enumerate(run.groups) for name in g.files}
    names = file_names(texts.files)
    return lambda rid: next((group_of[names[i]] for i in texts.where.get(rid, ()) if names[i] in group_of), None)


async def analyse_groups(
    calls: StageCalls, checkpoints: Checkpoints, run: AnalysisRun, emit: Emit, concurrency: int, reading: str = "inline"
) -> tuple[list[TraceAnalysisOutput], CallUsage, dict[int, str]]:
    """Every group's Stage 1 output, in group order, their usage summed, and how each group was
    read (group number → `inline` / `search`; groups resumed from disk are not listed)."""
    stage = STAGE_BY_KEY["stage1"]
    n = max(1, len(run.groups))
    groups: list[StageGroup | None] = list(run.groups) or [None]
    results: list[tuple[Any, CallUsage] | None] = [None] * len(groups)
    readings: dict[int, str] = {}
    gate = asyncio.Semaphore(max(1, concurrency))

    def number_of(group: StageGroup | None) -> int:
        return group.number if group is not None else 1

    # what earlier runs paid for, read before any group starts: the groups then take the gate in
    # their own order (a read finishing first must not let group 3 go before group 1)
    loaded = await in_worker(
        lambda: [checkpoints.load_group(run.trace_id, number_of(g), n) if n > 1 else None for g in groups]
    )

    async def one(i: int, group: StageGroup | None) -> None:
        number = number_of(group)
        done = loaded[i]
        if done is not None:  # paid for in an earlier run
            part, usage, checked = done
            if checked:
                record_check(run, stage, Verification(checked["cited"], checked["verified"], checked["unverified"]))
            await emit("stage1.group", "end", group=number, groups=n, tokens=usage.total_tokens, resumed=True)
            results[i] = (part, usage)
            return
        async with gate:
            if n > 1:
                await emit("stage1.group", "start", group=number, groups=n)
            # reading the group's files and sizing the request is blocking work: off the event loop
            shape = await in_worker(group_request, calls, run, group, n, reading)
            readings[number] = shape.reading
            part, usage, check = await calls.call(
                run, stage, shape.text, filters=shape.filters, inline=shape.whole, results=shape.results
            )
        checked = record_check(run, stage, check)
        if n > 1:
            # an atomic write (fsync) for each group, off the event loop; a group that answered is saved
            # even when another's failure cancels this task (`off_loop` waits for the write to end)
            await off_loop(lambda _stop: checkpoints.save_group(run.trace_id, number, n, part, usage, checked))
            await emit("stage1.group", "end", group=number, groups=n, tokens=usage.total_tokens)
        results[i] = (part, usage)

    tasks = [asyncio.create_task(one(i, g)) for i, g in enumerate(groups)]
    try:
        await asyncio.gather(*tasks)
    except RequestDeferred:
        # a batch engine records requests: every sibling group's goes into the same round
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    done = [r for r in results if r is not None]  # every group, once gather returned
    return [part for part, _ in done], CallUsage.total((usage for _, usage in done), "stage1"), readings
