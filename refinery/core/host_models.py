"""A host's own trace and expectation objects, accepted at the library's boundary.

Why: a host application often has its own pydantic `Trace`/`TraceRun` (or dataclasses) with the
same fields as refinery's. Passed as they are, they failed deep inside rendering
(`'HostRun' object has no attribute 'step'`). Here they are validated once, on the way in — from
their attributes, a mapping or a pydantic model's dump — and whatever does not fit is one line
naming the field and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from refinery.core.models import DomainExpertExpectation, Trace
from refinery.errors import UserInputError

__all__ = ["as_expectation", "as_trace"]

M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], value: Any, what: str) -> M:
    if isinstance(value, model):
        return value
    try:
        if isinstance(value, BaseModel):
            return model.model_validate(value.model_dump())
        if isinstance(value, Mapping):
            return model.model_validate(dict(value))
        return model.model_validate(value, from_attributes=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "(the object itself)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise UserInputError(
            f"{what} does not fit refinery's {model.__name__}: field {where}: {first.get('msg')}{more}"
        ) from None


def as_trace(value: Any) -> Trace:
    """refinery's `Trace` from a host's trace object (pydantic model, dataclass, object or mapping)."""
    return _validated(Trace, value, "the trace")


def as_expectation(value: Any) -> DomainExpertExpectation:
    """refinery's `DomainExpertExpectation` from a host's object, a mapping, or plain text."""
    if isinstance(value, str):
        return DomainExpertExpectation(description=value)
    return _validated(DomainExpertExpectation, value, "the expectation")
