"""Turning validated stage outputs into the host-facing core models. Pure functions.

The core models predate the stages (hosts use their field names), so the mapping lives here in
one place; the stage's raw JSON and every citation travel along, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, PrivateAttr

from refinery.analysis.analysis_run import AnalysisRun
from refinery.analysis.staged_schemas import (
    DiagnosisOutput,
    GapAnalysisOutput,
    SynthesisOutput,
    TraceAnalysisOutput,
)
from refinery.analysis.stages import STAGE_BY_KEY
from refinery.core.models import Citation, CompleteAnalysis, Diagnosis, GapAnalysis, TraceAnalysis
from refinery.wire.response_output import CallUsage


def collect_citations(data: Any) -> list[Citation]:
    """Every `{file, section_or_lines}` found anywhere in a stage's JSON, in order, deduplicated."""
    found: dict[Citation, None] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("file"), str) and "section_or_lines" in node:
                found.setdefault(Citation(file=node["file"], section=node.get("section_or_lines") or None))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(data)
    return list(found)


def merge_stage1(
    parts: list[TraceAnalysisOutput], owner: Callable[[str], int | None] | None = None
) -> TraceAnalysisOutput:
    """One Stage 1 output from the per-group ones, in group order, sequences renumbered.

    With `owner` (run id → the index of the part whose group holds that run), a run that several
    groups put on their timelines (a group searching the others' runs sees them too) is kept once,
    from its own group's entry."""
    if len(parts) == 1:
        return parts[0]
    events, evidence, scanned, remaining = [], [], [], []
    timeline = [e for part in parts for e in part.timeline]
    if owner is not None:  # one entry a run: its own group's, else the first
        chosen: dict[str, tuple[int, int]] = {}
        entries = [(i, e) for i, part in enumerate(parts) for e in part.timeline]
        for k, (i, e) in enumerate(entries):
            rank = 0 if owner(e.run_id) == i else 1
            if e.run_id not in chosen or rank < chosen[e.run_id][0]:
                chosen[e.run_id] = (rank, k)
        keep = {k for _, k in chosen.values()}
        timeline = [e for k, (_, e) in enumerate(entries) if k in keep]
    for part in parts:
        events.extend(part.events)
        evidence.extend(part.evidence)
        scanned.extend(part.coverage.files_scanned)
        remaining.extend(part.coverage.remaining)
    scanned = list(dict.fromkeys(scanned))
    remaining = [f for f in dict.fromkeys(remaining) if f not in set(scanned)]
    renumbered = [e.model_copy(update={"sequence": i}) for i, e in enumerate(timeline, start=1)]
    return TraceAnalysisOutput.model_validate(
        {
            "timeline": [e.model_dump() for e in renumbered],
            "events": [e.model_dump() for e in events],
            "coverage": {"files_scanned": scanned, "remaining": remaining},
            "evidence": [e.model_dump() for e in evidence],
        }
    )


def to_trace_analysis(trace_id: str, out: TraceAnalysisOutput, metadata: dict[str, Any]) -> TraceAnalysis:
    raw = out.model_dump(mode="json")
    failed = [e.run_id for e in out.timeline if e.status == "error"]
    for ev in out.events:
        if ev.kind == "failure" and ev.run_id and ev.run_id not in failed:
            failed.append(ev.run_id)
    return TraceAnalysis(
        trace_id=trace_id,
        execution_flow=raw["timeline"],
        context_at_each_step={
            e.run_id: {
                "run_name": e.run_name,
                "action": e.action,
                "key_inputs": e.key_inputs,
                "tool_calls": e.tool_calls,
            }
            for e in out.timeline
        },
        data_transformations=[
            {"run_id": e.run_id, "run_name": e.run_name, "input": e.key_inputs, "output": e.key_outputs}
            for e in out.timeline
        ],
        error_propagation_path=failed,
        identified_issues=raw["events"],
        metadata={**metadata, "coverage": raw["coverage"], "evidence": raw["evidence"]},
        citations=collect_citations(raw),
        raw=raw,
    )


def to_gap_analysis(out: GapAnalysisOutput, metadata: dict[str, Any]) -> GapAnalysis:
    raw = out.model_dump(mode="json")
    return GapAnalysis(
        behavioral_differences=[c for c in raw["expectations"] if c["status"] != "met"],
        missing_context=out.missing_context,
        incorrect_assumptions=out.incorrect_assumptions,
        suggested_focus_areas=out.suggested_focus_areas,
        metadata={**metadata, "expectations": raw["expectations"], "coverage_updates": raw["coverage_updates"]},
        citations=collect_citations(raw),
        raw=raw,
    )


