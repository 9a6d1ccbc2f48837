"""`refinery batch --batch-api`: many traces through the provider's Batch API, round by round.

Why rounds over the one analysis path: every trace is analysed by `analyze_into`, exactly as the
live `batch` does, but its model is a `ResponsesClient` whose transport answers from the
batches' downloaded results (`wire.batch_answers`). A request with no answer yet is recorded and
stops that trace for this round (its Stage 1 siblings recorded too); the stage checkpoints in its
folder make the next round skip what is done. A round is: every trace's waiting requests → JSONL
input files → batches → results → the analyses run again, until no trace waits. Bodies are
deterministic, so a request's `custom_id` (its digest) finds its answer in any later run; reads
are inline (`store="none"`), so no hosted store or tool is needed. Costs are at the batch rate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refinery.analysis.stages import STAGE_ARTIFACTS
from refinery.app.batch import (
    SUMMARY_HTML,
    SUMMARY_JSON,
    SUMMARY_MD,
    BatchItem,
    BatchSummary,
    TraceOutcome,
    _analyze_one,
    previous_summary,
    render_summary_md,
)
from refinery.app.batch_api_state import STATE_DIR, STATE_FILE, RunLock, RunState, load_state, state_dir
from refinery.app.batch_api_submit import Poll, advance, cancel_open, describe, read_results, write_round
from refinery.app.batch_patterns import link_reports, named_patterns
from refinery.core.artifacts import private_dir, read_json, write_json_atomic, write_text_atomic
from refinery.core.pricing import BATCH_PRICE_FACTOR, batch_prices, estimate_cost_usd
from refinery.errors import RequestDeferred, UserInputError
from refinery.patterns.grouping import find_patterns
from refinery.report.batch_html import render_summary_html
from refinery.wire.batch_answers import BatchAnswers, PendingRequest
from refinery.wire.batch_api import BatchAPI
from refinery.wire.response_output import CallUsage
from refinery.wire.responses_client import ResponsesClient

__all__ = ["analyze_by_batch", "batch_status", "cancel_batches", "stage_costs"]

PRICED_AT = {"priced_at": f"Batch API rate ({BATCH_PRICE_FACTOR:.0%} of the listed price)"}
Emit = Callable[[str], None]


async def analyze_by_batch(
    items: Sequence[BatchItem],
    *,
    out_dir: str | Path,
    api: BatchAPI,
    model: str = "gpt-4o",
    concurrency: int = 8,
    progress: Emit | None = None,
    poll: Poll | None = None,
    max_tries: int = 2,
    fallback: Any = None,
    patterns_client: ResponsesClient | None = None,
    patterns_max_cost_usd: float | None = None,
    max_requests: int = 50_000,
    max_bytes: int = 200 * 1024 * 1024,
    **analyst_kwargs: Any,
) -> BatchSummary:
    """Analyse every item through the Batch API; rerun over the same `out_dir` to go on.

    `fallback`: a transport a line that failed is sent through live instead of a second batch
    (`--sync-retry`); `patterns_client`: names the failure patterns (None: deterministic only).
    """
    out = Path(out_dir)
    await asyncio.to_thread(private_dir, out)
    run = _Run(
        model, concurrency, progress, poll, max_tries, fallback, patterns_client, patterns_max_cost_usd,
        max_requests, max_bytes, {**analyst_kwargs, "store": "none", "search_calls": 0},  # inline: no store, no tool
    )  # fmt: skip
    lock = await asyncio.to_thread(RunLock(out).acquire)
    try:
        return await _rounds(items, out, api, run)
    finally:
        lock.release()


@dataclass(frozen=True)
class _Run:
    """One invocation's settings (the per-round state lives in `_rounds`)."""

    model: str
    concurrency: int
    progress: Emit | None
    poll: Poll | None
    max_tries: int
    fallback: Any
    patterns_client: ResponsesClient | None
    patterns_max_cost_usd: float | None
    max_requests: int
    max_bytes: int
    analyst_kwargs: dict[str, Any]


