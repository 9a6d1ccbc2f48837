"""The four stage outputs as pydantic models, and their strict JSON schemas.

Why models first: the schema sent to the API and the validation of what comes back must never
drift apart, so both come from one model. `strict_json_schema` makes any pydantic model
strict-valid (see `refinery.core.strict_schema.make_strict`). Free-form maps are expressed as
lists of key/value pairs, because strict mode has no open objects.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict

from refinery.core.models import Confidence, FailureType
from refinery.core.strict_schema import make_strict
from refinery.core.taxonomy import ErrorCategory


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Citation(_Strict):
    file: str
    section_or_lines: str


class Evidence(_Strict):
    file: str
    section_or_lines: str
    rationale: str


class Coverage(_Strict):
    files_scanned: list[str]
    remaining: list[str]


# --- Stage 1: trace analysis ----------------------------------------------------------------
def _legacy_status(value: Any) -> Any:
    """Stage 1 artifacts written before 0.2 said `success`; they resume as `ok`."""
    return "ok" if value == "success" else value


class TimelineEntry(_Strict):
    """One run on the timeline. `status` is what the trace states for it (`ok`, `error`), the
    model's `partial`, or `not stated` when the trace says nothing (a chat or step log): the model
    is not asked to call a step a success the trace never called one."""

    sequence: int
    run_id: str
    run_name: str
    action: str
    status: Annotated[Literal["ok", "error", "partial", "not stated"], BeforeValidator(_legacy_status)]
    key_inputs: str
    key_outputs: str
    tool_calls: list[str]
    citations: list[Citation]


class TraceEvent(_Strict):
    kind: Literal["failure", "retry", "anomaly"]
    run_id: str | None
    description: str
    citations: list[Citation]


class TraceAnalysisOutput(_Strict):
    timeline: list[TimelineEntry]
    events: list[TraceEvent]
    coverage: Coverage
    evidence: list[Evidence]


# --- Stage 2: gap analysis ------------------------------------------------------------------
class ExpectationCheck(_Strict):
    clause: str
    status: Literal["met", "partial", "missing"]
    gap: str
    citations: list[Citation]


class GapAnalysisOutput(_Strict):
    expectations: list[ExpectationCheck]
    missing_context: list[str]
    incorrect_assumptions: list[str]
    suggested_focus_areas: list[str]
    coverage_updates: Coverage


# --- Stage 3: diagnosis ---------------------------------------------------------------------
class CausalLink(_Strict):
    description: str
    citations: list[Citation]


class CausalChain(_Strict):
    symptom: CausalLink
    mechanism: CausalLink
    cause: CausalLink
    confidence: Confidence


class Remediation(_Strict):
    action: str
    target: Literal["prompt", "context", "retrieval", "tooling", "orchestration", "model", "output_parsing", "other"]
    rationale: str
    effort: Literal["low", "medium", "high"]


class DecisiveStep(_Strict):
    """Where the failure became inevitable: a run id as the trace writes it (a span id, or
    `step-N` for a step log), and why in one line."""

    run_id: str
    reason: str


class LocalisedError(_Strict):
    """One faulty run: where, what kind (`refinery.core.taxonomy`), the words that show it, how bad."""

    run_id: str
    category: ErrorCategory
    evidence: str  # quoted from the run's text, verbatim
    impact: Literal["high", "medium", "low"]
    description: str


class DiagnosisOutput(_Strict):
    causal_chains: list[CausalChain]
    root_cause: str
    failure_type: FailureType
    affected_components: list[str]
    remediations: list[Remediation]
    confidence: Confidence
    detailed_analysis: str
    responsible_agent: str  # an agent name as written in the trace, or "unknown"
    decisive_step: DecisiveStep
    errors: list[LocalisedError]


# --- Stage 4: synthesis ---------------------------------------------------------------------
class Finding(_Strict):
    title: str
    detail: str
    severity: Literal["low", "medium", "high", "critical"]
    citations: list[Citation]


class NextAction(_Strict):
    priority: int
    action: str
    owner: str
    rationale: str


class SynthesisOutput(_Strict):
    summary: str
    top_findings: list[Finding]
    actions_next: list[NextAction]


def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The strict-valid JSON schema of any pydantic model (closed, fully required, inlined)."""
    return make_strict(model.model_json_schema())


TRACE_ANALYSIS_SCHEMA = strict_json_schema(TraceAnalysisOutput)
GAP_ANALYSIS_SCHEMA = strict_json_schema(GapAnalysisOutput)
DIAGNOSIS_SCHEMA = strict_json_schema(DiagnosisOutput)
SYNTHESIS_SCHEMA = strict_json_schema(SynthesisOutput)

STAGE_MODELS: dict[str, type[BaseModel]] = {
    "stage1": TraceAnalysisOutput,
    "stage2": GapAnalysisOutput,
    "stage3": DiagnosisOutput,
    "stage4": SynthesisOutput,
}
STAGE_SCHEMAS: dict[str, dict[str, Any]] = {
    "stage1": TRACE_ANALYSIS_SCHEMA,
    "stage2": GAP_ANALYSIS_SCHEMA,
    "stage3": DIAGNOSIS_SCHEMA,
    "stage4": SYNTHESIS_SCHEMA,
}
