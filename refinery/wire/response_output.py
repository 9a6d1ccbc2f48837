"""Reading the answer out of a raw Responses API object. Pure functions.

The HTTP response has no `output_text` field (that is an SDK convenience): the answer is the
`output_text` parts of the `message` items in `output`, and with `file_search` the first item is
a `file_search_call`. A `refusal` part, `status: "incomplete"` and `status: "failed"` are answers
too, and each gets its own error so a caller can tell "the model said no" from "it ran out".
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from refinery.core.tokens import TOKEN_COUNTS
from refinery.errors import (
    IncompleteResponseError,
    OutputFormatError,
    RefusalError,
    ResponseFailedError,
)


def _message_parts(response: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for item in response.get("output") or []:
        if isinstance(item, dict) and item.get("type") == "message":
            parts.extend(p for p in item.get("content") or [] if isinstance(p, dict))
    return parts


def _joined_text(response: dict[str, Any]) -> str:
    top = response.get("output_text")
    if isinstance(top, str) and top:
        return top
    return "".join(p.get("text", "") for p in _message_parts(response) if p.get("type") == "output_text")


def output_text(response: dict[str, Any]) -> str:
    """The answer's text; raises on a refusal, an incomplete or a failed response."""
    if response.get("status") == "failed":
        raise ResponseFailedError(response.get("error"))
    refusals = [p.get("refusal", "") for p in _message_parts(response) if p.get("type") == "refusal"]
    if refusals:
        raise RefusalError(" ".join(r for r in refusals if r) or "(no reason given)")
    text = _joined_text(response)
    if response.get("status") == "incomplete":
        details = response.get("incomplete_details") or {}
        raise IncompleteResponseError(details.get("reason"), text)
    return text


def parse_json_text(text: str) -> Any:
    """`json.loads`, raising `OutputFormatError` (with the raw text kept) when it is not JSON."""
    try:
        return json.loads(text)
    except RecursionError:  # nested past Python's stack
        raise OutputFormatError(
            "output is nested too deeply to read", raw_text=text, problems=["nested too deeply"]
        ) from None
    except ValueError as exc:
        raise OutputFormatError(f"output is not valid JSON: {exc}", raw_text=text, problems=[str(exc)]) from exc


def parse_json_output(response: dict[str, Any]) -> dict[str, Any]:
    """The answer parsed as a JSON object."""
    text = output_text(response)
    value = parse_json_text(text)
    if not isinstance(value, dict):
        raise OutputFormatError("output JSON is not an object", raw_text=text, problems=["root is not an object"])
    return value


def file_search_results(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunks `file_search` retrieved (present when `include` asked for them)."""
    out: list[dict[str, Any]] = []
    for item in response.get("output") or []:
        if isinstance(item, dict) and item.get("type") == "file_search_call":
            out.extend(r for r in item.get("results") or [] if isinstance(r, dict))
    return out


def citations(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The `file_citation` annotations of the answer's text parts."""
    out: list[dict[str, Any]] = []
    for part in _message_parts(response):
        for ann in part.get("annotations") or []:
            if isinstance(ann, dict) and ann.get("type") == "file_citation":
                out.append(ann)
    return out


MAX_CALL_TOKENS = 100_000_000  # more than any context window and output: a count past it is no count


def _count(value: Any) -> int | None:
    """A token count as a server states it: a whole number from 0 to `MAX_CALL_TOKENS`, else None
    (negative, `"lots"`, NaN, a fraction, absurd)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_CALL_TOKENS:
        return value
    return None


class CallUsage(BaseModel):
    """Token usage of one API call, labelled by the caller (e.g. a stage name). `unknown`: the
    server stated usage that is no count (negative, not a number, absurd): its counts are left at
    0 and the call is charged its worst case against `--max-cost`, never nothing."""

    label: str | None = None
    model: str | None = None
    response_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    unknown: bool = Field(default=False, exclude=True)

    @classmethod
    def from_response(cls, response: dict[str, Any], label: str | None = None) -> "CallUsage":
        u = response.get("usage")
        u = {} if u is None else u
        model, rid = response.get("model"), response.get("id")
        meta = {"label": label, "model": model if isinstance(model, str) else None, "response_id": rid}
        if not isinstance(meta["response_id"], str):
            meta["response_id"] = None
        if not isinstance(u, dict):
            return cls(**meta, unknown=True)
        details_in, details_out = u.get("input_tokens_details") or {}, u.get("output_tokens_details") or {}
        stated = {
            "input_tokens": u.get("input_tokens"),
            "output_tokens": u.get("output_tokens"),
            "cached_tokens": details_in.get("cached_tokens") if isinstance(details_in, dict) else -1,
            "reasoning_tokens": details_out.get("reasoning_tokens") if isinstance(details_out, dict) else -1,
            "total_tokens": u.get("total_tokens"),
        }
        counts = {k: _count(v) for k, v in stated.items() if v is not None}
        if any(c is None for c in counts.values()):
            return cls(**meta, unknown=True)
        inp, outp = counts.get("input_tokens", 0), counts.get("output_tokens", 0)
        return cls(
            **meta,
            input_tokens=inp,
            output_tokens=outp,
            cached_tokens=counts.get("cached_tokens", 0),
            reasoning_tokens=counts.get("reasoning_tokens", 0),
            total_tokens=counts.get("total_tokens") or (inp + outp),
        )

    def counts(self) -> dict[str, int]:
        """The token counts alone (`TOKEN_COUNTS`), as artifacts and usage summaries record them."""
        return {k: getattr(self, k) for k in TOKEN_COUNTS}

    @classmethod
    def total(cls, usages: "Iterable[CallUsage]", label: str | None) -> "CallUsage":
        """Several calls' usage summed under one label (a stage, a call with its re-asks)."""
        summed = cls(label=label)
        for u in usages:
            summed = summed + u
        summed.label = label
        return summed

    def __add__(self, other: "CallUsage") -> "CallUsage":
        return CallUsage(
            label=self.label if self.label == other.label else None,
            model=self.model or other.model,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            unknown=self.unknown or other.unknown,
        )
