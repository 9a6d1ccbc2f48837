"""refinery's annotations as Phoenix span and trace annotations: `POST /v1/trace_annotations` and
`POST /v1/span_annotations` (`?sync=true`: Phoenix answers once they are stored, and a span it does
not hold is a 404 rather than a silent drop).

The bodies follow Phoenix's own OpenAPI (`TraceAnnotationData` / `SpanAnnotationData`: `name`,
`annotator_kind`, `result` `{label, score, explanation}`, `metadata`, `identifier`, `trace_id` or
`span_id`). Phoenix stores an annotation once per (name, span, identifier), so the stable
`identifier` makes a rerun an update. Phoenix states no length limit; refinery bounds its own texts
(`LIMITS`) so one long root cause cannot make a body the server refuses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from refinery.core.annotations import Annotation, clip

__all__ = ["LIMITS", "phoenix_requests", "write_phoenix"]

Poster = Callable[..., Awaitable[Any]]  # (method, path, what, *, json_body=...) → the answer's JSON
LIMITS = {"label": 200, "explanation": 10_000}


def _item(a: Annotation) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": a.name,
        "annotator_kind": "LLM",
        "result": {
            "label": clip(a.label, LIMITS["label"]),
            "score": a.score,
            "explanation": clip(a.explanation, LIMITS["explanation"]),
        },
        "metadata": dict(a.metadata),
        "identifier": a.id,
    }
    return {**item, "trace_id": a.trace_id} if a.span_id is None else {**item, "span_id": a.span_id}


def phoenix_requests(annotations: Sequence[Annotation]) -> list[tuple[str, dict[str, Any]]]:
    """(path, body) for each request: the trace's annotations in one, the spans' in another."""
    on_trace = [_item(a) for a in annotations if a.span_id is None]
    on_spans = [_item(a) for a in annotations if a.span_id is not None]
    requests = [("/v1/trace_annotations?sync=true", {"data": on_trace})] if on_trace else []
    return requests + ([("/v1/span_annotations?sync=true", {"data": on_spans})] if on_spans else [])


async def write_phoenix(call: Poster, annotations: Sequence[Annotation]) -> list[dict[str, Any]]:
    """Send them; what each request was answered (Phoenix's ids of the stored annotations)."""
    answers = []
    for path, body in phoenix_requests(annotations):
        answer = await call("POST", path, annotations[0].trace_id, json_body=body)
        answers.append({"path": path.split("?")[0], "ids": [d.get("id") for d in (answer or {}).get("data") or []]})
    return answers