def to_diagnosis(out: DiagnosisOutput, synthesis: SynthesisOutput | None, metadata: dict[str, Any]) -> Diagnosis:
    raw = out.model_dump(mode="json")
    raw_synthesis = synthesis.model_dump(mode="json") if synthesis is not None else None
    evidence = [f"{c.file}#{c.section}" if c.section else c.file for c in collect_citations(raw["causal_chains"])]
    if raw_synthesis is not None:
        top_findings = raw_synthesis["top_findings"]
        next_actions = [
            {"priority": a["priority"], "action": a["action"], "owner": a["owner"], "rationale": a["rationale"]}
            for a in raw_synthesis["actions_next"]
        ]
    else:
        top_findings = [
            {
                "title": c["symptom"]["description"],
                "detail": c["cause"]["description"],
                "severity": "high",
                "citations": c["cause"]["citations"],
            }
            for c in raw["causal_chains"]
        ]
        next_actions = [
            {"priority": i, "action": r["action"], "owner": r["target"], "rationale": r["rationale"]}
            for i, r in enumerate(raw["remediations"], start=1)
        ]
    meta = {**metadata, "causal_chains": raw["causal_chains"]}
    if raw_synthesis is not None:
        meta["summary"] = raw_synthesis["summary"]
    return Diagnosis(
        failure_type=out.failure_type,
        root_cause=out.root_cause,
        evidence=evidence,
        affected_components=out.affected_components,
        confidence=out.confidence,
        detailed_analysis=out.detailed_analysis,
        remediations=raw["remediations"],
        next_actions=next_actions,
        top_findings=top_findings,
        metadata=meta,
        citations=collect_citations([raw, raw_synthesis]),
        raw={"diagnosis": raw, "synthesis": raw_synthesis},
        responsible_agent=out.responsible_agent,
        decisive_step=raw["decisive_step"],
        errors=raw["errors"],
    )


class StagedAnalysisResult(BaseModel):
    """All four stage outputs of one analysis, with usage, store id and prompt versions.

    It also holds the files the analysis rendered and sent (`files`: redacted, on disk, read on
    access), so the report embeds exactly the text that was cited without rendering the trace
    again; `release()` deletes them (garbage collection does too). Nothing of the analysis stays
    on the analyst.
    """

    trace_id: str
    store_id: str | None
    trace_analysis: TraceAnalysisOutput | None = None
    gap_analysis: GapAnalysisOutput | None = None
    diagnosis: DiagnosisOutput | None = None
    synthesis: SynthesisOutput | None = None
    usage: dict[str, CallUsage] = {}
    prompt_versions: dict[str, str] = {}
    artifacts_dir: str | None = None
    verification: dict[str, dict[str, Any]] = {}  # per stage: cited, verified, unverified claims
    redactions: dict[str, int] = {}  # secrets of each kind redacted from what this analysis sent
    stage_metadata: dict[str, dict[str, Any]] = {}  # per stage: prompt version, model, tokens, duration, store
    _files: Sequence[tuple[str, str]] | None = PrivateAttr(default=None)

    @property
    def files(self) -> Sequence[tuple[str, str]] | None:
        """The files this analysis rendered (redacted unless redaction was off), as sent; None when
        it rendered none (an analysis of an existing store) or they were released."""
        return self._files

    def release(self) -> None:
        """Delete the rendered files from disk now."""
        close = getattr(self._files, "close", None)
        if close is not None:
            close()
        self._files = None


def mark_verified(diagnosis: Diagnosis, verification: dict[str, Any] | None) -> None:
    """Flag each localised error (and the decisive step) as verified or not, when checked."""
    if verification is None:
        return
    bad = {u["path"] for u in verification.get("unverified", [])}
    for i, error in enumerate(diagnosis.errors):
        error["verified"] = f"errors[{i}]" not in bad
    if diagnosis.decisive_step is not None:
        diagnosis.decisive_step["verified"] = "decisive_step" not in bad


def from_complete_analysis(complete: CompleteAnalysis, trace_id: str | None = None) -> StagedAnalysisResult:
    """A host-side `CompleteAnalysis` (from either analyst) as the stage outputs the report reads.

    Both analysts keep each stage's raw JSON, so nothing is lost; the simple analyst has no
    synthesis, and its report says only what stages 1-3 said.
    """
    diagnosis_raw = complete.diagnosis.raw or {}
    synthesis_raw = diagnosis_raw.get("synthesis") if isinstance(diagnosis_raw, dict) else None
    return StagedAnalysisResult(
        trace_id=trace_id or complete.trace_analysis.trace_id,
        store_id=complete.trace_analysis.metadata.get("store_id"),
        trace_analysis=TraceAnalysisOutput.model_validate(complete.trace_analysis.raw),
        gap_analysis=GapAnalysisOutput.model_validate(complete.gap_analysis.raw),
        diagnosis=DiagnosisOutput.model_validate(diagnosis_raw.get("diagnosis", diagnosis_raw)),
        synthesis=SynthesisOutput.model_validate(synthesis_raw) if synthesis_raw else None,
    )


def result_of(run: AnalysisRun, outputs: Mapping[str, Any], artifacts_dir: Path | None) -> StagedAnalysisResult:
    """One analysis's result: its stage outputs, and what its run counted (usage, versions,
    citation checks, redactions) and the files it rendered."""
    result = StagedAnalysisResult(
        trace_id=run.trace_id or "",
        store_id=run.store_id,
        trace_analysis=outputs.get("stage1"),
        gap_analysis=outputs.get("stage2"),
        diagnosis=outputs.get("stage3"),
        synthesis=outputs.get("stage4"),
        usage=dict(run.usage),
        prompt_versions={k: m.get("prompt_version", STAGE_BY_KEY[k].prompt_ref) for k, m in run.meta.items()},
        artifacts_dir=str(artifacts_dir) if artifacts_dir else None,
        verification={k: m["verification"] for k, m in run.meta.items() if "verification" in m},
        redactions=run.redaction.as_dict(),
        stage_metadata={k: dict(v) for k, v in run.meta.items()},
    )
    result._files = run.spool
    return result
