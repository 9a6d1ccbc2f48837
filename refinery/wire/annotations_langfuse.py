"""refinery's annotations as Langfuse scores: `POST /api/public/scores`, one a score.

The body is Langfuse's documented `CreateScoreRequest`: `id` (Langfuse updates the score holding
that id rather than adding one: the stable id makes a rerun an update), `traceId`, `observationId`
for a span's, `name`, `value` with `dataType` `CATEGORICAL` (a string: the failure type, the error
category), `comment` and `metadata`. A score carries one value, so the number refinery gives
(confidence, impact) goes in `metadata.score` and the comment's first line. The comment is bounded
at 3,000 characters, Langfuse's limit for comments.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from refinery.core.annotations import Annotation, clip

__all__ = ["LIMITS", "langfuse_bodies", "write_langfuse"]

Poster = Callable[..., Awaitable[Any]]
LIMITS = {"value": 200, "comment": 3_000}


def langfuse_bodies(annotations: Sequence[Annotation]) -> list[dict[str, Any]]:
    bodies = []
    for a in annotations:
        scored = f"score {a.score:g} · " if a.score is not None else ""
        body: dict[str, Any] = {
            "id": a.id,
            "traceId": a.trace_id,
            "name": a.name,
            "value": clip(a.label, LIMITS["value"]),
            "dataType": "CATEGORICAL",
            "comment": clip(f"{scored}{a.explanation}", LIMITS["comment"]),
            "metadata": {**a.metadata, "score": a.score},
        }
        if a.span_id is not None:
            body["observationId"] = a.span_id
        bodies.append(body)
    return bodies


async def write_langfuse(call: Poster, annotations: Sequence[Annotation]) -> list[dict[str, Any]]:
    answers = []
    for body in langfuse_bodies(annotations):
        answer = await call("POST", "/api/public/scores", body["traceId"], json_body=body)
        answers.append({"path": "/api/public/scores", "ids": [(answer or {}).get("id", body["id"])]})
    return answers
