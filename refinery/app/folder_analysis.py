"""One trace analysed into one folder: lock, inputs record, fresh or resume, analysis, usage, report.

Why one function: the command line, `batch`, the MCP server and the demo each did this on their
own, and had drifted (the demo took no lock; only the command line could start over). Each now
calls `analyze_into`, so a folder is claimed, checked, filled and reported on the same way
whoever asks. Blocking work — digesting the trace file, writing the report — runs off the event
loop, and the analysis's rendered files are deleted before it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refinery.analysis.analyst_base import ProgressCallback
from refinery.analysis.output_folder import (
    INPUTS_ARTIFACT,
    OutputFolder,
    TraceWatch,
    inputs_record,
    redaction_setting,
)
from refinery.analysis.stage_results import StagedAnalysisResult
from refinery.analysis.staged_failure_analyst import IndexingProgress, StagedFailureAnalyst
from refinery.core.artifacts import read_json, write_json_atomic
from refinery.core.host_models import as_expectation, as_trace
from refinery.core.interfaces import FileContents
from refinery.core.models import DomainExpertExpectation, Trace
from refinery.core.offload import in_worker, off_loop
from refinery.errors import RefineryError
from refinery.report.outputs import usage_summary, write_outputs
from refinery.traces.redact import active_patterns

__all__ = ["FolderAnalysis", "analyze_into"]


@dataclass(frozen=True)
class FolderAnalysis:
    """What `analyze_into` made: the result, its usage with costs, and the files written."""

    result: StagedAnalysisResult
    usage: dict[str, Any]
    files: list[str]
    folder: Path


async def analyze_into(
    folder: str | Path,
    trace: Trace | Any | None,
    expectation: DomainExpertExpectation | Any,
    *,
    analyst: StagedFailureAnalyst,
    prompts: FileContents | None = None,
    evals: FileContents | None = None,
    trace_file: str | Path | None = None,
    store_id: str | None = None,
    until_stage: int = 4,
    fresh: bool = False,
    progress: ProgressCallback | None = None,
    on_indexing: IndexingProgress | None = None,
    usage_notes: Mapping[str, Any] | None = None,
    prices: Mapping[str, tuple[float, float, float]] | None = None,
) -> FolderAnalysis:
    """Analyse `trace` (or, with `trace=None`, the store `store_id`) into `folder`.

    The folder is locked for the run and must hold results of the same inputs (`inputs.json`),
    else it is refused before anything is uploaded — unless `fresh`, which deletes its recorded
    store and results first. With `trace_file`, the file is checked before each stage: a trace
    changed under the run stops it. `usage_notes` are added to `usage.json` (the demo's stand-in
    notice); `prices` replaces the price table (the Batch API's rate). The report embeds the
    files the analysis sent, which are deleted afterwards.
    """
    folder = Path(folder)
    trace = as_trace(trace) if trace is not None else None
    expectation = as_expectation(expectation)
    watch = await off_loop(lambda _stop: TraceWatch(trace_file)) if trace_file is not None else None

    async def heard(stage: str, status: str, info: dict[str, Any]) -> None:
        if watch is not None:  # raises, before the stage's calls, if the trace changed
            await asyncio.to_thread(watch.progress, stage, status, info)
        if progress is not None:
            said = progress(stage, status, info)
            if asyncio.iscoroutine(said):
                await said

    record = inputs_record(
        trace_id=analyst.sent_id(trace.trace_id) if trace is not None else None,
        trace_digest=watch.digest if watch is not None else None,
        model=analyst.model,
        expectation=expectation.model_dump(),
        prompts=prompts,
        evals=evals,
        settings={**analyst.answer_settings(), **await _reading(analyst, trace, store_id)},
        redaction=redaction_setting(
            analyst.redact, [p.pattern for p in (*analyst.redact_patterns, *active_patterns())]
        ),
    )
    earlier = None if fresh else await off_loop(lambda _stop: _recorded_wire(folder))
    async with OutputFolder(folder, record, fresh=fresh, discard=analyst.discard_recorded):
        try:
            result = await analyst.analyze(
                trace,
                expectation,
                prompts,
                evals,
                store_id=store_id,
                until_stage=until_stage,
                on_progress=on_indexing,
                artifacts_dir=folder,
                progress=heard,
            )
        finally:
            await _record_wire(folder, record, getattr(analyst, "wire", None) or earlier)
        try:
            usage = {**usage_summary(result, analyst.base_model, result.redactions, prices), **dict(usage_notes or {})}
            files = await off_loop(lambda _stop: write_outputs(folder, result, trace, usage, result.files))
        finally:
            await _released(result)
    return FolderAnalysis(result, usage, files, folder)


async def _released(result: StagedAnalysisResult) -> None:
    """`result.release()` in refinery's worker: deleting a big trace's spool and freeing its file
    layouts (tens of thousands of objects) held the host's loop 128 ms at 30 MB. Cancelled while it
    runs, the release is done here too (a second one does nothing)."""
    try:
        await asyncio.shield(in_worker(result.release))
    except asyncio.CancelledError:
        result.release()
        raise


def _recorded_wire(folder: Path) -> str | None:
    """The wire a folder's `inputs.json` says its results were made over, if it says one."""
    try:
        recorded = read_json(folder / INPUTS_ARTIFACT, follow=False)
    except RefineryError:  # a link in its place: the output folder refuses it, with its own message
        return None
    wire = recorded.get("api") if isinstance(recorded, dict) else None
    return wire if isinstance(wire, str) else None


async def _record_wire(folder: Path, record: Mapping[str, Any], wire: str | None) -> None:
    """`inputs.json` with `"api"`: the wire the results were made over (`responses` / `chat`),
    known once the first call answered (`api="auto"`), else the one recorded before (a rerun that
    only resumed makes no call). Recorded, never compared on a resume: the same requests to the
    same model over either wire make results that may be continued."""
    if wire is not None:
        await off_loop(lambda _stop: write_json_atomic(folder / INPUTS_ARTIFACT, {**record, "api": wire}))


async def _reading(analyst: Any, trace: Any, store_id: str | None) -> dict[str, str]:
    """`{"store": "hosted" | "none"}`: how the analysis will read the trace (decided for `auto`
    from the endpoint's address, with no request), so results read inline and results read from
    a store are never mixed in a folder (one recorded before this key existed is not checked)."""
    choose = getattr(analyst, "store_choice", None)
    if choose is None or trace is None:
        return {}
    return {"store": choose(store_id).store}
