"""Stage requests answered from a Batch API's downloaded results: a transport stand-in.

Why a transport and not a model of its own: `ResponsesClient.create_json` already reads an answer
the way refinery trusts — output text, refusal, a cut-off answer retried once with a larger
budget, a schema check with one format re-ask, usage summed. Put under it, this stand-in gives
batch answers exactly that reading: `POST /responses` is answered from the outcome with the
request's `custom_id` (a digest of the body, which is deterministic, so a rerun asks for the same
ids), and a request with no answer yet is recorded for the next batch and stops its analysis with
`RequestDeferred`. A line that failed or expired is recorded once more; after `max_tries` batches
it fails the analysis with the batch's reason (or, with `fallback`, is sent live).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from refinery.errors import APIError, APIStatusError, ConfigurationError, RequestDeferred
from refinery.wire.transport import ApiResponse

__all__ = ["BatchAnswers", "Outcome", "PendingRequest", "custom_id_for"]

ANSWERED_PATH = "/responses"


def custom_id_for(body: Mapping[str, Any]) -> str:
    """The id of a request body in a batch: a digest of its canonical JSON (same body, same id)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "rf-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


class Outcome(Protocol):
    """One output or error line of a batch, as `wire.batch_jsonl.read_outcomes` reads it."""

    custom_id: str
    status_code: int | None
    body: dict[str, Any] | None
    error: dict[str, Any] | None


@dataclass
class PendingRequest:
    """A request waiting for the next batch: its body, the stage it is for, who asked."""

    custom_id: str
    body: dict[str, Any]
    stage: str | None
    traces: set[str] = field(default_factory=set)


class _Fallback(Protocol):
    async def request(self, method: str, path: str, **kwargs: Any) -> ApiResponse: ...


class _Settings:
    base_url = "batch"
    backend = "openai"
    host = "the Batch API's results"


class BatchAnswers:
    """What `ResponsesClient(transport=BatchAnswers(...))` sends through, for one trace in one round.

    `outcomes`: every line downloaded so far by custom id (later batches over earlier ones);
    `tries`: how many finished batches carried each id; `pending`: shared by a round's traces,
    where requests without an answer are recorded (`trace` names who asked).
    """

    settings = _Settings()
    budget_stats = None

    def __init__(
        self,
        outcomes: Mapping[str, Outcome],
        tries: Mapping[str, int],
        pending: MutableMapping[str, PendingRequest],
        *,
        trace: str,
        max_tries: int = 2,
        fallback: _Fallback | None = None,
        reasons: Mapping[str, str] | None = None,
    ) -> None:
        self.outcomes, self.tries, self.pending = outcomes, tries, pending
        self.trace = trace
        self.max_tries = max(1, max_tries)
        self.fallback = fallback
        self.reasons = reasons or {}  # custom id -> why its last batch left it unanswered

    async def request(
        self, method: str, path: str, *, json: Any = None, cost: int | None = None, cost_class: str | None = None
    ) -> ApiResponse:
        if method != "POST" or path != ANSWERED_PATH or not isinstance(json, dict):
            raise ConfigurationError(f"the Batch API engine answers POST {ANSWERED_PATH} only, not {method} {path}")
        cid = custom_id_for(json)
        outcome = self.outcomes.get(cid)
        if outcome is not None and _answered(outcome):
            return ApiResponse(200, {}, outcome.body)
        tried = self.tries.get(cid, 0)
        if tried and self.fallback is not None:  # `--sync-retry`: a failed line is sent live once
            return await self.fallback.request(method, path, json=json, cost=cost, cost_class=cost_class)
        if tried >= self.max_tries:
            raise _failure(cid, outcome, tried, self.reasons.get(cid))
        waiting = self.pending.setdefault(cid, PendingRequest(cid, json, cost_class))
        waiting.traces.add(self.trace)
        raise RequestDeferred(cid)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> BatchAnswers:
        return self


def _answered(outcome: Outcome) -> bool:
    return outcome.status_code == 200 and isinstance(outcome.body, dict) and not outcome.error


def _failure(cid: str, outcome: Outcome | None, tried: int, reason: str | None = None) -> APIError:
    """Why a request that went into `tried` batches has no answer, as the live call would say it."""
    if outcome is None:
        return APIError(f"batch line {cid}: no answer after {tried} batches ({reason or 'none came back'})")
    error = outcome.error or (outcome.body or {}).get("error") or {}
    message = str(error.get("message") or "no message") if isinstance(error, dict) else str(error)
    code = str(error.get("code")) if isinstance(error, dict) and error.get("code") else None
    return APIStatusError(
        f"batch line {cid} failed in {tried} batches: {message}", status=outcome.status_code, code=code
    )
