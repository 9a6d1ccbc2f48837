"""Many failed traces, one rate limit: `analyze_many` and the data behind `refinery batch`.

Why: after a nightly eval run a team has dozens of failures and one project's TPM/RPM budget.
Every analysis here shares one `ResponsesClient`, so one rate budget admits each request only
when the budget holds it: the batch runs concurrently close to the physical floor (total tokens
÷ TPM) and no 429 reaches the caller. Each trace gets its own artifacts folder; the summary is
rewritten (atomically) as each result arrives; a failed trace never stops the others; a rerun
skips the traces already done and resumes the others from their artifacts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from refinery.analysis.output_folder import digest_of
from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.analysis.stages import STAGE_ARTIFACTS
from refinery.app import analyze_into
from refinery.app.batch_patterns import link_reports, named_patterns, patterns_md
from refinery.app.exit_codes import exit_code_for
from refinery.app.inputs import InputFileError, expectation_for, read_files
from refinery.core.artifacts import private_dir, read_json, write_json_atomic, write_text_atomic
from refinery.core.models import Trace, TraceRun
from refinery.core.offload import off_loop
from refinery.errors import RefineryError
from refinery.patterns.grouping import Pattern, find_patterns
from refinery.report.batch_html import render_summary_html
from refinery.report.markdown import cell
from refinery.report.view import STAND_IN, clean, is_stand_in
from refinery.traces import load_trace, load_traces
from refinery.traces.redact import redact_text
from refinery.traces.render import safe_name
from refinery.traces.sources import fetched_copy, is_source_ref
from refinery.traces.transcript import tool_said
from refinery.wire.responses_client import ResponsesClient

log = logging.getLogger("refinery.app.batch")
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
SUMMARY_HTML = "summary.html"
EXPECT_SUFFIXES = (".expect.json", ".expect.txt", ".expect.md")
TRACE_SUFFIXES = (".json", ".jsonl", ".eval", ".traj")


class BatchItem(BaseModel):
    """One trace to analyse, with its expectation (and optional prompts/evals)."""

    name: str
    trace: str
    expect: str | None = None  # None: the task the trace states (see `inputs.expectation_for`)
    prompts: list[str] = Field(default_factory=list)
    evals: list[str] = Field(default_factory=list)
    sample: str | None = None  # the trace's sample id in a file holding several (an eval log)


class TraceOutcome(BaseModel):
    name: str
    trace: str
    status: Literal["done", "failed"]
    trace_id: str | None = None
    summary: str | None = None
    root_cause: str | None = None
    failure_type: str | None = None
    confidence: str | None = None
    tokens: int = 0
    cost_usd: float | None = None
    duration_s: float = 0.0
    error: str | None = None
    error_type: str | None = None
    exit_code: int | None = None  # the CLI exit code the error means (None when done)
    answered_by: list[str] = Field(default_factory=list)  # the models that answered (as the API named them)
    # the trace's own facts its failure pattern is keyed on (`refinery.patterns.grouping`)
    failing_run: str | None = None  # the decisive step's run name, else the first failed run's
    failing_error: str | None = None  # that run's own error text, redacted
    said_by: str | None = None  # the tool call the diagnosis rests on (`traces.transcript.tool_said`) …
    said: str | None = None  # … and its output text, redacted: the key when no run states an error
    error_categories: list[str] = Field(default_factory=list)

    @classmethod
    def failed(cls, item: BatchItem, exc: BaseException) -> TraceOutcome:
        """A trace whose analysis raised: its error, and the exit code that error means (an error
        refinery did not expect is logged with its traceback, since no one-line message explains it)."""
        if not isinstance(exc, RefineryError):
            log.exception("unexpected error analysing %s", item.name)
        return cls(
            name=item.name,
            trace=item.trace,
            status="failed",
            error=str(exc),
            error_type=type(exc).__name__,
            exit_code=exit_code_for(exc),
        )


class BatchSummary(BaseModel):
    model: str
    outcomes: dict[str, TraceOutcome] = Field(default_factory=dict)
    skipped: list[str] = Field(default_factory=list)
    wall_s: float = 0.0
    throttled_429: int = 0
    patterns: list[Pattern] = Field(default_factory=list)  # the few causes behind the failures, largest first
    patterns_of: str | None = None  # a digest of the diagnoses they were made from: a rerun reuses them

    @property
    def failed(self) -> list[TraceOutcome]:
        return [o for o in self.outcomes.values() if o.status == "failed"]

    @property
    def total_tokens(self) -> int:
        return sum(o.tokens for o in self.outcomes.values())


def previous_summary(previous: Any, model: str) -> BatchSummary:
    """The outcomes an earlier run of this folder recorded (`previous`: its `summary.json` as read):
    a trace done stays done; an entry that no longer reads is left out and its trace analysed again."""
    summary = BatchSummary(model=model)
    if isinstance(previous, dict):
        for name, o in (previous.get("outcomes") or {}).items():
            try:
                summary.outcomes[name] = TraceOutcome.model_validate(o)
            except ValueError:
                continue
    return summary


def _holds_samples(path: Path) -> bool:
    """Whether a trace file may hold several traces (an eval log, τ-bench results), from its first
    64 KB: loading every trace of a folder to find out would read them all twice."""
    if path.suffix == ".eval":
        return True
    with path.open("rb") as f:
        head = f.read(1 << 16)
    return (b'"samples"' in head and b'"eval"' in head) or (b'"traj"' in head and b'"task_id"' in head)


def _samples(item: BatchItem) -> list[BatchItem]:
    """The item, or one item per trace when its file holds several."""
    path = Path(item.trace)
    if not _holds_samples(path):
        return [item]
    traces = load_traces(path)
    if len(traces) == 1:
        return [item]
    ids = [str(t.metadata.get("sample_id") or t.trace_id) for t in traces]
    return [item.model_copy(update={"name": safe_name(f"{item.name}-{i}"), "sample": i}) for i in ids]


def discover(source: str | Path, default_expect: str | Path | None = None) -> list[BatchItem]:
    """Batch items from a folder of traces or a JSON manifest.

    Folder: every `*.json` / `*.jsonl` / `*.eval` trace; its expectation is the sibling
    `<stem>.expect.json|.txt|.md`, else `default_expect` (which is never taken for a trace, even
    when it sits in the folder), else the task the trace states. Manifest: a JSON list of
    `{"trace": …, "expect": …, "prompts": [...], "evals": [...], "name": …}` (paths relative to
    the manifest). A file holding several traces (an Inspect log's samples, τ-bench results),
    given as the source or found in the folder, is one item per trace, named `<stem>-<sample>`.
    """
    src = Path(source)
    items: list[BatchItem] = []
    if src.is_dir():
        shared_expect = Path(default_expect).resolve() if default_expect else None
        paths = sorted(
            p
            for p in src.iterdir()
            if p.is_file()
            and p.name.endswith(TRACE_SUFFIXES)
            and not p.name.endswith(EXPECT_SUFFIXES)
            and p.resolve() != shared_expect
        )
        stems = [p.name[: -len(p.suffix)] for p in paths]
        for path, stem in zip(paths, stems):
            sibling = next((src / f"{stem}{s}" for s in EXPECT_SUFFIXES if (src / f"{stem}{s}").is_file()), None)
            expect = sibling or default_expect
            # `run.json` and `run.jsonl` side by side get folders named after the whole file name
            name = safe_name(stem if stems.count(stem) == 1 else path.name)
            items += _samples(BatchItem(name=name, trace=str(path), expect=str(expect) if expect else None))
    elif src.is_file() and _holds_samples(src):
        items += _samples(
            BatchItem(name=safe_name(src.stem), trace=str(src), expect=str(default_expect) if default_expect else None)
        )
    elif src.is_file():
        try:
            manifest = json.loads(src.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputFileError(f"{src}: not JSON ({exc})") from None
        if not isinstance(manifest, list):
            raise InputFileError(f"{src}: expected a JSON list of {{trace, expect}} objects")
        base = src.parent
        for i, entry in enumerate(manifest):
            if not isinstance(entry, dict) or "trace" not in entry:
                raise InputFileError(f"{src}: item [{i}] needs a 'trace' path")
            own_expect = entry.get("expect")
            # `langsmith:` / `langfuse:` / `phoenix:` ids: fetched when analysed
            ref = is_source_ref(str(entry["trace"]))
            trace = Path(str(ref)) if ref else base / entry["trace"]
            items.append(
                BatchItem(
                    name=safe_name(str(entry.get("name") or (ref.trace_id if ref else Path(entry["trace"]).stem))),
                    trace=str(trace),
                    expect=str(base / own_expect) if own_expect else (str(default_expect) if default_expect else None),
                    prompts=[str(base / p) for p in entry.get("prompts", [])],
                    evals=[str(base / p) for p in entry.get("evals", [])],
                )
            )
    else:
        raise InputFileError(f"{src}: no such folder or manifest")
    names = [i.name for i in items]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputFileError(
            f"{src}: several traces would share the output folder(s) {dupes}; give them distinct names"
        )
    if not items:
        raise InputFileError(f"{src}: no traces found (*.json, *.jsonl)")
    return items


def _reason(outcome: TraceOutcome) -> str:
    lines = (outcome.error or "").strip().splitlines()
    return lines[0] if lines else "no message"


def failure_line(outcome: TraceOutcome) -> str:
    """One line naming a failed trace and why: `failed: NAME — ErrorType: first line of the message`."""
    return f"failed: {outcome.name} — {outcome.error_type or 'error'}: {_reason(outcome)}"


def render_summary_md(summary: BatchSummary) -> str:
    rows = sorted(summary.outcomes.values(), key=lambda o: o.name)
    done = sum(o.status == "done" for o in rows)
    lines = [
        "# Batch analysis",
        "",
        f"- traces: {len(rows)} ({done} done, {len(rows) - done} failed)",
        f"- tokens: {summary.total_tokens}",
        f"- model: {summary.model}",
        "",
        *(["> " + STAND_IN, ""] if is_stand_in(m for o in rows for m in o.answered_by) else []),
        *patterns_md(summary.patterns),
        "| trace | outcome | root cause | confidence | tokens | est. cost (USD) |",
        "|---|---|---|---|---|---|",
    ]
    for o in rows:
        cause = cell(clean(o.root_cause or o.error or "")[:160])
        cost = "n/a" if o.cost_usd is None else f"{o.cost_usd:.4f}"
        lines.append(f"| {cell(o.name)} | {o.status} | {cause} | {cell(o.confidence or '')} | {o.tokens} | {cost} |")
    failures = [o for o in rows if o.status == "failed"]
    if failures:
        lines += ["", "## Failures", "", "Each trace that could not be analysed, and why:", ""]
        lines += [f"- **{cell(o.name)}** — {cell(o.error_type or 'error')}: {cell(_reason(o))}" for o in failures]
    return "\n".join(lines) + "\n"


class _Progress:
    """Progress lines on stderr: done / running / waiting for budget / failed, tokens, ETA.

    The ETA is re-estimated when a trace finishes (time per trace so far × traces left) and
    counts down between finishes, so waiting for budget does not make it climb.
    """

    def __init__(
        self,
        total: int,
        client: ResponsesClient,
        emit: Callable[[str], None] | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.client, self.emit, self.clock = total, client, emit, clock
        self.done = self.failed = self.running = 0
        self.tokens = 0
        self.started = clock()
        self._eta_at: tuple[float, float] | None = None  # (when estimated, seconds left then)

    def finished(self, ok: bool, tokens: int) -> None:
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self.tokens += tokens
        now = self.clock()
        finished = self.done + self.failed
        self._eta_at = (now, (now - self.started) / finished * (self.total - finished))

    def eta(self) -> float | None:
        if self._eta_at is None:
            return None
        when, left = self._eta_at
        return max(0.0, left - (self.clock() - when))

    def line(self) -> str:
        stats = self.client.budget_stats
        waiting = stats.waiting_now if stats else 0
        eta = self.eta()
        return (
            f"batch: {self.done} done, {self.running} running, {waiting} waiting for budget, {self.failed} failed of "
            f"{self.total}; "
            f"{self.tokens} tokens; ETA {'?' if eta is None else f'{eta:.0f}s'}"
        )

    def report(self) -> None:
        if self.emit:
            self.emit(self.line())


async def analyze_many(
    items: Sequence[BatchItem],
    *,
    out_dir: str | Path,
    model: str = "gpt-4o",
    concurrency: int = 8,
    client: ResponsesClient | None = None,
    progress: Callable[[str], None] | None = None,
    progress_every_s: float = 5.0,
    name_patterns: bool = True,
    patterns_max_cost_usd: float | None = None,
    **analyst_kwargs: Any,
) -> BatchSummary:
    """Analyse every item concurrently under the client's shared rate budget; then group the
    failures into patterns (deterministically, then merged and named by one model call unless
    `name_patterns=False`)."""
    out = Path(out_dir)
    private_dir(out)  # its folders will hold trace text
    previous = read_json(out / SUMMARY_JSON)
    summary = previous_summary(previous, model)
    todo = []
    for item in items:
        prior = summary.outcomes.get(item.name)
        if prior and prior.status == "done" and (out / item.name / STAGE_ARTIFACTS["stage4"]).is_file():
            summary.skipped.append(item.name)
        else:
            todo.append(item)
    owns_client = client is None
    client = client or ResponsesClient()
    tracker = _Progress(len(todo), client, progress)
    lock = asyncio.Lock()
    semaphore = asyncio.Semaphore(max(1, concurrency))
    started = time.monotonic()

    async def save() -> None:
        async with lock:
            summary.wall_s = round(time.monotonic() - started, 3)
            stats = client.budget_stats
            summary.throttled_429 = stats.throttled if stats else 0
            write_json_atomic(out / SUMMARY_JSON, summary.model_dump(mode="json"))
            write_text_atomic(out / SUMMARY_MD, render_summary_md(summary))
            write_text_atomic(
                out / SUMMARY_HTML,
                render_summary_html(list(summary.outcomes.values()), summary.model, summary.patterns),
            )

    async def one(item: BatchItem) -> None:
        async with semaphore:
            tracker.running += 1
            t0 = time.monotonic()
            try:
                outcome = await _analyze_one(item, out / item.name, model, client, analyst_kwargs)
            except Exception as exc:  # one trace's failure must never stop the others
                outcome = TraceOutcome.failed(item, exc)
            outcome.duration_s = round(time.monotonic() - t0, 3)
            tracker.running -= 1
            tracker.finished(outcome.status == "done", outcome.tokens)
            summary.outcomes[item.name] = outcome
            await save()
            tracker.report()

    async def ticker() -> None:
        while True:
            await asyncio.sleep(progress_every_s)
            tracker.report()

    tick = asyncio.create_task(ticker()) if progress else None
    try:
        await asyncio.gather(*(one(i) for i in todo))
        summary.patterns = find_patterns(summary.outcomes.values())
        made_of = digest_of([summary.patterns, [o.root_cause for o in summary.outcomes.values()], name_patterns])
        reused = (
            previous.get("patterns") if isinstance(previous, dict) and previous.get("patterns_of") == made_of else None
        )
        if reused is not None:  # the same diagnoses: the same patterns, no call
            summary.patterns = [Pattern.model_validate(p) for p in reused]
        elif name_patterns:
            summary.patterns, note = await named_patterns(
                client, summary.patterns, summary.outcomes, model, patterns_max_cost_usd
            )
            if note and progress:
                progress(note)
        summary.patterns_of = made_of
    finally:
        if tick:
            tick.cancel()
        if owns_client:
            await client.close()
    await save()
    link_reports(out, summary.patterns)
    return summary


async def _analyze_one(
    item: BatchItem,
    out: Path,
    model: str,
    client: ResponsesClient,
    analyst_kwargs: dict[str, Any],
    **into: Any,
) -> TraceOutcome:
    """One trace analysed into `out`, as a summary row; `into`: more of `analyze_into`'s options
    (the Batch API engine's price table and usage notes)."""
    path = item.trace
    ref = is_source_ref(path)
    if ref is not None:  # fetched once into the trace's folder; a rerun reads the copy
        path = str(await fetched_copy(ref, out))
    trace = await off_loop(lambda _stop: load_trace(path, sample=item.sample))  # parsing: off the event loop
    expectation = expectation_for(item.expect, trace)
    prompts, evals = read_files(item.prompts), read_files(item.evals)
    analyst = StagedFailureAnalyst(model=model, client=client, **analyst_kwargs)
    # one writer; a folder made from other inputs fails this trace only; each folder holds its report
    done = await analyze_into(
        out, trace, expectation, analyst=analyst, prompts=prompts, evals=evals, trace_file=Path(path), **into
    )
    result, usage = done.result, done.usage
    diagnosis, synthesis = result.diagnosis, result.synthesis
    decisive = diagnosis.decisive_step.run_id if diagnosis else None
    # passes over a big trace's runs: off the event loop
    failing, said = await off_loop(lambda _stop: (_failing_run(trace, decisive), tool_said(trace.runs, decisive)))
    return TraceOutcome(
        name=item.name,
        trace=item.trace,
        status="done",
        trace_id=result.trace_id,
        summary=synthesis.summary if synthesis else None,
        root_cause=diagnosis.root_cause if diagnosis else None,
        failure_type=diagnosis.failure_type.value if diagnosis else None,
        confidence=diagnosis.confidence.value if diagnosis else None,
        tokens=usage["total"]["total_tokens"],
        cost_usd=usage["total"]["estimated_cost_usd"],
        answered_by=sorted({u.model for u in result.usage.values() if u.model}),
        failing_run=failing.name if failing else None,
        failing_error=redact_text(failing.error)[:500] if failing and failing.error else None,
        said_by=said[0] if said else None,
        said=redact_text(said[1])[:500] if said else None,
        error_categories=sorted({e.category.value for e in diagnosis.errors}) if diagnosis else [],
    )


def _failing_run(trace: Trace, decisive: str | None) -> TraceRun | None:
    """The run a failure pattern is keyed on: the decisive step's when it failed, else the first
    run that failed, else the decisive step's (a trace may state no failure at all)."""
    decisive_run = first_failed = None
    for run in trace.runs:
        if decisive is not None and run.id == decisive:
            if run.is_failed:
                return run
            decisive_run = run
        if first_failed is None and run.is_failed:
            first_failed = run
    return first_failed or decisive_run
