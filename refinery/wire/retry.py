"""When to try an API call again, as pure functions (after openai-python's `_base_client`).

Why pure: the retry rules are the part of the transport most worth testing case by case, and a
function of (failure, status, headers, attempts so far, policy) can be tested as a table with no
HTTP, no clock and no sleeping. The transport only sends, asks `next_wait`, and sleeps.

The rules:
- 429 `insufficient_quota` → never (retrying can never succeed);
- 429 otherwise → what the server says (`retry-after-ms`, `retry-after`, `x-ratelimit-reset-*`),
  or a jittered 60–120 s when it says nothing; bounded by a count and by the total wait;
- 408/409/5xx, connection errors and timeouts → jittered exponential backoff, a few times (a
  server hint of at most 60 s wins);
- `x-should-retry: true|false` overrides the status-based decision;
- everything else → never.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from refinery.errors import APIError, QuotaExceededError, RateLimitError
from refinery.wire.rate_limit_headers import retry_after_seconds

RETRYABLE_STATUS = frozenset({408, 409, 500, 502, 503, 504})
Rng = Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Every number is a bound, so a call always ends."""

    max_retries: int = 3  # for 5xx / connection / timeout
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    max_rate_limit_retries: int = 4
    max_rate_limit_wait_s: float = 600.0  # total seconds spent waiting on 429s for one call
    fallback_rate_limit_wait_s: tuple[float, float] = (60.0, 120.0)

    def backoff(self, attempt: int, rng: Rng) -> float:
        """Full-jitter exponential backoff for the `attempt`-th retry (1-based)."""
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * (2 ** (attempt - 1)))
        return ceiling * (0.5 + 0.5 * rng())


@dataclass
class Attempts:
    """What one call has been through so far."""

    transient: int = 0
    rate_limited: int = 0
    rate_limit_waited_s: float = 0.0

    def record(self, retry: "Retry") -> None:
        if retry.kind == "rate_limit":
            self.rate_limited += 1
            self.rate_limit_waited_s += retry.wait_s
        else:
            self.transient += 1


@dataclass(frozen=True)
class Retry:
    wait_s: float
    kind: Literal["rate_limit", "transient"]


def next_wait(
    failure: APIError,
    status: int,
    headers: Mapping[str, str],
    attempts: Attempts,
    policy: RetryPolicy,
    rng: Rng = random.random,
) -> Retry | None:
    """The wait before the next try of a call that failed with `failure`, or None to give up.

    `status` is the HTTP status (0 when no answer arrived); `headers` the answer's headers,
    lower-cased (empty when none arrived).
    """
    should_retry = headers.get("x-should-retry")
    if isinstance(failure, QuotaExceededError):
        return None
    if isinstance(failure, RateLimitError) and should_retry != "false":
        hinted = retry_after_seconds(headers)
        if hinted is None:
            lo, hi = policy.fallback_rate_limit_wait_s
            wait = lo + (hi - lo) * rng()
        else:
            wait = hinted
        if (
            attempts.rate_limited >= policy.max_rate_limit_retries
            or attempts.rate_limit_waited_s + wait > policy.max_rate_limit_wait_s
        ):
            return None
        return Retry(wait, "rate_limit")
    retryable = should_retry == "true" or (should_retry != "false" and (status in RETRYABLE_STATUS or status == 0))
    if not retryable or attempts.transient >= policy.max_retries:
        return None
    wait = policy.backoff(attempts.transient + 1, rng)
    hinted = retry_after_seconds(headers)
    if hinted is not None and hinted <= 60:
        wait = hinted
    return Retry(wait, "transient")
