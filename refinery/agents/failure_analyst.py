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
from refinery.agents.staged_failure_analyst import compact_json
from refinery.agents.staged_schemas import (
    STAGE_MODELS,
    STAGE_SCHEMAS,
    GapAnalysisOutput,
    TraceAnalysisOutput,
)
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
from refinery.integrations.responses_request_builder import (
    build_responses_body_no_tools,
)
from refinery.prompts.system_prompts import SIMPLE_SYSTEM, STAGE1, STAGE2, STAGE3
from refinery.traces.render import upload_files_for


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

    async def _ask(self, stage: str, user_text: str) -> Any:
        body = build_responses_body_no_tools(
            self.model,
            SIMPLE_SYSTEM.text,
            user_text,
            STAGE_SCHEMAS[stage],
            max_output_tokens=self.max_output_tokens,
            temperature=self.temperature,
            schema_name=f"{stage}_output",
        )
        await self._emit(stage, "start")
        data = await self.client.create_json(body, STAGE_SCHEMAS[stage], label=f"simple:{stage}")
        await self._emit(stage, "end")
        return STAGE_MODELS[stage].model_validate(data)

    def _meta(self) -> dict[str, Any]:
        return {"analyst": "simple", "model": self.model, "seed": self.seed}

    async def analyze_trace(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> TraceAnalysis:
        files, self.redaction = upload_files_for(trace, prompts=prompt_contents, evals=eval_contents, expectation=expectation, redact=self.redact)
        inline = "\n\n".join(f"=== file: {name} ===\n{text}" for name, text in files)
        self._inline = trim_to_tokens(inline, self.max_inline_tokens)
        out = await self._ask("stage1", f"{STAGE1.text}\n\nTrace files (inline):\n{self._inline}")
        return to_trace_analysis(trace.trace_id, out, self._meta())

    async def compare_to_expected(
        self,
        analysis: TraceAnalysis,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> GapAnalysis:
        text = STAGE2.fill(stage1_json=compact_json(analysis.raw)) + "\n\nExpectations:\n" + self.expectation_text(expectation)
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
        text = STAGE3.fill(stage1_json=compact_json(trace_analysis.raw), stage2_json=compact_json(gap_analysis.raw))
        out = await self._ask("stage3", text)
        return to_diagnosis(out, None, self._meta())
