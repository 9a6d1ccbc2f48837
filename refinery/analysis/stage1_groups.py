"""Stage 1 of a trace split into groups: each group one call, several at once, each checkpointed.

Why concurrent: a big trace makes hundreds of groups, and one after another at a real 10-30 s a
call that is hours. Calls go out together up to `concurrency` (the client's rate budget still
admits each one), finished groups are written as they arrive, results are kept in group order,
and when one group fails the others in flight are cancelled — what finished stays on disk for
the rerun.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from refinery.analysis.analysis_run import AnalysisRun, StageGroup, group_filter
from refinery.analysis.checkpoints import Checkpoints
from refinery.analysis.inline_reading import stage1_text
from refinery.analysis.stage_calls import StageCalls, record_check
from refinery.analysis.staged_schemas import TraceAnalysisOutput
from refinery.analysis.stages import PLANNED_STORE, STAGE_BY_KEY, GroupNote, inline_files_text, stage_user_text
from refinery.analysis.verification import Verification
from refinery.core.offload import in_worker, off_loop
from refinery.errors import RequestDeferred
from refinery.traces.spool import file_names, file_stats
from refinery.wire.response_output import CallUsage

Emit = Callable[..., Awaitable[None]]
READINGS = ("inline", "search")
FILE_SEPARATOR_TOKENS = 40  # the "===== file: … =====" lines around an inline file, counted high


def inline_filter(group: StageGroup) -> dict[str, Any]:
    """With a group read inline, `file_search` covers everything else: the index, prompts, evals
    and expectations (group 0) and the other groups' runs."""
    return {"type": "ne", "key": "group", "value": group.number}


def group_request(
    calls: StageCalls, run: AnalysisRun, group: StageGroup | None, groups: int, reading: str
) -> tuple[str, dict[str, Any] | None, str]:
    """(user text, file_search filters, reading used) of one Stage 1 call.

    Inline: the group's run files go into the prompt whole, so every run is read, and the store
    is searched for the rest. Search: the model sees what `file_search` returns for the group.
    A group is read by search when there are no rendered files at hand (a store made by
    `refinery init`) or when its inline request would not fit the input budget.
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
            return calls.worst_input(stage, calls.body(stage, text, None, inline=True), None)

        return stage1_text(base, run, group, measure, calls.input_budget), None, "inline"
    if reading == "inline" and group is not None and run.texts is not None:
        # the request's size from the spool's token counts, before any text is built: the empty
        # request, each file, and its two separator lines (a whole counts no more than its parts)
        store, filters = run.store_id or PLANNED_STORE, inline_filter(group)
        empty = calls.worst_input(
            stage, calls.body(stage, stage_user_text(stage, group=note, group_files=""), store, filters), store
        )
        wanted = set(group.files)
        files = sum(tokens + FILE_SEPARATOR_TOKENS for name, _, tokens in file_stats(run.texts.files) if name in wanted)
        if empty + files <= calls.input_budget:
            text = stage_user_text(stage, group=note, group_files=inline_files_text(run.texts.files, wanted))
            return text, filters, "inline"
    return stage_user_text(stage, group=note), search_filters, "search"


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
        room = calls.input_budget - calls.worst_input(stage, calls.body(stage, empty, None, inline=True), None)
        return max(1, min(wanted, room * 9 // 10))
    room = calls.input_budget - calls.worst_input(stage, calls.body(stage, empty, PLANNED_STORE), PLANNED_STORE)
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
            text, filters, readings[number] = await in_worker(group_request, calls, run, group, n, reading)
            part, usage, check = await calls.call(run, stage, text, filters=filters)
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
