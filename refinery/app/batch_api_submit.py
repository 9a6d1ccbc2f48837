"""The provider side of a `--batch-api` run: input files written, uploaded, batches made, waited
for, read back, and their files deleted — each step recorded before and after it happens.

Why in this order: a request costs money once made, and the command may be stopped between any
two lines. The input file and the requests it holds are on disk before anything is sent; the
intent to upload or to make a batch is saved before the call and the id as soon as it is heard;
a batch whose id was never heard is looked for by its `metadata` before another is made. Results
are downloaded before any file is deleted, so a rerun never needs the server's copy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from refinery.app.batch_api_state import RunState, Submission, save_state, state_dir
from refinery.core.artifacts import write_text_atomic
from refinery.errors import RefineryError
from refinery.wire.batch_answers import PendingRequest
from refinery.wire.batch_api import CLOCK_SKEW_S, Batch, BatchAPI
from refinery.wire.batch_jsonl import BatchOutcome, read_outcomes, request_line, split_input

__all__ = ["Poll", "advance", "cancel_open", "read_results", "write_round"]

log = logging.getLogger("refinery.app.batch_api")
Sleep = Callable[[float], Awaitable[None]]
INPUT_EXPIRY_S = 14 * 86_400
Emit = Callable[[str], None]


class Poll:
    """How often to look at open batches: `first` seconds, doubling up to `most` (a batch takes
    minutes to hours; asking every second only spends requests)."""

    def __init__(self, first: float = 10.0, most: float = 300.0, sleep: Sleep = asyncio.sleep) -> None:
        self.first, self.most, self.sleep = first, most, sleep


async def _save(out: Path, state: RunState) -> None:
    await asyncio.to_thread(save_state, out, state)


def _take(sub: Submission, batch: Batch) -> None:
    sub.batch_id = batch.id
    sub.status = batch.status
    sub.output_file_id = batch.output_file_id
    sub.error_file_id = batch.error_file_id
    sub.created_at = batch.created_at
    counts = batch.request_counts
    sub.counts = {k: int(getattr(counts, k, 0) or 0) for k in ("total", "completed", "failed")} if counts else {}
    if batch.status != "completed" and batch.done:
        summary = batch.error_summary()
        sub.problem = batch.status + (f": {summary}" if summary else "")
    if batch.done:
        ends = [getattr(batch, k, None) for k in ("completed_at", "failed_at", "expired_at", "cancelled_at")]
        sub.finished_at = next((int(t) for t in ends if t), None) or int(time.time())


async def write_round(
    out: Path,
    state: RunState,
    pending: Mapping[str, PendingRequest],
    *,
    max_requests: int = 50_000,
    max_bytes: int = 200 * 1024 * 1024,
) -> list[Submission]:
    """The round's requests as JSONL input files (split at the API's limits), written before they
    are recorded, and recorded before anything is uploaded."""
    number = state.rounds + 1
    url = state.endpoint
    ordered = sorted(pending.values(), key=lambda p: p.custom_id)
    stage_of = {p.custom_id: p.stage for p in ordered}

    def write() -> list[Submission]:
        lines = [request_line(p.custom_id, url, p.body) for p in ordered]
        subs = []
        for i, part in enumerate(split_input(lines, max_requests=max_requests, max_bytes=max_bytes), 1):
            key = f"r{number}-p{i}"
            write_text_atomic(
                state_dir(out) / "inputs" / f"{key}.jsonl", "".join(line.rstrip("\n") + "\n" for line in part)
            )
            ids = [json.loads(line)["custom_id"] for line in part]
            subs.append(Submission(key=key, round=number, input=f"{key}.jsonl", requests={c: stage_of[c] for c in ids}))
        return subs

    subs = await asyncio.to_thread(write)
    state.submissions += subs
    state.rounds = number
    await _save(out, state)
    return subs


async def _make(api: BatchAPI, out: Path, state: RunState, sub: Submission) -> None:
    """Upload the input file and make its batch, unless already done; intents saved first."""
    if sub.input_file_id is None:
        path = state_dir(out) / "inputs" / sub.input
        if sub.uploading:  # sent before a stop, its id unheard? reuse the copy, else clear it away
            sub.input_file_id = await recover_upload(api, state, sub, path)
        if sub.input_file_id is None:
            sub.uploading, sub.upload_sent_at = True, int(time.time())
            await _save(out, state)
            # the name marks it as this run's part; it expires by itself too (Azure's floor: 14 days)
            sub.input_file_id = await api.upload_input(
                path, filename=state.upload_name(sub), expires_after_s=INPUT_EXPIRY_S
            )
        await _save(out, state)
    if sub.creating:  # made before a stop, its id unheard? find it rather than make a second
        found = await api.find(metadata=state.metadata(sub), input_file_id=sub.input_file_id)
        if found is not None:
            _take(sub, found)
            await _save(out, state)
            return
    sub.creating = True
    await _save(out, state)
    _take(sub, await api.create(sub.input_file_id, endpoint=state.endpoint, metadata=state.metadata(sub)))
    await _save(out, state)


async def recover_upload(api: BatchAPI, state: RunState, sub: Submission, path: Path | None) -> str | None:
    """The copies of `sub`'s input file an upload cut short may have made (found on the account
    by name, made since the upload was sent): the first whole one (its bytes those of `path`) kept
    and its id returned, every other deleted; with `path` None (cancelling), every copy deleted."""
    size = await asyncio.to_thread(lambda: path.stat().st_size) if path is not None else None
    since = (sub.upload_sent_at or 0) - CLOCK_SKEW_S
    kept: str | None = None
    for copy in reversed(await api.find_uploads(state.upload_name(sub), created_after=since)):  # oldest first
        whole = size is not None and copy.get("bytes") == size and copy.get("status") != "error"
        if kept is None and whole:
            kept = str(copy["id"])
            log.info("%s: reusing %s, uploaded before the stop", sub.key, kept)
            continue
        try:
            await api.delete_file(str(copy["id"]))
        except RefineryError as exc:  # it expires by itself; never the reason a run fails
            log.info("could not delete %s: %s", copy.get("id"), exc)
    return kept


def progress_line(state: RunState, subs: list[Submission], wait: float | None) -> str:
    by_status: dict[str, int] = {}
    for sub in subs:
        by_status[sub.status or "unmade"] = by_status.get(sub.status or "unmade", 0) + 1
    total = sum(sub.counts.get("total", len(sub.requests)) or len(sub.requests) for sub in subs)
    done = sum(sub.counts.get("completed", 0) for sub in subs)
    failed = sum(sub.counts.get("failed", 0) for sub in subs)
    states = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
    then = f"; next look in {wait:.0f}s" if wait is not None else ""
    return (
        f"batch-api: round {state.rounds}: {len(subs)} batch(es) ({states}); {done}/{total} requests done, "
        f"{failed} failed{then}"
    )


async def advance(
    api: BatchAPI, out: Path, state: RunState, *, poll: Poll | None = None, emit: Emit | None = None
) -> None:
    """Every open submission made, waited for, downloaded and its server files deleted."""
    poll = poll or Poll()
    subs = [s for s in state.submissions if s.open]
    for sub in subs:
        if sub.batch_id is None:
            await _make(api, out, state, sub)
    wait = poll.first
    while True:
        waiting = [s for s in subs if not s.finished]
        for sub in waiting:
            _take(sub, await api.retrieve(str(sub.batch_id)))
        if waiting:
            await _save(out, state)
        still = [s for s in subs if not s.finished]
        if emit is not None and subs:
            emit(progress_line(state, subs, wait if still else None))
        if not still:
            break
        await poll.sleep(wait)
        wait = min(poll.most, wait * 2)
    for sub in subs:
        await _read_back(api, out, state, sub)
    for sub in state.submissions:  # read back before a stop, its files not all deleted yet
        if sub.downloaded and any(f not in sub.deleted for f in sub.file_ids()):
            await delete_files(api, out, state, sub)


async def _read_back(api: BatchAPI, out: Path, state: RunState, sub: Submission) -> None:
    results = state_dir(out) / "results"
    await asyncio.to_thread(results.mkdir, parents=True, exist_ok=True)
    if not sub.downloaded:
        for file_id, kind in ((sub.output_file_id, "output"), (sub.error_file_id, "errors")):
            if file_id:
                await api.download(file_id, results / f"{sub.key}.{kind}.jsonl")
        sub.downloaded = True
        await _save(out, state)
    await delete_files(api, out, state, sub)


async def delete_files(api: BatchAPI, out: Path, state: RunState, sub: Submission) -> None:
    """The submission's input, output and error files removed from the server (recorded)."""
    for file_id in sub.file_ids():
        if file_id in sub.deleted:
            continue
        try:
            await api.delete_file(file_id)
        except RefineryError as exc:  # gone already (files expire); never the reason a run fails
            log.info("could not delete %s: %s", file_id, exc)
        sub.deleted.append(file_id)
        await _save(out, state)


