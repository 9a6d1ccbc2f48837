"""Rate limits and injected faults for the test server.

`RateLimiter` models OpenAI's per-minute request and token budgets as token buckets that refill
continuously, charging a request its estimated input tokens plus its `max_output_tokens` when it
arrives (as the API does), and produces the real `x-ratelimit-*` headers and 429 body.
`Fault`s are one-shot (or n-shot) misbehaviours a test arms on the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from refinery.testing.store_api import _error

FaultKind = Literal[
    "rate_limit",  # 429 rate_limit_exceeded with retry hints
    "quota",  # 429 insufficient_quota
    "http_error",  # any status (500/502/503/…) with the API's error body
    "delay",  # answer only after `delay_s` (past a client timeout)
    "answer_late",  # do the work (a file is made), then answer only after `delay_s`: the id may never be heard
    "drop_connection",  # send half the body, then close the connection
    "incomplete",  # status "incomplete", reason max_output_tokens, truncated text
    "refusal",  # a refusal content part
    "not_json",  # output text that is not JSON
    "schema_violation",  # JSON that breaks the requested schema
]


@dataclass
class Fault:
    """One armed misbehaviour. `path` is an endpoint whose handler takes faults ("/v1/responses",
    "/v1/files"), or any request as "METHOD /v1/path" where a trailing `*` matches any rest
    ("DELETE /v1/files/*"): those act before the handler (`delay`, errors) or after it (`answer_late`:
    the work is done, the answer comes late — what a client killed or timed out never hears)."""

    kind: FaultKind
    path: str = "/v1/responses"
    times: int = 1
    status: int = 500
    delay_s: float = 0.0
    retry_after_ms: int | None = 50
    match: str | None = None  # only requests whose body mentions this (e.g. "stage3_output")

    def applies(self, path: str, body_text: str) -> bool:
        same = path == self.path or (self.path.endswith("*") and path.startswith(self.path[:-1]))
        return self.times > 0 and same and (self.match is None or self.match in body_text)


def _duration(seconds: float) -> str:
    """Seconds in OpenAI's header style: "1.5s", "6m0s", "20ms"."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, secs = divmod(seconds, 60)
    if minutes >= 1:
        return f"{int(minutes)}m{secs:.0f}s" if secs == int(secs) else f"{int(minutes)}m{secs:.3g}s"
    return f"{secs:.3g}s"


class _Bucket:
    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = float(per_minute)
        self.clock = clock
        self.stamp = clock()

    def refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        self.refill()
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate

    def take(self, amount: float) -> None:
        self.refill()
        self.level -= amount

    def until_full(self) -> float:
        self.refill()
        return (self.capacity - self.level) / self.rate


