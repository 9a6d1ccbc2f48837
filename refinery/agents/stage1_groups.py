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

from refinery.agents.analysis_run import AnalysisRun, StageGroup, group_filter
from refinery.agents.checkpoints import Checkpoints
from refinery.agents.stage_calls import StageCalls, record_check
from refinery.agents.staged_schemas import TraceAnalysisOutput
from refinery.agents.stages import STAGE_BY_KEY, GroupNote, stage_user_text
from refinery.agents.verification import Verification
from refinery.integrations.response_output import CallUsage

Emit = Callable[..., Awaitable[None]]


async def analyse_groups(
    calls: StageCalls, checkpoints: Checkpoints, run: AnalysisRun, emit: Emit, concurrency: int
) -> tuple[list[TraceAnalysisOutput], CallUsage]:
    """Every group's Stage 1 output, in group order, and their usage summed."""
    stage = STAGE_BY_KEY["stage1"]
    groups: list[StageGroup | None] = list(run.groups) if len(run.groups) > 1 else [None]
    n = len(groups)
    results: list[tuple[Any, CallUsage] | None] = [None] * n
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(i: int, group: StageGroup | None) -> None:
        if group is None:
            part, usage, check = await calls.call(run, stage, stage_user_text(stage))
            record_check(run, stage, check)
            results[i] = (part, usage)
            return
        done = checkpoints.load_group(run.trace_id, group.number, n)
        if done is not None:  # paid for in an earlier run
            part, usage, checked = done
            if checked:
                record_check(run, stage, Verification(checked["cited"], checked["verified"], checked["unverified"]))
            await emit("stage1.group", "end", group=group.number, groups=n, tokens=usage.total_tokens, resumed=True)
            results[i] = (part, usage)
            return
        async with gate:
            await emit("stage1.group", "start", group=group.number, groups=n)
            note = GroupNote(group.number, n, group.first_run, group.last_run) if group.first_run else None
            part, usage, check = await calls.call(run, stage, stage_user_text(stage, group=note), filters=group_filter(group))
        checkpoints.save_group(run.trace_id, group.number, n, part, usage, record_check(run, stage, check))
        await emit("stage1.group", "end", group=group.number, groups=n, tokens=usage.total_tokens)
        results[i] = (part, usage)

    tasks = [asyncio.create_task(one(i, g)) for i, g in enumerate(groups)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    done = [r for r in results if r is not None]  # every group, once gather returned
    return [part for part, _ in done], CallUsage.total((usage for _, usage in done), "stage1")