def read_results(out: Path, state: RunState) -> dict[str, BatchOutcome]:
    """Every downloaded line by custom id, later batches over earlier ones (blocking)."""
    found: dict[str, BatchOutcome] = {}
    for sub in state.submissions:
        if not sub.downloaded:
            continue
        for kind in ("errors", "output"):  # an answer wins over an error of the same batch
            path = state_dir(out) / "results" / f"{sub.key}.{kind}.jsonl"
            if path.is_file():
                with path.open(encoding="utf-8") as fh:
                    found.update(read_outcomes(fh, source=str(path)))
    return found


async def cancel_open(api: BatchAPI, out: Path, state: RunState, *, emit: Emit | None = None) -> list[str]:
    """Cancel every open batch; one not yet made is dropped (its requests are collected again by
    the next run) and its uploaded input file deleted. Returns the batches cancelled."""
    cancelled: list[str] = []
    for sub in [s for s in state.submissions if s.open]:
        if sub.batch_id is None and sub.creating:
            found = await api.find(metadata=state.metadata(sub), input_file_id=sub.input_file_id)
            if found is not None:
                _take(sub, found)
        if sub.batch_id is None:
            if sub.uploading and sub.input_file_id is None:  # a copy a stop left unheard
                await recover_upload(api, state, sub, None)
            await delete_files(api, out, state, sub)
            state.submissions.remove(sub)
            await _save(out, state)
            continue
        if not sub.finished:
            _take(sub, await api.cancel(sub.batch_id))
            cancelled.append(sub.batch_id)
            await _save(out, state)
            if emit is not None:
                emit(f"batch-api: cancelled {sub.batch_id} ({sub.key})")
    return cancelled


def describe(state: RunState, trace_stages: Mapping[str, str]) -> dict[str, Any]:
    """Where each batch and trace stands (`--status`)."""
    return {
        "run_id": state.run_id,
        "rounds": state.rounds,
        "batches": [
            {
                "part": s.key,
                "batch_id": s.batch_id,
                "status": s.status or ("uploading" if s.input_file_id is None else "to be made"),
                "requests": len(s.requests),
                "counts": s.counts,
                "read_back": s.downloaded,
                "files_left": [f for f in s.file_ids() if f not in s.deleted],
            }
            for s in state.submissions
        ],
        "traces": dict(trace_stages),
    }
