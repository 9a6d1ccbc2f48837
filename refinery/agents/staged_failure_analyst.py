"""`StagedFailureAnalyst`: four evidence-backed stages over a hosted vector store.

Flow: render the trace, prompts, evals and expectations as citable files → upload them to a
vector store (`StoreKeeper`) → Stage 1 trace analysis, group by group for big traces, each
group's `file_search` restricted by `filters` → Stage 2 gap analysis → Stage 3 diagnosis →
Stage 4 synthesis (no tools). Each stage's user text carries the compact JSON of the stages
before it; each output is validated against its model, written atomically as an artifact as
soon as it exists (`Checkpoints`), and a rerun over the same artifacts directory resumes from
the first missing stage instead of paying again.

The analyst is configuration; what belongs to one trace lives in an `AnalysisRun`, kept per
trace id, so the three `FailureAnalyst` calls find their run again and analyses sharing a
client never mix their usage.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from refinery.agents.analysis_run import (
    DEFAULT_GROUP_TOKENS,
    AnalysisRun,
    StageGroup,
    file_attributes,
    group_filter,
    plan_groups,
)
from refinery.agents.analyst_base import AnalystBase, ProgressCallback
from refinery.agents.checkpoints import STAGE1_GROUPS_DIR, STORE_ARTIFACT, Checkpoints
from refinery.agents.condense import fitted_prior
from refinery.agents.cost_ceiling import CostCeiling
from refinery.agents.stage1_groups import READINGS, analyse_groups, group_tokens, run_owner
from refinery.agents.stage_calls import StageCalls, record_check
from refinery.agents.stage_results import (
    StagedAnalysisResult,
    mark_verified,
    merge_stage1,
    result_of,
    to_diagnosis,
    to_gap_analysis,
    to_trace_analysis,
)
from refinery.agents.staged_schemas import DiagnosisOutput, GapAnalysisOutput, SynthesisOutput, TraceAnalysisOutput
from refinery.agents.stages import (
    STAGE_ARTIFACTS,
    STAGE_BY_KEY,
    STAGES,
    Stage,
    compact_json,
    stage_user_text,
)
from refinery.agents.store_keeper import StoreKeeper
from refinery.agents.verification import RunTexts
from refinery.core.context_windows import DEFAULT_BUDGET_SHARE, input_budget
from refinery.core.interfaces import FileContents
from refinery.core.models import Diagnosis, DomainExpertExpectation, GapAnalysis, Trace, TraceAnalysis
from refinery.errors import UserInputError
from refinery.integrations.response_output import CallUsage
from refinery.integrations.responses_client import ResponsesClient
from refinery.integrations.vector_store_manager import VectorStoreManager
from refinery.prompts.system_prompts import SYSTEM
from refinery.traces.redact import RedactionReport, compile_patterns
from refinery.traces.render import CHUNKING_STRATEGY, RenderOptions
from refinery.traces.spool import SpooledFiles, upload_files_for

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
    """

    def __init__(
        self,
        model: str = "gpt-4o",
        seed: int | None = None,
        progress_callback: ProgressCallback | None = None,
        *,
        client: ResponsesClient | None = None,
        vector_store_manager: VectorStoreManager | None = None,
        artifacts_dir: str | Path | None = None,
        vector_store_id: str | None = None,
        keep_store: bool = False,
        max_output_tokens: Mapping[str, int] | None = None,
        max_num_results: Mapping[str, int] | int = 8,
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
    ) -> None:
        """`model` is what requests name (on Azure OpenAI, the deployment); `base_model` is the
        model it is, for context windows, prices and reasoning (default: `model`)."""
        super().__init__(model, seed, progress_callback, client, redact)
        self.redact_patterns = compile_patterns(redact_patterns)  # `--redact-pattern`: redacted as the rest
        self.base_model = base_model or model
        self._manager = vector_store_manager
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir is not None else None
        self.checkpoints = Checkpoints(self.artifacts_dir)
        self.vector_store_id = vector_store_id
        self.keep_store = keep_store or vector_store_id is not None
        self.max_output_tokens = {**{s.key: s.max_output_tokens for s in STAGES}, **dict(max_output_tokens or {})}
        per_stage = (
            dict.fromkeys(STAGE_ARTIFACTS, max_num_results)
            if isinstance(max_num_results, int)
            else {**dict.fromkeys(STAGE_ARTIFACTS, 8), **max_num_results}
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
        self.cost_ceiling = cost_ceiling or (
            CostCeiling(max_cost_usd, self.base_model) if max_cost_usd is not None else None
        )
        self.store = StoreKeeper(
            lambda: self.manager,
            self.checkpoints,
            expires_after_days=expires_after_days,
            poll_timeout_s=poll_timeout_s,
            emit=self._emit,
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
        self._runs: dict[str, AnalysisRun] = {}
        # The run the last call began, for hosts reading `store_id` / `get_stage_metadata()` after
        # one analysis. Never read by an analysis: each passes its own run down, so any number may
        # run at once on one analyst.
        self.run = AnalysisRun(store_id=vector_store_id)

    @property
    def manager(self) -> VectorStoreManager:
        if self._manager is None:
            self._manager = self.client.vector_store_manager(chunking_strategy=CHUNKING_STRATEGY)
        return self._manager

    @property
    def store_id(self) -> str | None:
        return self.run.store_id

    def get_stage_metadata(self) -> dict[str, dict[str, Any]]:
        """Per stage of the last analysis: prompt version, model, tokens, duration and store id."""
        return {k: dict(v) for k, v in self.run.meta.items()}

    def uploaded_files(self, trace_id: str) -> Sequence[tuple[str, str]] | None:
        """The files this analyst rendered for `trace_id` (redacted unless `redact=False`), as
        uploaded; None when it rendered none (an analysis of an existing store). The report
        embeds cited runs from these rather than rendering the trace again."""
        run = self._runs.get(self.sent_id(trace_id))
        return run.texts.files if run is not None and run.texts is not None else None

    def _run_for(self, trace_id: str | None, store_id: str | None = None) -> AnalysisRun:
        """The run of `trace_id`, begun if new; the current one becomes it."""
        key = trace_id or ""
        if key not in self._runs:
            self._runs[key] = AnalysisRun(trace_id=trace_id, store_id=store_id or self.vector_store_id)
        self.run = self._runs[key]
        return self.run

    # --- preparation ----------------------------------------------------------------------
    def render(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation | None = None,
        prompts: FileContents | None = None,
        evals: FileContents | None = None,
    ) -> Sequence[tuple[str, str]]:
        """The files `prepare` uploads, redacted unless `redact=False` (`refinery plan` shows them);
        `self.redaction` counts what this rendering redacted, for single-use callers (an analysis
        keeps its own count on its run)."""
        trace = self.sent_trace(trace)  # a secret in its id is not sent either
        files, self.redaction = self._rendered(trace, expectation, prompts, evals)
        return files

    def _rendered(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation | None,
        prompts: FileContents | None,
        evals: FileContents | None,
    ) -> tuple[SpooledFiles, RedactionReport]:
        return upload_files_for(
            trace,
            options=self.render_options,
            prompts=prompts,
            evals=evals,
            expectation=expectation,
            redact=self.redact,
            redact_patterns=self.redact_patterns,
        )

    def _begin(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation | None,
        prompts: FileContents | None,
        evals: FileContents | None,
    ) -> AnalysisRun:
        """Render the trace and lay out its analysis; the redaction count is the run's own."""
        files, redaction = self._rendered(trace, expectation, prompts, evals)
        run = self._layout(trace, files)
        # the run's own count travels in its result; the analyst's copy is the last rendering's,
        # for a host using the three-call interface (which has no result to carry it)
        run.redaction = self.redaction = redaction
        return run

    def stage1_groups(self, files: Sequence[tuple[str, str]]) -> list[StageGroup]:
        """The Stage 1 groups of a rendering (see `stage1_groups.group_tokens`)."""
        tokens = group_tokens(self.calls, self.group_tokens, self.stage1_reading)
        return plan_groups(files, self.files_per_group, tokens)

    def _layout(self, trace: Trace, files: Sequence[tuple[str, str]]) -> AnalysisRun:
        run = self._run_for(trace.trace_id)
        run.groups = self.stage1_groups(files)
        run.texts = RunTexts(files)  # what citations are checked against
        return run

    async def prepare(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation | None = None,
        prompts: FileContents | None = None,
        evals: FileContents | None = None,
        *,
        store_id: str | None = None,
        on_progress: IndexingProgress | None = None,
        name: str | None = None,
    ) -> str:
        """Render, upload and index the files; return the vector store id.

        With `store_id` (or `vector_store_id`) nothing is uploaded. A store recorded in the
        artifacts directory for this trace is reused once ready; one that is gone is replaced.
        """
        trace = self.sent_trace(trace)  # a secret in its id is not sent either
        return (
            await self._prepare(
                trace, expectation, prompts, evals, store_id=store_id, on_progress=on_progress, name=name
            )
        ).store_id or ""

    async def _prepare(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation | None,
        prompts: FileContents | None,
        evals: FileContents | None,
        *,
        store_id: str | None = None,
        on_progress: IndexingProgress | None = None,
        name: str | None = None,
    ) -> AnalysisRun:
        run = self._begin(trace, expectation, prompts, evals)
        given = store_id or run.store_id
        if given:
            run.store_id = given
            return run
        await self.store.prepare(run, run.texts.files if run.texts else [], name=name, on_progress=on_progress)
        return run

    # --- one call -------------------------------------------------------------------------
    def build_stage_body(
        self, stage: str, user_text: str, *, filters: dict[str, Any] | None = None, store_id: str | None = None
    ) -> dict[str, Any]:
        """The request body of one stage call (pure: `refinery plan` prints these)."""
        return self.calls.body(STAGE_BY_KEY[stage], user_text, store_id or self.run.store_id, filters)

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
            **usage.counts(),
            "duration_s": round(time.monotonic() - started, 3),
            **extra,
        }
        if stage.key in run.verification:
            run.meta[stage.key]["verification"] = run.verification[stage.key].as_dict()

    # --- the stages -----------------------------------------------------------------------
    async def run_stage1(self, run: AnalysisRun | None = None) -> TraceAnalysisOutput:
        run = run or self.run
        if run.store_id and not run.groups:
            await self.store.adopt(run, run.store_id)  # a store from `refinery init`: its trace and groups
        stage = STAGE_BY_KEY["stage1"]
        resumed = self.checkpoints.resume(run, stage)
        if resumed is not None:
            return resumed  # type: ignore[no-any-return]
        await self._emit("stage1", "start", groups=max(1, len(run.groups)))
        started = time.monotonic()
        parts, total, readings = await analyse_groups(
            self.calls, self.checkpoints, run, self._emit, self.stage1_concurrency, self.stage1_reading
        )
        merged = merge_stage1(parts, run_owner(run))
        by_search = sorted(n for n, how in readings.items() if how == "search")
        reading: dict[str, Any] = {"stage1_reading": self.stage1_reading}
        if self.stage1_reading == "inline" and by_search:
            reading["stage1_groups_read_by_search"] = by_search  # no files at hand, or too big to inline
        self._record(run, stage, total, started, groups=len(parts), **reading)
        self.checkpoints.save_stage("stage1", run.trace_id, run.meta["stage1"], merged)
        await self._emit("stage1", "end", tokens=total.total_tokens)
        return merged

    async def _simple_stage(
        self, run: AnalysisRun, key: str, prior: Mapping[str, Any], expectation: DomainExpertExpectation | None = None
    ) -> Any:
        stage = STAGE_BY_KEY[key]
        resumed = self.checkpoints.resume(run, stage)
        if resumed is not None:
            return resumed
        await self._emit(key, "start")
        started = time.monotonic()
        expectation_text = self.expectation_text(expectation, run.redaction) if expectation else None
        prior_json, condensed, notes = await fitted_prior(self.calls, self.store, run, stage, prior, expectation_text)
        text = stage_user_text(stage, prior_json, expectation_text=expectation_text, notes=notes)
        out, usage, check = await self.calls.call(run, stage, text)
        record_check(run, stage, check)
        self._record(run, stage, usage, started, **({"stage1_condensed": condensed} if condensed else {}))
        self.checkpoints.save_stage(key, run.trace_id, run.meta[key], out)
        await self._emit(key, "end", tokens=usage.total_tokens)
        return out

    async def run_stage2(
        self, stage1: TraceAnalysisOutput, expectation: DomainExpertExpectation, run: AnalysisRun | None = None
    ) -> GapAnalysisOutput:
        return await self._simple_stage(run or self.run, "stage2", {"stage1": stage1}, expectation)  # type: ignore[no-any-return]

    async def run_stage3(
        self, stage1: TraceAnalysisOutput, stage2: GapAnalysisOutput, run: AnalysisRun | None = None
    ) -> DiagnosisOutput:
        return await self._simple_stage(run or self.run, "stage3", {"stage1": stage1, "stage2": stage2})  # type: ignore[no-any-return]

    async def run_stage4(
        self,
        stage1: TraceAnalysisOutput,
        stage2: GapAnalysisOutput,
        stage3: DiagnosisOutput,
        run: AnalysisRun | None = None,
    ) -> SynthesisOutput:
        return await self._simple_stage(
            run or self.run, "stage4", {"stage1": stage1, "stage2": stage2, "stage3": stage3}
        )  # type: ignore[no-any-return]

    def _meta(self, run: AnalysisRun, stage: str) -> dict[str, Any]:
        return {
            "stage_metadata": run.meta.get(stage, {}),
            "store_id": run.store_id,
            "model": self.model,
            "seed": self.seed,
        }

    # --- the FailureAnalyst interface -----------------------------------------------------
    async def analyze_trace(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> TraceAnalysis:
        trace = self.sent_trace(trace)  # a secret in its id is not sent either
        run = await self._prepare(trace, expectation, prompt_contents, eval_contents)
        out = await self.run_stage1(run)
        return to_trace_analysis(trace.trace_id, out, self._meta(run, "stage1"))

    def _continue(self, trace_id: str, metadata: Mapping[str, Any]) -> AnalysisRun:
        """The run an earlier interface call began (or, for a host that serialised the results in
        between, one rebuilt from the store id they carry)."""
        return self._run_for(trace_id, metadata.get("store_id"))

    async def compare_to_expected(
        self,
        analysis: TraceAnalysis,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> GapAnalysis:
        run = self._continue(analysis.trace_id, analysis.metadata)
        out = await self.run_stage2(TraceAnalysisOutput.model_validate(analysis.raw), expectation, run)
        return to_gap_analysis(out, self._meta(run, "stage2"))

    async def diagnose_failure(
        self,
        trace_analysis: TraceAnalysis,
        gap_analysis: GapAnalysis,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> Diagnosis:
        """Stage 3 then Stage 4, so the `Diagnosis` carries top findings and next actions."""
        run = self._continue(trace_analysis.trace_id, trace_analysis.metadata)
        stage1 = TraceAnalysisOutput.model_validate(trace_analysis.raw)
        stage2 = GapAnalysisOutput.model_validate(gap_analysis.raw)
        stage3 = await self.run_stage3(stage1, stage2, run)
        stage4 = await self.run_stage4(stage1, stage2, stage3, run)
        diagnosis = to_diagnosis(
            stage3, stage4, {**self._meta(run, "stage3"), "synthesis_metadata": run.meta.get("stage4", {})}
        )
        mark_verified(diagnosis, run.meta.get("stage3", {}).get("verification"))
        await self.cleanup(run)
        return diagnosis

    async def cleanup(self, run: AnalysisRun | None = None) -> None:
        """Delete the store (and its files) this analysis made, unless asked to keep it."""
        run = run or self.run
        if not (self.keep_store or run.keep_store):
            await self.store.cleanup(run)

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
    ) -> StagedAnalysisResult:
        """Run stages 1…`until_stage` and return every output with usage and versions.

        With `trace=None` the analysis runs on an existing store (`store_id`) prepared by
        `refinery init`. `on_progress` hears the indexing file counts while the store fills.
        """
        trace = self.sent_trace(trace) if trace is not None else None  # a secret in its id is not sent
        if trace is not None and self.checkpoints.finished(trace.trace_id, until_stage):
            run = self._begin(trace, expectation, prompts, evals)  # every stage on disk: no store needed
        elif trace is not None:
            run = await self._prepare(trace, expectation, prompts, evals, store_id=store_id, on_progress=on_progress)
        elif store_id or self.vector_store_id:
            run = self._run_for(None, store_id or self.vector_store_id)
            run.keep_store = True
        else:
            raise UserInputError("analyze needs a trace or an existing store id")
        outputs: dict[str, Any] = {}
        succeeded = False
        try:
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
            if (succeeded and until_stage >= 4) or self.artifacts_dir is None:
                await self.cleanup(run)
        return result_of(run, outputs, self.artifacts_dir)
