"""refinery's annotations as LangSmith feedback: `POST /api/v1/feedback`, one a feedback.

The body is LangSmith's documented `FeedbackCreateSchema`: `id` chosen by the caller (the stable
id), `run_id` (the span's run, or the trace's root run for the verdict), `trace_id`, `key` (the
annotation's name), `score`, `value` (the label), `comment` and `feedback_source` of type `model`
with refinery's metadata. A feedback that exists already (a rerun) is answered 409: it is then
updated in place, `PATCH /api/v1/feedback/{id}` with the same score, value and comment — never a
second copy. The comment is bounded at 4,000 characters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from refinery.core.annotations import Annotation, clip

__all__ = ["LIMITS", "langsmith_bodies", "write_langsmith"]

Poster = Callable[..., Awaitable[Any]]
LIMITS = {"value": 200, "comment": 4_000}
CONFLICT = 409


def langsmith_bodies(annotations: Sequence[Annotation], root_run_id: str) -> list[dict[str, Any]]:
    """One feedback body each; the trace's own annotations go on `root_run_id`."""
    return [
        {
            "id": a.id,
            "run_id": a.span_id or root_run_id,
            "trace_id": a.trace_id,
            "key": a.name,
            "score": a.score,
            "value": clip(a.label, LIMITS["value"]),
            "comment": clip(a.explanation, LIMITS["comment"]),
            "feedback_source": {"type": "model", "metadata": dict(a.metadata)},
        }
        for a in annotations
    ]


async def write_langsmith(call: Poster, annotations: Sequence[Annotation], root_run_id: str) -> list[dict[str, Any]]:
    answers = []
    for body in langsmith_bodies(annotations, root_run_id):
        what = body["trace_id"]  # a refusal names the trace, as the fetching's do
        answer = await call("POST", "/api/v1/feedback", what, json_body=body, accept=frozenset({CONFLICT}))
        if (answer or {}).get("status") == CONFLICT:  # written before: update it
            update = {k: body[k] for k in ("score", "value", "comment")}
            await call("PATCH", f"/api/v1/feedback/{body['id']}", what, json_body=update)
            answers.append({"path": "/api/v1/feedback", "ids": [body["id"]], "updated": True})
        else:
            answers.append({"path": "/api/v1/feedback", "ids": [body["id"]], "updated": False})
    return answers