async def _rounds(items: Sequence[BatchItem], out: Path, api: BatchAPI, run: _Run) -> BatchSummary:
    model, progress, analyst_kwargs = run.model, run.progress, run.analyst_kwargs
    state = await asyncio.to_thread(load_state, out, model)
    summary = await asyncio.to_thread(lambda: previous_summary(read_json(out / SUMMARY_JSON), model))
    gate = asyncio.Semaphore(max(1, run.concurrency))
    failed_now: set[str] = set()  # failed in this run: not tried again each round (a rerun tries them)
    price_model = analyst_kwargs.get("base_model") or model
    while True:
        await advance(api, out, state, poll=run.poll, emit=progress)
        outcomes = await asyncio.to_thread(read_results, out, state)
        tries, reasons = state.tries(), state.reasons()
        pending: dict[str, PendingRequest] = {}
        todo = [i for i in items if not _done(summary, out, i) and i.name not in failed_now]

        async def one(item: BatchItem) -> None:
            answers = BatchAnswers(
                outcomes,
                tries,
                pending,
                trace=item.name,
                max_tries=run.max_tries,
                fallback=run.fallback,
                reasons=reasons,
            )
            client = ResponsesClient(transport=answers, api="responses")  # type: ignore[arg-type]
            async with gate:
                try:
                    outcome = await _analyze_one(
                        item,
                        out / item.name,
                        model,
                        client,
                        analyst_kwargs,
                        prices=batch_prices(),
                        usage_notes=PRICED_AT,
                    )
                except RequestDeferred:
                    return
                except Exception as exc:  # one trace's failure never stops the others
                    outcome = TraceOutcome.failed(item, exc)
            summary.outcomes[item.name] = outcome
            if outcome.status == "failed":
                failed_now.add(item.name)

        await asyncio.gather(*(one(i) for i in todo))
        await asyncio.to_thread(_write_summary, out, summary, state, outcomes, price_model)
        if not pending:
            break
        if progress is not None:
            waiting = len({t for p in pending.values() for t in p.traces})
            progress(f"batch-api: {len(pending)} requests of {waiting} traces go into round {state.rounds + 1}")
        await write_round(out, state, pending, max_requests=run.max_requests, max_bytes=run.max_bytes)
    summary.patterns = find_patterns(summary.outcomes.values())
    if run.patterns_client is not None:
        summary.patterns, note = await named_patterns(
            run.patterns_client, summary.patterns, summary.outcomes, model, run.patterns_max_cost_usd
        )
        if note and progress:
            progress(note)
    await asyncio.to_thread(_write_summary, out, summary, state, outcomes, price_model)
    await asyncio.to_thread(link_reports, out, summary.patterns)
    return summary


def _done(summary: BatchSummary, out: Path, item: BatchItem) -> bool:
    prior = summary.outcomes.get(item.name)
    return prior is not None and prior.status == "done" and (out / item.name / STAGE_ARTIFACTS["stage4"]).is_file()


def stage_costs(state: RunState, outcomes: dict[str, Any], model: str) -> dict[str, dict[str, Any]]:
    """Per stage: its batches, requests, failed lines, tokens, cost at the batch rate, and how long
    its batches took (first made to last finished)."""
    prices = batch_prices()
    stages: dict[str, dict[str, Any]] = {}
    for sub in state.submissions:
        for cid, stage in sub.requests.items():
            row = stages.setdefault(stage or "other", {"batches": set(), "requests": 0})
            row["batches"].add(sub.key)
            row["requests"] += 1
    result: dict[str, dict[str, Any]] = {}
    for stage, row in sorted(stages.items()):
        subs = [s for s in state.submissions if s.key in row["batches"]]
        starts = [s.created_at for s in subs if s.created_at]
        ends = [s.finished_at for s in subs if s.finished_at]
        usage = CallUsage.total(
            (
                CallUsage.from_response(outcomes[c].body, stage)
                for s in subs
                for c, st in s.requests.items()
                if (st or "other") == stage and c in outcomes and outcomes[c].status_code == 200 and outcomes[c].body
            ),
            stage,
        )
        counts = usage.counts()
        answered = {
            c
            for s in subs
            for c, st in s.requests.items()
            if (st or "other") == stage and c in outcomes and outcomes[c].status_code == 200
        }
        result[stage] = {
            "batches": len(subs),
            "requests": row["requests"],
            "failed_lines": row["requests"] - len(answered),
            "input_tokens": counts.get("input_tokens", 0),
            "output_tokens": counts.get("output_tokens", 0),
            "cost_usd": estimate_cost_usd(counts, model, prices),
            "duration_s": (max(ends) - min(starts)) if starts and ends else None,
        }
    return result


