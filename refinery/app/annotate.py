"""`--annotate`: an analysis folder's diagnosis written back to the platform its trace came from.

Why: the people who read traces read them in Phoenix, Langfuse or LangSmith. A failed trace there
should say what refinery found, on the span that failed, without opening refinery's report.

Everything comes from the folder — the fetched trace (`trace.json`, which names its source), Stage
3's diagnosis and citation check — so a folder already analysed is annotated without a new
analysis, and a run that just finished is annotated the same way. The platform is reached with the
endpoint and credentials the fetching used (`traces.sources.platform_caller`); a refusal or an
outage is one line naming the platform, recorded in `annotations.json` beside what was meant to be
written; the analysis's own results are never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from refinery.analysis.staged_schemas import DiagnosisOutput
from refinery.analysis.stages import STAGE_ARTIFACTS
from refinery.app.exit_codes import exit_code_for
from refinery.core.annotations import Annotation
from refinery.core.artifacts import read_json, write_json_atomic
from refinery.core.offload import off_loop
from refinery.errors import RefineryError, UserInputError
from refinery.report.annotations import annotations_for
from refinery.traces import load_trace
from refinery.traces.sources import SourceRef, is_source_ref, kept_source, platform_caller
from refinery.wire.annotations_langfuse import write_langfuse
from refinery.wire.annotations_langsmith import write_langsmith
from refinery.wire.annotations_phoenix import write_phoenix

__all__ = ["ANNOTATIONS_JSON", "AnnotationOutcome", "annotate_folder", "annotation_plan", "is_annotated_source"]

ANNOTATIONS_JSON = "annotations.json"
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class AnnotationPlan:
    """What a folder's diagnosis becomes on its trace's platform."""

    ref: SourceRef
    annotations: list[Annotation]
    root_run_id: str  # LangSmith: the run the trace's own feedback goes on


@dataclass
class AnnotationOutcome:
    platform: str
    folder: Path
    annotations: list[Annotation] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    exit_code: int = 0

    @property
    def line(self) -> str:
        """What the command line says of it, in one line."""
        if self.error is not None:
            return f"annotations not written: {self.error}"
        spans = sum(1 for a in self.annotations if a.span_id is not None)
        return f"annotated in {self.platform}: the verdict on the trace and {spans} span annotation(s)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "written": self.error is None,
            "error": self.error,
            "annotations": [{**a.model_dump(), "target": a.target} for a in self.annotations],
            "answers": self.answers,
        }


def is_annotated_source(folder: Path) -> bool:
    """Whether the folder's trace was fetched by id (the only kind `--annotate` can write back to)."""
    path = folder / "trace.json"
    return path.is_file() and kept_source(path) is not None


def annotation_plan(folder: Path) -> AnnotationPlan:
    """The annotations of a folder's diagnosis (blocking: reads the trace and the diagnosis)."""
    trace_file = folder / "trace.json"
    source = kept_source(trace_file) if trace_file.is_file() else None
    ref = is_source_ref(source) if source else None
    if ref is None:
        raise UserInputError(
            f"{folder}: --annotate writes back to the platform a trace was fetched from; give the trace by id "
            "(phoenix:<id>, langfuse:<id>, langsmith:<id>)"
        )
    stage3 = read_json(folder / STAGE_ARTIFACTS["stage3"], follow=False)
    if not isinstance(stage3, dict) or "output" not in stage3:
        raise UserInputError(f"{folder / STAGE_ARTIFACTS['stage3']}: no diagnosis to write; run stage 3 first")
    diagnosis = DiagnosisOutput.model_validate(stage3["output"])
    trace = load_trace(trace_file)
    runs = list(trace.runs)
    trace_id = trace.trace_id or ref.trace_id
    roots = [r.id for r in runs if not r.parent_run_id]
    annotations = annotations_for(
        diagnosis,
        trace_id=trace_id,
        verification=(stage3.get("meta") or {}).get("verification"),
        span_ids={r.id for r in runs},
        report=str((folder / "report.html").resolve()),
        source=str(ref),
    )
    return AnnotationPlan(ref, annotations, roots[0] if roots else trace_id)


async def annotate_folder(folder: str | Path, *, env: Mapping[str, str] | None = None) -> AnnotationOutcome:
    """Write the folder's diagnosis to its trace's platform; record it in `annotations.json`.

    A folder that cannot be annotated (a trace from a file, no diagnosis yet) raises; a platform's
    refusal or outage is returned as the outcome's one-line `error` (and exit code), recorded too."""
    folder = Path(folder)
    plan = await off_loop(lambda _stop: annotation_plan(folder))
    outcome = AnnotationOutcome(plan.ref.platform, folder, plan.annotations)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)) as session:
            call = platform_caller(session, plan.ref.platform, env)
            if plan.ref.platform == "phoenix":
                outcome.answers = await write_phoenix(call, plan.annotations)
            elif plan.ref.platform == "langfuse":
                outcome.answers = await write_langfuse(call, plan.annotations)
            else:
                outcome.answers = await write_langsmith(call, plan.annotations, plan.root_run_id)
    except RefineryError as exc:
        outcome.error, outcome.exit_code = str(exc).splitlines()[0], exit_code_for(exc)
    await asyncio.to_thread(write_json_atomic, folder / ANNOTATIONS_JSON, outcome.as_dict())
    return outcome
