"""An analysis's diagnosis as the annotations `--annotate` writes back (`core.annotations`). Pure.

What is written, and why only this:
- on the trace, `refinery.verdict`: the failure type as label, the confidence as score, the root
  cause as explanation, the report's path in metadata;
- on the decisive step's span, `refinery.decisive_step`: why the run was lost there;
- on each error's span, `refinery.error`: its category as label, its impact as score, refinery's
  description and the quote that shows it.

Only claims whose citation checked out against the trace (Stage 3's verification) are written: an
unverified error or decisive step is left out, never written as a finding, and the verdict's
metadata counts what was left out. A claim on a span the trace does not hold is left out too (the
platform would refuse it). Every text is refinery's own or a quote the verification found in the
run's redacted text, and passes redaction once more before it leaves (a `--no-redact` analysis
still sends no secret to a trace platform).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from refinery.analysis.staged_schemas import DiagnosisOutput
from refinery.core.annotations import DECISIVE_STEP, ERROR, VERDICT, Annotation, annotation_id
from refinery.traces.redact import redact_text

__all__ = ["CONFIDENCE_SCORE", "IMPACT_SCORE", "annotations_for"]

# a number each platform can chart and filter on; the label says the word
CONFIDENCE_SCORE = {"low": 0.3, "medium": 0.6, "high": 0.9}
IMPACT_SCORE = {"low": 0.3, "medium": 0.6, "high": 0.9}


def annotations_for(
    diagnosis: DiagnosisOutput,
    *,
    trace_id: str,
    verification: Mapping[str, Any] | None,
    span_ids: Collection[str],
    report: str,
    source: str,
) -> list[Annotation]:
    """The verdict on `trace_id`, then the decisive step and each verified error on its span.

    `verification` is Stage 3's check (`{"unverified": [{"path": …}]}`); None (never checked)
    writes the verdict only. `span_ids` are the trace's own run ids. `report` and `source` go in
    each annotation's metadata, so the UI links back to the full report."""
    unverified = {str(u.get("path")) for u in (verification or {}).get("unverified", [])}

    def checked(path: str, run_id: str) -> bool:
        return verification is not None and path not in unverified and run_id in span_ids

    meta = {"report": report, "source": source, "by": "refinery"}
    step = diagnosis.decisive_step
    written: list[Annotation] = []
    if checked("decisive_step", step.run_id):
        written.append(
            Annotation(
                id=annotation_id(trace_id, step.run_id, DECISIVE_STEP),
                trace_id=trace_id,
                span_id=step.run_id,
                name=DECISIVE_STEP,
                label="decisive step",
                score=1.0,
                explanation=_text(step.reason),
                metadata={**meta, "verified": True, "failure_type": diagnosis.failure_type.value},
            )
        )
    on_span: dict[str, int] = {}
    for i, error in enumerate(diagnosis.errors):
        if not checked(f"errors[{i}]", error.run_id):
            continue
        ordinal = on_span[error.run_id] = on_span.get(error.run_id, -1) + 1
        quote = _text(error.evidence)
        written.append(
            Annotation(
                id=annotation_id(trace_id, error.run_id, ERROR, ordinal),
                trace_id=trace_id,
                span_id=error.run_id,
                name=ERROR,
                label=error.category.value,
                score=IMPACT_SCORE[error.impact],
                explanation=_text(error.description) + (f'\n\nEvidence (verified quote): "{quote}"' if quote else ""),
                metadata={**meta, "verified": True, "impact": error.impact, "evidence": quote},
            )
        )
    left_out = sum(1 for i, e in enumerate(diagnosis.errors) if not checked(f"errors[{i}]", e.run_id))
    left_out += 0 if checked("decisive_step", step.run_id) else 1
    verdict = Annotation(
        id=annotation_id(trace_id, None, VERDICT),
        trace_id=trace_id,
        span_id=None,
        name=VERDICT,
        label=diagnosis.failure_type.value,
        score=CONFIDENCE_SCORE[diagnosis.confidence.value],
        explanation=_text(diagnosis.root_cause),
        metadata={
            **meta,
            "confidence": diagnosis.confidence.value,
            "responsible_agent": _text(diagnosis.responsible_agent),
            "decisive_step": step.run_id if checked("decisive_step", step.run_id) else None,
            "claims_written": len(written),
            "unverified_not_written": left_out,
        },
    )
    return [verdict, *written]


def _text(text: str) -> str:
    """refinery's text as sent: redacted once more, surrounding space trimmed."""
    return redact_text(text).strip()