def _write_summary(
    out: Path, summary: BatchSummary, state: RunState, outcomes: dict[str, Any], price_model: str
) -> None:
    costs = stage_costs(state, outcomes, price_model)
    data = {**summary.model_dump(mode="json"), "batch_api": {"run_id": state.run_id, **PRICED_AT, "stages": costs}}
    write_json_atomic(out / SUMMARY_JSON, data)
    write_text_atomic(out / SUMMARY_MD, render_summary_md(summary) + "\n" + "\n".join(batch_md(costs)) + "\n")
    write_text_atomic(
        out / SUMMARY_HTML, render_summary_html(list(summary.outcomes.values()), summary.model, summary.patterns)
    )


def batch_md(costs: dict[str, dict[str, Any]]) -> list[str]:
    """The summary's Batch API table: each stage's batches, how long they took, what they cost."""
    lines = [
        "## Batch API",
        "",
        f"Costs at the {PRICED_AT['priced_at']}.",
        "",
        "| stage | batches | requests | failed lines | input tokens | output tokens | took | est. cost (USD) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for stage, c in costs.items():
        took = "n/a" if c["duration_s"] is None else f"{c['duration_s']}s"
        cost = "n/a" if c["cost_usd"] is None else f"{c['cost_usd']:.4f}"
        lines.append(
            f"| {stage} | {c['batches']} | {c['requests']} | {c['failed_lines']} | {c['input_tokens']} | "
            f"{c['output_tokens']} | {took} | {cost} |"
        )
    return lines


def _trace_stages(out: Path, items: Sequence[BatchItem] | None) -> dict[str, str]:
    summary = read_json(out / SUMMARY_JSON)
    recorded = (summary or {}).get("outcomes") or {} if isinstance(summary, dict) else {}
    folders = {p.name for p in out.iterdir() if (p / "inputs.json").is_file()} if out.is_dir() else set()
    names = [i.name for i in items] if items is not None else sorted(set(recorded) | folders)
    where: dict[str, str] = {}
    for name in names:
        o = recorded.get(name) or {}
        if o.get("status") == "failed":
            where[name] = f"failed: {o.get('error_type') or 'error'}: {(o.get('error') or '').splitlines()[:1]}"
        elif o.get("status") == "done":
            where[name] = "done"
        else:
            have = [k for k, f in STAGE_ARTIFACTS.items() if (out / name / f).is_file()]
            where[name] = f"waiting (stages done: {', '.join(have) or 'none'})"
    return where


async def batch_status(out_dir: str | Path, items: Sequence[BatchItem] | None = None) -> dict[str, Any]:
    """Where each batch and trace of a `--batch-api` output folder stands (no request is made)."""
    out = Path(out_dir)
    if not await asyncio.to_thread((state_dir(out) / STATE_FILE).is_file):
        raise UserInputError(f"{out}: no `refinery batch --batch-api` run recorded here (no {STATE_DIR}/{STATE_FILE})")
    state = await asyncio.to_thread(load_state, out, "")
    stages = await asyncio.to_thread(_trace_stages, out, items)
    return describe(state, stages)


async def cancel_batches(
    out_dir: str | Path, api: BatchAPI, *, poll: Poll | None = None, emit: Emit | None = None
) -> list[str]:
    """Cancel the open batches of an output folder, read back what they finished and delete their
    files; a later run submits what was cancelled again."""
    out = Path(out_dir)
    if not await asyncio.to_thread((state_dir(out) / STATE_FILE).is_file):
        raise UserInputError(f"{out}: no `refinery batch --batch-api` run recorded here (no {STATE_DIR}/{STATE_FILE})")
    lock = await asyncio.to_thread(RunLock(out).acquire)
    try:
        state = await asyncio.to_thread(load_state, out, "")
        cancelled = await cancel_open(api, out, state, emit=emit)
        await advance(api, out, state, poll=poll, emit=emit)
    finally:
        lock.release()
    return cancelled