class RateLimiter:
    """Per-minute request (RPM) and token (TPM) budgets; None means unlimited.

    A request is admitted when the token bucket holds its worst case (input estimate plus
    `max_output_tokens`, as OpenAI documents its rate limiting), which is taken at once; when it
    completes, what it did not use is given back (`charge`). So the sustainable throughput is
    the TPM in tokens used, and "total tokens ÷ TPM" is the floor a batch can approach.
    """

    def __init__(
        self, rpm: int | None = None, tpm: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rpm, self.tpm = rpm, tpm
        self.requests = _Bucket(rpm, clock) if rpm else None
        self.tokens = _Bucket(tpm, clock) if tpm else None
        self.rejected = 0

    def admit(self, cost_tokens: int, model: str = "gpt-4o") -> tuple[bool, dict[str, str], dict[str, Any] | None]:
        """(admitted, headers, 429 body or None). Charges the budgets when admitted."""
        wait_req = self.requests.wait_for(1) if self.requests else 0.0
        wait_tok = self.tokens.wait_for(cost_tokens) if self.tokens else 0.0
        if self.tokens and cost_tokens > self.tokens.capacity:
            wait_tok = float("inf")
        if wait_req == 0 and wait_tok == 0:
            if self.requests:
                self.requests.take(1)
            if self.tokens:
                self.tokens.take(cost_tokens)
            return True, self.headers(), None
        self.rejected += 1
        headers = self.headers()
        if wait_tok >= wait_req:
            kind, limit, used, wait = (
                "tokens per min (TPM)",
                self.tpm,
                int(self.tokens.capacity - self.tokens.level) if self.tokens else 0,
                wait_tok,
            )
        else:
            kind, limit, used, wait = (
                "requests per min (RPM)",
                self.rpm,
                int(self.requests.capacity - self.requests.level) if self.requests else 0,
                wait_req,
            )
        if wait == float("inf"):
            message = f"Request too large for {model} on {kind}: Limit {limit}, Requested {cost_tokens}."
            wait = 60.0
        else:
            message = (
                f"Rate limit reached for {model} in organization org-test on {kind}: Limit {limit}, Used {used}, "
                f"Requested {cost_tokens if 'TPM' in kind else 1}. Please try again in {_duration(wait)}."
            )
        headers["retry-after-ms"] = str(max(1, int(wait * 1000 + 0.999)))
        headers["retry-after"] = str(max(1, int(wait + 0.999)))
        body = {
            "error": {
                "message": message,
                "type": "tokens" if "TPM" in kind else "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
        return False, headers, body

    def charge(self, used_tokens: int, reserved_tokens: int) -> None:
        """Settle a completed request: give back what it reserved and did not use."""
        if self.tokens:
            self.tokens.refill()
            self.tokens.level = min(self.tokens.capacity, self.tokens.level + reserved_tokens - used_tokens)

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.requests:
            self.requests.refill()
            h["x-ratelimit-limit-requests"] = str(self.rpm)
            h["x-ratelimit-remaining-requests"] = str(max(0, int(self.requests.level)))
            h["x-ratelimit-reset-requests"] = _duration(self.requests.until_full())
        if self.tokens:
            self.tokens.refill()
            h["x-ratelimit-limit-tokens"] = str(self.tpm)
            h["x-ratelimit-remaining-tokens"] = str(max(0, int(self.tokens.level)))
            h["x-ratelimit-reset-tokens"] = _duration(self.tokens.until_full())
        return h


async def drop_mid_body(request: web.Request, payload: bytes, headers: dict[str, str]) -> web.StreamResponse:
    """Promise the whole body, send half, cut the connection."""
    resp = web.StreamResponse(status=200, headers={**headers, "Content-Type": "application/json"})
    resp.content_length = len(payload)
    await resp.prepare(request)
    await resp.write(payload[: len(payload) // 2])
    if request.transport is not None:
        request.transport.close()
    return resp


async def around(
    fault: Fault,
    request: web.Request,
    answer: Callable[[], Awaitable[web.StreamResponse]],
    transport_fault: Callable[[Fault], Awaitable[web.StreamResponse | None]],
) -> web.StreamResponse:
    """A fault armed on any request ("METHOD /v1/path"): `answer_late` does the work, then answers
    after `delay_s`; `drop_connection` does it, then sends half the answer and cuts the connection
    (a download cut short); the others act before the work (`delay` sleeps first, errors answer
    instead)."""
    if request.can_read_body and not request.content_type.startswith("multipart/"):
        await request.read()  # the body is kept: the work is done even if the client has gone
    if fault.kind == "drop_connection":
        response = await answer()
        body = response.body if isinstance(response, web.Response) else None
        if isinstance(body, bytes) and response.status < 400:
            return await drop_mid_body(request, body, {"x-request-id": response.headers.get("x-request-id", "")})
        return response
    if fault.kind == "answer_late":
        response = await answer()
        await asyncio.sleep(fault.delay_s)  # done; its answer comes late, or to nobody
        return response
    early = await transport_fault(fault)
    return early if early is not None else await answer()


async def transport_fault(fault: Fault | None, limiter: RateLimiter) -> web.StreamResponse | None:
    """Faults that act on the exchange rather than the content."""
    if fault is None:
        return None
    if fault.kind == "quota":
        return _error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            code="insufficient_quota",
        )
    if fault.kind == "rate_limit":
        resp = _error(
            429,
            "Rate limit reached for requests. Please try again shortly.",
            "requests",
            code="rate_limit_exceeded",
        )
        if fault.retry_after_ms is not None:
            resp.headers["retry-after-ms"] = str(fault.retry_after_ms)
        resp.headers.update(limiter.headers())
        return resp
    if fault.kind == "http_error":
        return _error(
            fault.status,
            "The server had an error while processing your request.",
            "server_error" if fault.status >= 500 else "invalid_request_error",
        )
    if fault.kind == "delay":
        await asyncio.sleep(fault.delay_s)
        return None
    return None
