"""`SimpleFailureAnalyst`: the baseline and rollback target.

One Responses call per interface method, the trace rendered inline (trimmed to a token budget),
no vector store. It answers in the same stage shapes as the staged analyst, and `analyze` returns
the same `StagedAnalysisResult` (no synthesis: it has three stages), so a host switches between the
two by one argument or one import and compares results field for field.
"""

from __future__ import annotations

import threading
from typing import Any

from refinery.analysis.analyst_base import AnalystBase, ProgressCallback
from refinery.analysis.stage_results import (
    StagedAnalysisResult,
    to_diagnosis,
    to_gap_analysis,
    to_trace_analysis,
)
from refinery.analysis.staged_schemas import GapAnalysisOutput, TraceAnalysisOutput
from refinery.analysis.stages import STAGE_BY_KEY, RequestContext, build_request, stage_user_text
from refinery.core.host_models import as_expectation, as_trace
from refinery.core.interfaces import FileContents
from refinery.core.models import (
    Diagnosis,
    DomainExpertExpectation,
    GapAnalysis,
    Trace,
    TraceAnalysis,
)
from refinery.core.offload import off_loop
from refinery.core.tokens import trim_to_tokens
from refinery.prompts.system_prompts import SIMPLE_SYSTEM
from refinery.traces.redact import RedactionReport
from refinery.traces.spool import upload_files_for
from refinery.wire.response_output import CallUsage
from refinery.wire.responses_client import ResponsesClient

Usage = dict[str, CallUsage]  # what each stage's call cost, by stage key


class SimpleFailureAnalyst(AnalystBase):
    """The single-call analyst (one request a stage, the trace inline, no store): the baseline and
    the rollback target for `StagedFailureAnalyst`."""

    def __init__(
        self,
        model: str = "gpt-4o",
        seed: int | None = None,
        progress_callback: ProgressCallback | None = None,
        *,
        client: ResponsesClient | None = None,
        max_inline_tokens: int = 20000,
        max_output_tokens: int = 2000,
        temperature: float | None = 0.2,
        redact: bool = True,
    ) -> None:
        super().__init__(model, seed, progress_callback, client, redact)
        self.max_inline_tokens = max_inline_tokens
        self.max_output_tokens = max_output_tokens
        self.temperature = temperature

    async def _ask(self, key: str, user_text: str, usage: Usage | None = None) -> Any:
        stage = STAGE_BY_KEY[key]
        context = RequestContext(
            self.model,
            user_text,
            system=SIMPLE_SYSTEM,
            max_output_tokens=self.max_output_tokens,
            temperature=self.temperature,
        )
        await self._emit(key, "start")
        answer = await self.client.create_json(build_request(stage, context), stage.schema, label=f"simple:{key}")
        await self._emit(key, "end")
        if usage is not None:
            usage[key] = answer.usage
        return stage.output_model.model_validate(answer.data)

    def _meta(self, redaction: RedactionReport | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"analyst": "simple", "model": self.model, "seed": self.seed}
        if redaction is not None:
            meta["redactions"] = redaction.as_dict()  # what this call redacted from what it sent
        return meta

    async def analyze(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation,
        prompts: FileContents | None = None,
        evals: FileContents | None = None,
    ) -> StagedAnalysisResult:
        """The three stages as one result of the type the staged analyst returns: outputs, what
        each call cost, what was redacted. Everything of this analysis stays in this call, so one
        analyst may run any number at once."""
        trace = self.sent_trace(as_trace(trace))  # a secret in its id is not sent either
        expectation = as_expectation(expectation)
        usage: Usage = {}
        s1, redaction = await self._stage1(trace, expectation, prompts, evals, usage)
        s2 = await self._stage2(s1.model_dump(mode="json"), expectation, usage, redaction)
        s3 = await self._stage3(s1.model_dump(mode="json"), s2.model_dump(mode="json"), usage)
        return StagedAnalysisResult(
            trace_id=trace.trace_id,
            store_id=None,
            trace_analysis=s1,
            gap_analysis=s2,
            diagnosis=s3,
            usage=usage,
            prompt_versions={k: STAGE_BY_KEY[k].prompt_ref for k in usage},
            redactions=redaction.as_dict(),
        )

    async def _stage1(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation,
        prompts: FileContents | None,
        evals: FileContents | None,
        usage: Usage | None = None,
    ) -> tuple[Any, RedactionReport]:

        def work(stop: threading.Event) -> tuple[str, RedactionReport]:
            files, redaction = upload_files_for(
                trace, prompts=prompts, evals=evals, expectation=expectation, redact=self.redact, stop=stop
            )
            try:
                joined = "\n\n".join(f"=== file: {name} ===\n{text}" for name, text in files)
                return trim_to_tokens(joined, self.max_inline_tokens), redaction
            finally:
                files.close()

        inline, redaction = await off_loop(work)  # rendering is blocking work: off the event loop
        return await self._ask("stage1", stage_user_text(STAGE_BY_KEY["stage1"], inline_files=inline), usage), redaction

    async def _stage2(
        self,
        stage1: Any,
        expectation: DomainExpertExpectation,
        usage: Usage | None = None,
        redaction: RedactionReport | None = None,
    ) -> Any:
        said = self.expectation_text(expectation, redaction if redaction is not None else RedactionReport())
        text = stage_user_text(STAGE_BY_KEY["stage2"], {"stage1": stage1}, expectation_text=said)
        return await self._ask("stage2", text, usage)

    async def _stage3(self, stage1: Any, stage2: Any, usage: Usage | None = None) -> Any:
        text = stage_user_text(STAGE_BY_KEY["stage3"], {"stage1": stage1, "stage2": stage2})
        return await self._ask("stage3", text, usage)

    async def analyze_trace(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> TraceAnalysis:
        trace = self.sent_trace(as_trace(trace))
        out, redaction = await self._stage1(trace, as_expectation(expectation), prompt_contents, eval_contents)
        return to_trace_analysis(trace.trace_id, out, self._meta(redaction))

    async def compare_to_expected(
        self,
        analysis: TraceAnalysis,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> GapAnalysis:
        return to_gap_analysis(await self._stage2(analysis.raw, as_expectation(expectation)), self._meta())

    async def diagnose_failure(
        self,
        trace_analysis: TraceAnalysis,
        gap_analysis: GapAnalysis,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> Diagnosis:
        TraceAnalysisOutput.model_validate(trace_analysis.raw)
        GapAnalysisOutput.model_validate(gap_analysis.raw)
        return to_diagnosis(await self._stage3(trace_analysis.raw, gap_analysis.raw), None, self._meta())
