"""`StagedFailureAnalyst`: four evidence-backed stages over a hosted vector store.

Flow: render the trace, prompts, evals and expectations as citable files → upload them to a
vector store (`StoreKeeper`) → Stage 1 trace analysis, group by group for big traces, each
group's `file_search` restricted by `filters` → Stage 2 gap analysis → Stage 3 diagnosis →
Stage 4 synthesis (no tools). Each stage's user text carries the compact JSON of the stages
before it; each output is validated against its model, written atomically as an artifact as
soon as it exists (`Checkpoints`), and a rerun over the same artifacts directory resumes from
the first missing stage instead of paying again.

The analyst is configuration only. Each `analyze()` makes its analysis's own context (an
`AnalysisRun`: checkpoint folder, rendered files, store, usage, redactions, citation checks),
passes it down and returns what it made in its result, so any number of analyses run at once on
one analyst and nothing of one outlives it. The three-call `FailureAnalyst` interface keeps its
analysis between calls by trace id and lets go of it after `diagnose_failure`. Rendering runs off
the event loop (`core.offload`): a host's loop is never held while a big trace is prepared.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refinery.analysis.analysis_run import (
    DEFAULT_GROUP_TOKENS,
    OPEN_ANALYSES_KEPT,
    AnalysisRun,
    OpenAnalyses,
    StageGroup,
    file_attributes,
    group_filter,
    plan_groups,
)
from refinery.analysis.analyst_base import AnalystBase, Emit, ProgressCallback
from refinery.analysis.checkpoints import STAGE1_GROUPS_DIR, STORE_ARTIFACT, Checkpoints
from refinery.analysis.condense import fitted_prior
from refinery.analysis.cost_ceiling import CostCeiling
from refinery.analysis.inline_reading import NO_STORE_NOTE, choose_reading, later_stage_text
from refinery.analysis.output_folder import OutputFolder, trace_folder_name
from refinery.analysis.stage1_groups import READINGS, analyse_groups, group_tokens, run_owner
from refinery.analysis.stage_calls import StageCalls, record_check, texts_with_totals
from refinery.analysis.stage_results import (
    StagedAnalysisResult,
    mark_verified,
    merge_stage1,
    result_of,
    to_diagnosis,
    to_gap_analysis,
    to_trace_analysis,
)
from refinery.analysis.staged_schemas import DiagnosisOutput, GapAnalysisOutput, SynthesisOutput, TraceAnalysisOutput
from refinery.analysis.stages import (
    STAGE_ARTIFACTS,
    STAGE_BY_KEY,
    STAGES,
    Stage,
    compact_json,
    stage_user_text,
)
from refinery.analysis.store_keeper import StoreKeeper
from refinery.analysis.trace_search import TraceSearch, search_allowance
from refinery.core.context_windows import DEFAULT_BUDGET_SHARE, input_budget
from refinery.core.gc_freeze import objects_frozen
from refinery.core.host_models import as_expectation, as_trace
from refinery.core.interfaces import FileContents
from refinery.core.models import Diagnosis, DomainExpertExpectation, GapAnalysis, Trace, TraceAnalysis
from refinery.core.offload import in_worker, off_loop
from refinery.errors import ConfigurationError, UserInputError
from refinery.prompts.system_prompts import SYSTEM
from refinery.traces.redact import RedactionReport, compile_patterns
from refinery.traces.render import CHUNKING_STRATEGY, RenderOptions
from refinery.traces.spool import SpooledFiles, file_names, upload_files_for
from refinery.wire.endpoint_offer import APIS, STORES, StoreChoice, check_choice
from refinery.wire.response_output import CallUsage
from refinery.wire.responses_client import ResponsesClient
from refinery.wire.structured_model import StructuredModel
from refinery.wire.vector_store_manager import VectorStoreManager

__all__ = [
    "STAGE1_GROUPS_DIR",
    "STAGE_ARTIFACTS",
    "STORE_ARTIFACT",
    "StageGroup",
    "StagedAnalysisResult",
    "StagedFailureAnalyst",
    "compact_json",
    "file_attributes",
    "group_filter",
    "plan_groups",
]

log = logging.getLogger("refinery.staged")
IndexingProgress = Callable[[Mapping[str, int]], None]


class StagedFailureAnalyst(AnalystBase):
    """The staged analyst. Built the way hosts build it: `StagedFailureAnalyst(model=…, seed=…,
    progress_callback=…)`; everything else is optional.

    The Responses API takes no `seed`; it is recorded in the metadata, never sent. Without a
    `client`, one is built from the environment (`OPENAI_API_KEY`, …) on first use and closed by
    `aclose()` (or `async with`).

    `artifacts_dir`: a folder under which each analysis keeps its artifacts in a subfolder of its
    own, named for its trace (`trace_folder_name`), so analyses of several traces at once never mix;
    `analyze(…, artifacts_dir=FOLDER)` writes one analysis into exactly FOLDER instead.
    """

    def __init__(
        self,
        model: str = "gpt-4o",
        seed: int | None = None,
        progress_callback: ProgressCallback | None = None,
        *,
        client: ResponsesClient | StructuredModel | None = None,
        vector_store_manager: VectorStoreManager | None = None,
        artifacts_dir: str | Path | None = None,
        vector_store_id: str | None = None,
        keep_store: bool = False,
        max_output_tokens: Mapping[str, int] | None = None,
        max_num_results: Mapping[str, int] | int | None = None,
        render_options: RenderOptions | None = None,
        files_per_group: int = 64,
        group_tokens: int = DEFAULT_GROUP_TOKENS,
        stage1_reading: str = "inline",
        stage1_concurrency: int = 4,
        context_window: int | None = None,
        input_budget_share: float = DEFAULT_BUDGET_SHARE,
        max_cost_usd: float | None = None,
        cost_ceiling: CostCeiling | None = None,
        poll_timeout_s: float = 600,
        expires_after_days: int = 1,
        temperature: float | None = 0.2,
        reasoning_effort: str | None = None,
        redact: bool = True,
        base_model: str | None = None,
        redact_patterns: Sequence[str | re.Pattern[str]] = (),
        store: str = "auto",
        api: str = "auto",
        search_calls: int = 0,
    ) -> None:
        """`model` is what requests name (on Azure OpenAI, the deployment); `base_model` is the
        model it is, for context windows, prices and reasoning (default: `model`).

        `store`: how stages read the trace — `hosted` (a vector store and `file_search`), `none`
        (inline, within the input budget: `inline_reading`), or `auto`: hosted only on OpenAI's and
        Azure OpenAI's API hosts (or with a store given), decided with no request
        (`endpoint_offer.store_choice`); a gateway in front of OpenAI takes `hosted`. `api` is the
        wire of a client built here (`responses`, `chat`, or `auto`: Responses where the endpoint
        has it). `search_calls`: with
        no store, each request offers the function `search_trace` (answered from a full-text index
        of the run files, `trace_search`), at most this many calls a request (0: not offered; the
        server must take function tools)."""
        super().__init__(model, seed, progress_callback, client, redact)
        self.redact_patterns = compile_patterns(redact_patterns)  # `--redact-pattern`: redacted as the rest
        self.store = check_choice("store", store, STORES)
        self.api = check_choice("api", api, APIS)
        if store == "none" and vector_store_id is not None:
            raise UserInputError("store='none' reads the trace inline: it takes no vector_store_id")
        self.base_model = base_model or model
        self._manager = vector_store_manager
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir is not None else None
        self.vector_store_id = vector_store_id
        self.keep_store = keep_store or vector_store_id is not None
        self.max_output_tokens = {**{s.key: s.max_output_tokens for s in STAGES}, **dict(max_output_tokens or {})}
        # `file_search` result counts as given (an int: every stage); a stage not given one has its
        # count sized to the run's store (`StageCalls.results`)
        per_stage = (
            dict.fromkeys(STAGE_ARTIFACTS, max_num_results)
            if isinstance(max_num_results, int)
            else dict(max_num_results or {})
        )
        self.max_num_results: dict[str, int] = per_stage
        self.render_options = render_options or RenderOptions()
        self.files_per_group = max(1, files_per_group)
        self.group_tokens = group_tokens
        if stage1_reading not in READINGS:
            raise UserInputError(f"stage1_reading must be one of {', '.join(READINGS)}, got {stage1_reading!r}")
        self.stage1_reading = stage1_reading
        self.stage1_concurrency = max(1, stage1_concurrency)
        self.temperature = temperature
        self.poll_timeout_s = poll_timeout_s
        self.expires_after_days = expires_after_days
        self.cost_ceiling = cost_ceiling or (
            CostCeiling(max_cost_usd, self.base_model) if max_cost_usd is not None else None
        )
        self.calls = StageCalls(
            lambda: self.client,
            self.model,
            max_output_tokens=self.max_output_tokens,
            max_num_results=self.max_num_results,
            temperature=self.temperature,
            input_budget=input_budget(self.base_model, window=context_window, share=input_budget_share),
            cost=self.cost_ceiling,
            reasoning_effort=reasoning_effort,
            base_model=self.base_model,
        )
        self.search_calls = max(0, search_calls)
        self.calls.search_allowance = search_allowance(self.search_calls)
        # The three-call interface's analyses between `analyze_trace` and `diagnose_failure`, by
        # trace id: the only per-analysis state an analyst holds, let go of at the end (and bounded,
        # for a host that never finishes one). `analyze()` keeps nothing here.
        self._open = OpenAnalyses(OPEN_ANALYSES_KEPT)

    @property
    def manager(self) -> VectorStoreManager:
        if self._manager is None:
            make = getattr(self.client, "vector_store_manager", None)
            if make is None:
                raise ConfigurationError(
                    "this analysis needs a vector store and the model client given has none: pass "
                    "vector_store_id=… (a store made elsewhere), or a ResponsesClient"
                )
            self._manager = make(chunking_strategy=CHUNKING_STRATEGY)
        return self._manager

    def _keeper(self, checkpoints: Checkpoints, emit: Emit | None = None) -> StoreKeeper:
        return StoreKeeper(
            lambda: self.manager,
            checkpoints,
            expires_after_days=self.expires_after_days,
            poll_timeout_s=self.poll_timeout_s,
            emit=emit or self._emit,
            endpoint=lambda: str(getattr(self.client, "base_url", "")),
        )

    def answer_settings(self) -> dict[str, Any]:
        """The settings besides model and inputs that change an answer (an output folder records
        them, and refuses results made with others)."""
        return {
            "stage1_reading": self.stage1_reading,
            "reasoning_effort": self.calls.reasoning_effort,
            "base_model": self.base_model if self.base_model != self.model else None,
        }

    async def discard_recorded(self, recorded: dict[str, Any]) -> None:
        """Delete the store and files a folder's record names (`--fresh` starting over)."""
        await self._keeper(Checkpoints(None)).discard_recorded(recorded)

    def folder_for(self, trace_id: str | None, store_id: str | None = None) -> Path | None:
        """Where an analysis of `trace_id` keeps its artifacts under the analyst's `artifacts_dir`."""
        if self.artifacts_dir is None:
            return None
        return self.artifacts_dir / trace_folder_name(trace_id or f"store-{store_id or 'none'}")

    # --- preparation ----------------------------------------------------------------------
    def rendering(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation | None = None,
        prompts: FileContents | None = None,
        evals: FileContents | None = None,
        stop: threading.Event | None = None,
    ) -> tuple[SpooledFiles, RedactionReport]:
        """The files `prepare` uploads, redacted unless `redact=False`, and what was redacted
        (`refinery plan` shows both). Blocking: an analysis runs it off the event loop."""
        trace = self.sent_trace(as_trace(trace))  # a secret in its id is not sent either
        return upload_files_for(
            trace,
            options=self.render_options,
            prompts=prompts,
            evals=evals,
            expectation=expectation,
            redact=self.redact,
            redact_patterns=self.redact_patterns,
            stop=stop,
        )

    def render(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation | None = None,
        prompts: FileContents | None = None,
        evals: FileContents | None = None,
    ) -> Sequence[tuple[str, str]]:
        """The files `prepare` uploads (see `rendering`)."""
        return self.rendering(trace, expectation, prompts, evals)[0]

    def stage1_groups(self, files: Sequence[tuple[str, str]], store: str = "hosted") -> list[StageGroup]:
        """The Stage 1 groups of a rendering (see `stage1_groups.group_tokens`); `store="none"`:
        sized for a reading with no store."""
        tokens = group_tokens(self.calls, self.group_tokens, self.stage1_reading, store)
        return plan_groups(files, self.files_per_group, tokens)

    def store_choice(self, store_id: str | None = None) -> StoreChoice:
        """How an analysis reads the trace, `hosted` or `none`, and why (see `store`): for `auto`,
        decided from the endpoint's address with no request and no client built (`refinery plan`
        asks it offline; `inline_reading.choose_reading`)."""
        given = bool(store_id or self.vector_store_id or self._manager is not None)
        return choose_reading(self.store, self._client, given, self.api)

    def _new_run(
        self,
        trace_id: str | None,
        folder: Path | None,
        store_id: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> AnalysisRun:
        checkpoints, emit = Checkpoints(folder), self._emitter(progress)
        return AnalysisRun(
            trace_id=trace_id,
            store_id=store_id or self.vector_store_id,
            checkpoints=checkpoints,
            keeper=self._keeper(checkpoints, emit),
            emit=emit,
        )

    async def _begin(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation | None,
        prompts: FileContents | None,
        evals: FileContents | None,
        folder: Path | None,
        progress: ProgressCallback | None = None,
        reading: str = "hosted",
    ) -> AnalysisRun:
        """A new analysis of `trace`: rendered, redacted and laid out in a worker thread (the
        event loop goes on meanwhile), its redaction count its own."""

        def work(stop: threading.Event) -> tuple[SpooledFiles, RedactionReport, list[StageGroup], tuple[str, ...], Any]:
            files, redaction = self.rendering(trace, expectation, prompts, evals, stop)
            failed = tuple(r.id for r in trace.get_failed_runs()) if reading == "none" else ()
            texts = texts_with_totals(files)  # what citations are checked against: a run id a run, so made here too
            search = TraceSearch(texts, self.search_calls) if reading == "none" and self.search_calls else None
            return files, redaction, self.stage1_groups(files, reading), failed, (texts, search)

        files, redaction, groups, failed, (texts, search) = await off_loop(work)
        run = self._new_run(trace.trace_id, folder, progress=progress)
        run.spool, run.redaction, run.groups = files, redaction, groups
        run.reading, run.failed_runs, run.search, run.texts = reading, failed, search, texts
        return run

    async def _prepared(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation | None,
        prompts: FileContents | None,
        evals: FileContents | None,
        folder: Path | None,
        *,
        store_id: str | None = None,
        on_progress: IndexingProgress | None = None,
        name: str | None = None,
        progress: ProgressCallback | None = None,
        reading: str | None = None,
    ) -> AnalysisRun:
        reading = reading or self.store_choice(store_id).store
        run = await self._begin(trace, expectation, prompts, evals, folder, progress, reading)
        try:
            if reading == "none":  # read inline: nothing is uploaded
                run.store_id, run.files = None, file_names(run.spool or [])
                return run
            given = store_id or run.store_id
            if given:
                run.store_id = given
                return run
            assert run.keeper is not None
            await run.keeper.prepare(run, run.spool or [], name=name, on_progress=on_progress)
        except BaseException:
            run.release()
            raise
        return run

    async def prepare(self, *args: Any, **kwargs: Any) -> str:
        """Render, upload and index the files; return the vector store id (kept: `refinery init`).
        Takes what `prepare_store` takes."""
        return (await self.prepare_store(*args, **kwargs))[0]

    async def prepare_store(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation | None = None,
        prompts: FileContents | None = None,
        evals: FileContents | None = None,
        *,
        store_id: str | None = None,
        on_progress: IndexingProgress | None = None,
        name: str | None = None,
    ) -> tuple[str, RedactionReport]:
        """Render, upload and index the files; return the vector store id and what was redacted.

        With `store_id` (or `vector_store_id`) nothing is uploaded. A store recorded in the
        trace's artifacts folder is reused once ready; one that is gone is replaced. A store is
        made with `store="auto"` too, wherever the endpoint is (asked for, not chosen);
        `store="none"` is refused.
        """
        if self.store == "none":
            raise UserInputError("store='none' reads the trace inline: it makes no vector store to prepare")
        trace = self.sent_trace(as_trace(trace))
        folder = self.folder_for(trace.trace_id)
        run = await self._prepared(
            trace,
            expectation,
            prompts,
            evals,
            folder,
            store_id=store_id,
            on_progress=on_progress,
            name=name,
            reading="hosted",  # asked for a store: made wherever the endpoint is (`store="auto"` too)
        )
        run.release()
        return run.store_id or "", run.redaction

    # --- one call -------------------------------------------------------------------------
    def build_stage_body(
        self, stage: str, user_text: str, *, filters: dict[str, Any] | None = None, store_id: str | None = None
    ) -> dict[str, Any]:
        """The request body of one stage call (pure: `refinery plan` prints these)."""
        return self.calls.body(STAGE_BY_KEY[stage], user_text, store_id or self.vector_store_id, filters)

    def _record(self, run: AnalysisRun, stage: Stage, usage: CallUsage, started: float, **extra: Any) -> None:
        run.usage[stage.key] = usage.model_copy(update={"label": stage.key})
        run.meta[stage.key] = {
            "stage": stage.key,
            "prompt_version": stage.prompt_ref,
            "system_prompt_version": SYSTEM.ref,
            "model": self.model,
            "answered_by": usage.model,  # the model the API says answered (a rerun's report shows it)
            "seed": self.seed,
            "store_id": run.store_id,
            "reading": run.reading,
            **({"reading_note": NO_STORE_NOTE.ref} if run.reading == "none" else {}),
            "api": getattr(self.client, "wire", None) or "responses",
            **usage.counts(),
            "duration_s": round(time.monotonic() - started, 3),
            **extra,
        }
        if stage.key in run.verification:
            run.meta[stage.key]["verification"] = run.verification[stage.key].as_dict()

    # --- the stages -----------------------------------------------------------------------
    async def run_stage1(self, run: AnalysisRun) -> TraceAnalysisOutput:
        checkpoints, keeper = run.parts()
        if run.store_id and not run.groups:
            await keeper.adopt(run, run.store_id)  # a store from `refinery init`: its trace and groups
        stage = STAGE_BY_KEY["stage1"]
        resumed = await in_worker(checkpoints.resume, run, stage)  # reading JSON back: off the loop
        if resumed is not None:
            return resumed  # type: ignore[no-any-return]
        await run.emit("stage1", "start", groups=max(1, len(run.groups)))
        started = time.monotonic()
        parts, total, readings = await analyse_groups(
            self.calls, checkpoints, run, run.emit, self.stage1_concurrency, self.stage1_reading
        )
        merged = await in_worker(merge_stage1, parts, run_owner(run))  # a big trace's groups: CPU work
        by_search = sorted(n for n, how in readings.items() if how == "search")
        reading: dict[str, Any] = {"stage1_reading": self.stage1_reading}
        if self.stage1_reading == "inline" and by_search:
            reading["stage1_groups_read_by_search"] = by_search  # no files at hand, or too big to inline
        self._record(run, stage, total, started, groups=len(parts), **reading)
        await in_worker(checkpoints.save_stage, "stage1", run.trace_id, run.meta["stage1"], merged)
        await run.emit("stage1", "end", tokens=total.total_tokens)
        return merged

    async def _simple_stage(
        self, run: AnalysisRun, key: str, prior: Mapping[str, Any], expectation: DomainExpertExpectation | None = None
    ) -> Any:
        checkpoints, keeper = run.parts()
        stage = STAGE_BY_KEY[key]
        resumed = await in_worker(checkpoints.resume, run, stage)  # reading JSON back: off the loop
        if resumed is not None:
            return resumed
        await run.emit(key, "start")
        started = time.monotonic()
        expectation_text = self.expectation_text(expectation, run.redaction) if expectation else None
        prior_json, condensed, notes = await fitted_prior(self.calls, keeper, run, stage, prior, expectation_text)
        text = await in_worker(stage_user_text, stage, prior_json, expectation_text=expectation_text, notes=notes)
        if run.reading == "none":  # no store to search: the runs that matter, inline (off the loop)
            text = await in_worker(later_stage_text, self.calls, run, stage, text, prior.get("stage1"))
        out, usage, check = await self.calls.call(run, stage, text)
        record_check(run, stage, check)
        self._record(run, stage, usage, started, **({"stage1_condensed": condensed} if condensed else {}))
        await in_worker(checkpoints.save_stage, key, run.trace_id, run.meta[key], out)
        await run.emit(key, "end", tokens=usage.total_tokens)
        return out

    async def run_stage2(
        self, stage1: TraceAnalysisOutput, expectation: DomainExpertExpectation, run: AnalysisRun
    ) -> GapAnalysisOutput:
        return await self._simple_stage(run, "stage2", {"stage1": stage1}, expectation)  # type: ignore[no-any-return]

    async def run_stage3(
        self, stage1: TraceAnalysisOutput, stage2: GapAnalysisOutput, run: AnalysisRun
    ) -> DiagnosisOutput:
        return await self._simple_stage(run, "stage3", {"stage1": stage1, "stage2": stage2})  # type: ignore[no-any-return]

    async def run_stage4(
        self, stage1: TraceAnalysisOutput, stage2: GapAnalysisOutput, stage3: DiagnosisOutput, run: AnalysisRun
    ) -> SynthesisOutput:
        prior = {"stage1": stage1, "stage2": stage2, "stage3": stage3}
        return await self._simple_stage(run, "stage4", prior)  # type: ignore[no-any-return]

    def _meta(self, run: AnalysisRun, stage: str) -> dict[str, Any]:
        return {
            "stage_metadata": run.meta.get(stage, {}),
            "store_id": run.store_id,
            "model": self.model,
            "seed": self.seed,
            "redactions": run.redaction.as_dict(),
        }

    # --- the FailureAnalyst interface -----------------------------------------------------
    async def analyze_trace(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> TraceAnalysis:
        """Stage 1; the analysis is kept (by trace id) for `compare_to_expected` and
        `diagnose_failure`, which lets go of it. Its redaction count is in the metadata."""
        trace = self.sent_trace(as_trace(trace))  # a secret in its id is not sent either
        expectation = as_expectation(expectation)
        folder = self.folder_for(trace.trace_id)
        run = await self._prepared(trace, expectation, prompt_contents, eval_contents, folder)
        self._open.put(trace.trace_id, run)
        out = await self.run_stage1(run)
        return to_trace_analysis(trace.trace_id, out, self._meta(run, "stage1"))

    def _continue(self, trace_id: str, metadata: Mapping[str, Any]) -> AnalysisRun:
        """The analysis `analyze_trace` began (or, for a host that serialised the results in
        between, one rebuilt from the store id and folder they carry)."""
        run = self._open.get(trace_id)
        if run is None:
            run = self._new_run(trace_id, self.folder_for(trace_id), metadata.get("store_id"))
            run.reading = (metadata.get("stage_metadata") or {}).get("reading") or "hosted"
            self._open.put(trace_id, run)
        return run

    async def compare_to_expected(
        self,
        analysis: TraceAnalysis,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> GapAnalysis:
        run = self._continue(analysis.trace_id, analysis.metadata)
        stage1 = TraceAnalysisOutput.model_validate(analysis.raw)
        out = await self.run_stage2(stage1, as_expectation(expectation), run)
        return to_gap_analysis(out, self._meta(run, "stage2"))

    async def diagnose_failure(
        self,
        trace_analysis: TraceAnalysis,
        gap_analysis: GapAnalysis,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> Diagnosis:
        """Stage 3 then Stage 4, so the `Diagnosis` carries top findings and next actions; the
        analysis is over: its store, files and state are let go of."""
        run = self._continue(trace_analysis.trace_id, trace_analysis.metadata)
        try:
            stage1 = TraceAnalysisOutput.model_validate(trace_analysis.raw)
            stage2 = GapAnalysisOutput.model_validate(gap_analysis.raw)
            stage3 = await self.run_stage3(stage1, stage2, run)
            stage4 = await self.run_stage4(stage1, stage2, stage3, run)
            meta = {**self._meta(run, "stage3"), "synthesis_metadata": run.meta.get("stage4", {})}
            diagnosis = to_diagnosis(stage3, stage4, meta)
            mark_verified(diagnosis, run.meta.get("stage3", {}).get("verification"))
            await self.cleanup(run)
        finally:
            self._open.pop(trace_analysis.trace_id)
            await in_worker(run.ended)  # a big spool's layouts and citation index: long to free
        return diagnosis

    async def cleanup(self, run: AnalysisRun) -> None:
        """Delete the store (and its files) this analysis made, unless asked to keep it."""
        if not (self.keep_store or run.keep_store) and run.keeper is not None:
            await run.keeper.cleanup(run)

    async def analyze(
        self,
        trace: Trace | None,
        expectation: DomainExpertExpectation,
        prompts: FileContents | None = None,
        evals: FileContents | None = None,
        *,
        store_id: str | None = None,
        until_stage: int = 4,
        on_progress: IndexingProgress | None = None,
        artifacts_dir: str | Path | None = None,
        progress: ProgressCallback | None = None,
    ) -> StagedAnalysisResult:
        """Run stages 1…`until_stage` and return every output with usage and versions.

        With `trace=None` the analysis runs on an existing store (`store_id`) prepared by
        `refinery init`. `on_progress` hears the indexing file counts while the store fills.
        `artifacts_dir` (this analysis's folder) overrides the analyst's per-trace subfolder; the
        caller then owns the folder (`app.analyze_into` locks it). `progress` hears this analysis's
        stage events besides the analyst's `progress_callback`. The result holds the rendered files
        until `result.release()`; nothing of the analysis stays on the analyst. Meanwhile the objects
        that existed before are out of the garbage collector's passes (`core.gc_freeze`).
        """
        trace = self.sent_trace(as_trace(trace)) if trace is not None else None  # a secret in its id is not sent
        expectation = as_expectation(expectation)
        given = store_id or self.vector_store_id
        if trace is None and not given:
            raise UserInputError("analyze needs a trace or an existing store id")
        how = _How(given, until_stage, on_progress, progress)
        # what exists (the trace, the host's objects) out of the collector's passes while the analysis
        # runs: one pass over them holds the GIL, and the host's loop, for its whole length
        with objects_frozen():
            if artifacts_dir is not None:
                return await self._analyze(trace, expectation, prompts, evals, Path(artifacts_dir), how)
            folder = self.folder_for(trace.trace_id if trace else None, given)
            if folder is None:
                return await self._analyze(trace, expectation, prompts, evals, None, how)
            async with OutputFolder(folder, {"trace_id": trace.trace_id if trace else None}):  # one analysis a folder
                return await self._analyze(trace, expectation, prompts, evals, folder, how)

    async def _analyze(
        self,
        trace: Trace | None,
        expectation: DomainExpertExpectation,
        prompts: FileContents | None,
        evals: FileContents | None,
        folder: Path | None,
        how: _How,
    ) -> StagedAnalysisResult:
        until_stage = how.until_stage
        if trace is not None and Checkpoints(folder).finished(trace.trace_id, until_stage):
            run = await self._begin(trace, expectation, prompts, evals, folder, how.progress)  # all on disk: no store
        elif trace is not None:
            run = await self._prepared(
                trace,
                expectation,
                prompts,
                evals,
                folder,
                store_id=how.store_id,
                on_progress=how.on_progress,
                progress=how.progress,
            )
        else:
            run = self._new_run(None, folder, how.store_id, how.progress)
            run.keep_store = True
        outputs: dict[str, Any] = {}
        succeeded = False
        try:
            with objects_frozen():  # the rendering's records too: they live until the analysis ends
                outputs["stage1"] = s1 = await self.run_stage1(run)
                if until_stage >= 2:
                    outputs["stage2"] = s2 = await self.run_stage2(s1, expectation, run)
                if until_stage >= 3:
                    outputs["stage3"] = s3 = await self.run_stage3(s1, s2, run)
                if until_stage >= 4:
                    outputs["stage4"] = await self.run_stage4(s1, s2, s3, run)
            succeeded = True
        finally:
            # kept after a failure or a partial run (`--stages 1-2`): a rerun continues in it
            if (succeeded and until_stage >= 4) or folder is None:
                await self.cleanup(run)
            if not succeeded:
                run.release()
            await in_worker(run.let_go)  # its citation index, freed with it on the loop, held the loop
        return result_of(run, outputs, folder)


@dataclass(frozen=True)
class _How:
    """How one `analyze()` call runs: on which store, how far, who hears its progress."""

    store_id: str | None
    until_stage: int
    on_progress: IndexingProgress | None
    progress: ProgressCallback | None
