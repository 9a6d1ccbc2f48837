"""`SimpleFailureAnalyst`: the baseline and rollback target.

One Responses call per interface method, the trace rendered inline (trimmed to a token budget),
no vector store. It answers in the same stage shapes as the staged analyst, so a host can switch
between the two by changing one import and compare results field for field.
"""

from __future__ import annotations

from typing import Any

from refinery.agents.analyst_base import AnalystBase, ProgressCallback
from refinery.agents.stage_results import (
    to_diagnosis,
    to_gap_analysis,
    to_trace_analysis,
)
from refinery.agents.staged_schemas import GapAnalysisOutput, TraceAnalysisOutput
from refinery.agents.stages import STAGE_BY_KEY, RequestContext, build_request, stage_user_text
from refinery.core.interfaces import FileContents
from refinery.core.models import (
    Diagnosis,
    DomainExpertExpectation,
    GapAnalysis,
    Trace,
    TraceAnalysis,
)
from refinery.core.tokens import trim_to_tokens
from refinery.integrations.responses_client import ResponsesClient
from refinery.prompts.system_prompts import SIMPLE_SYSTEM
from refinery.traces.spool import upload_files_for


class SimpleFailureAnalyst(AnalystBase):
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
        self._inline: str = ""

    async def _ask(self, key: str, user_text: str) -> Any:
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
        return stage.output_model.model_validate(answer.data)

    def _meta(self) -> dict[str, Any]:
        return {"analyst": "simple", "model": self.model, "seed": self.seed}

    async def analyze_trace(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> TraceAnalysis:
        files, self.redaction = upload_files_for(
            trace, prompts=prompt_contents, evals=eval_contents, expectation=expectation, redact=self.redact
        )
        inline = "\n\n".join(f"=== file: {name} ===\n{text}" for name, text in files)
        self._inline = trim_to_tokens(inline, self.max_inline_tokens)
        out = await self._ask("stage1", stage_user_text(STAGE_BY_KEY["stage1"], inline_files=self._inline))
        return to_trace_analysis(trace.trace_id, out, self._meta())

    async def compare_to_expected(
        self,
        analysis: TraceAnalysis,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> GapAnalysis:
        text = stage_user_text(
            STAGE_BY_KEY["stage2"], {"stage1": analysis.raw}, expectation_text=self.expectation_text(expectation)
        )
        out = await self._ask("stage2", text)
        return to_gap_analysis(out, self._meta())

    async def diagnose_failure(
        self,
        trace_analysis: TraceAnalysis,
        gap_analysis: GapAnalysis,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> Diagnosis:
        TraceAnalysisOutput.model_validate(trace_analysis.raw)
        GapAnalysisOutput.model_validate(gap_analysis.raw)
        text = stage_user_text(STAGE_BY_KEY["stage3"], {"stage1": trace_analysis.raw, "stage2": gap_analysis.raw})
        out = await self._ask("stage3", text)
        return to_diagnosis(out, None, self._meta())
