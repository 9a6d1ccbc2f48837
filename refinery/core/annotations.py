"""refinery's diagnosis as annotations, vendor-neutral: what `--annotate` writes back to Phoenix,
Langfuse and LangSmith. Pure.

Why a neutral form: the three platforms name the same thing differently (a Phoenix span
annotation, a Langfuse score, a LangSmith feedback), but what refinery says — the verdict on the
trace, the decisive step and each verified error on its span — is one list. Each writer shapes
that list for its platform; `annotations.json` records it.

Why ids derived from trace, span and name: a rerun, or a resumed batch, must update what it wrote,
never add a second copy. `annotation_id` is a UUID5 of those, the same on every machine, used as
Phoenix's `identifier`, Langfuse's score `id` and LangSmith's feedback `id`.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ANNOTATION_NAMES", "Annotation", "annotation_id", "clip"]

# the names as they read in each platform's UI
VERDICT = "refinery.verdict"
DECISIVE_STEP = "refinery.decisive_step"
ERROR = "refinery.error"
ANNOTATION_NAMES = (VERDICT, DECISIVE_STEP, ERROR)

# refinery's own namespace for annotation ids (uuid5 of it and "refinery.annotations")
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/refinery-analyst/refinery/annotations")


def annotation_id(trace_id: str, span_id: str | None, name: str, ordinal: int = 0) -> str:
    """The annotation's stable id: the same trace, span, name and ordinal (the n-th error on one
    span) give the same UUID, so writing again updates instead of duplicating."""
    return str(uuid.uuid5(_NAMESPACE, f"{trace_id}\x1f{span_id or ''}\x1f{name}\x1f{ordinal}"))


def clip(text: str, limit: int) -> str:
    """`text` within `limit` characters, an ellipsis marking a cut (a platform's field limit)."""
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


class Annotation(BaseModel):
    """One thing refinery says about a trace or one of its spans."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str  # `annotation_id(...)`: a repeat is an update
    trace_id: str
    span_id: str | None  # None: on the whole trace (LangSmith: its root run)
    name: Literal["refinery.verdict", "refinery.decisive_step", "refinery.error"]
    label: str
    score: float | None = None
    explanation: str
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def target(self) -> str:
        return "trace" if self.span_id is None else "span"
