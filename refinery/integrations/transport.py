"""The one HTTP core every OpenAI call goes through: session, headers, retries, typed errors.

Why one core: the Responses client and the vector store manager hit the same API with the same
failure modes (rate limits, 5xx, dropped connections). Writing the retry rules once keeps them
consistent and testable. This module knows HTTP and OpenAI's error shapes; it knows nothing of
stages, prompts or traces.

Retry rules (after openai-python's `_base_client`):
- 429 `insufficient_quota` → `QuotaExceededError` at once (retrying can never succeed);
- 429 otherwise → wait what the server says (`retry-after-ms`, `retry-after`,
  `x-ratelimit-reset-*`), or a jittered 60–120 s when it says nothing; bounded by a count and a
  total wait, then `RateLimitError` carrying the last headers;
- 408/409/5xx, connection errors, timeouts → jittered exponential backoff, a few times;
- `x-should-retry: true|false` overrides the status-based decision;
- other 4xx → a typed error with the API's `error.message`, `type`, `param` and `code`.
Sleeping and the clock are injectable so tests never wait for real.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from refinery.errors import (
    CANARY_HINT,
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
)
from refinery.integrations.rate_budget import RateBudget, Reservation
from refinery.integrations.rate_limit_headers import retry_after_seconds

log = logging.getLogger("refinery.transport")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
FormFactory = Callable[[], aiohttp.FormData]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Every number is a bound, so a call always ends."""

    max_retries: int = 3  # for 5xx / connection / timeout
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    max_rate_limit_retries: int = 4
    max_rate_limit_wait_s: float = 600.0  # total seconds spent waiting on 429s for one call
    fallback_rate_limit_wait_s: tuple[float, float] = (60.0, 120.0)

    def backoff(self, attempt: int, rng: Callable[[], float]) -> float:
        """Full-jitter exponential backoff for the `attempt`-th retry (1-based)."""
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * (2 ** (attempt - 1)))
        return ceiling * (0.5 + 0.5 * rng())


@dataclass(frozen=True)
class ApiSettings:
    """Where and as whom to call. The key is never logged nor shown in `repr`."""

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    project: str | None = None
    organization: str | None = None

    @classmethod
    def from_env(
        cls,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        project: str | None = None,
        organization: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> "ApiSettings":
        env = os.environ if env is None else env
        key = api_key or env.get("OPENAI_API_KEY")
        if not key:
            raise ConfigurationError("no API key: pass api_key or set OPENAI_API_KEY")
        url = (base_url or env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"OPENAI_BASE_URL must start with http:// or https://, got {url!r}")
        return cls(
            api_key=key,
            base_url=url,
            project=project or env.get("OPENAI_PROJECT") or None,
            organization=organization or env.get("OPENAI_ORG_ID") or None,
        )

    def headers(self) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.api_key}"}
        if self.project:
            h["OpenAI-Project"] = self.project
        if self.organization:
            h["OpenAI-Organization"] = self.organization
        return h


@dataclass
class ApiResponse:
    """A successful HTTP exchange: status, headers (lower-cased names) and the parsed JSON."""

    status: int
    headers: dict[str, str]
    data: Any


RETRYABLE_STATUS = frozenset({408, 409, 500, 502, 503, 504})
_ERROR_CLASSES: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
}


def error_from_response(status: int, headers: Mapping[str, str], payload: Any) -> APIError:
    """The typed error for an HTTP error answer, carrying the API's `error` fields."""
    err = payload.get("error") if isinstance(payload, dict) else None
    err = err if isinstance(err, dict) else {}
    message = str(err.get("message") or (payload if isinstance(payload, str) and payload else f"HTTP {status}"))
    code = err.get("code")
    if status == 429:
        quota = code == "insufficient_quota" or err.get("type") == "insufficient_quota"
        cls: type[APIError] = QuotaExceededError if quota else RateLimitError
    else:
        cls = _ERROR_CLASSES.get(status) or (ServerError if status >= 500 else APIError)
    if status in (401, 403):
        message = f"{message} — {CANARY_HINT}"
    return cls(
        message,
        status=status,
        type=err.get("type"),
        param=err.get("param"),
        code=str(code) if code is not None else None,
        headers=headers,
        request_id=headers.get("x-request-id"),
    )


class OpenAITransport:
    """An async context manager over one `aiohttp.ClientSession`, with the retry core."""

    def __init__(
        self,
        settings: ApiSettings | None = None,
        *,
        api_key: str | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
        rng: Callable[[], float] | None = None,
        session: aiohttp.ClientSession | None = None,
        budget: RateBudget | None | bool = True,
    ) -> None:
        self.settings = settings or ApiSettings.from_env(api_key)
        self.timeout = timeout or aiohttp.ClientTimeout(total=300, connect=30, sock_read=240)
        self.retry = retry or RetryPolicy()
        self._sleep: Sleep = sleep or asyncio.sleep
        self.clock: Clock = clock or time.monotonic
        self._rng = rng or random.random
        self._session = session
        self._owns_session = session is None
        # One budget per transport, shared by every caller: True builds one that learns the
        # limits from headers; False/None sends without client-side admission.
        if budget is True:
            budget = RateBudget(clock=self.clock, sleep=self._sleep)
        self.budget: RateBudget | None = budget or None

    async def __aenter__(self) -> "OpenAITransport":
        self._ensure_session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()

    async def sleep(self, seconds: float) -> None:
        """The injectable sleep (tests record instead of waiting)."""
        await self._sleep(seconds)

    def url(self, path: str) -> str:
        return f"{self.settings.base_url}/{path.lstrip('/')}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        form: FormFactory | None = None,
        params: Mapping[str, str] | None = None,
        cost: int | None = None,
        cost_class: str | None = None,
    ) -> ApiResponse:
        """Send one API call with the retry rules; return its parsed JSON or raise a typed error.

        `form` is a factory, not a `FormData`, because a multipart body is consumed by sending it
        and a retry must build it again. `cost` (estimated tokens) puts the call under the rate
        budget; `cost_class` groups calls whose hidden costs (retrieved chunks) are alike.
        """
        session = self._ensure_session()
        url = self.url(path)
        transient_attempts = 0
        rl_attempts = 0
        rl_waited = 0.0
        while True:
            failure: APIError | APIConnectionError
            reservation: Reservation | None = None
            if self.budget is not None and cost is not None:
                reservation = await self.budget.acquire(cost, cost_class)
            try:
                async with session.request(
                    method,
                    url,
                    json=json,
                    data=form() if form is not None else None,
                    params=params,
                    headers=self.settings.headers(),
                ) as resp:
                    raw = await resp.read()
                    status = resp.status
                    headers = {k.lower(): v for k, v in resp.headers.items()}
            except asyncio.TimeoutError as exc:
                failure = APITimeoutError(f"{method} {url} timed out — {CANARY_HINT}")
                failure.__cause__ = exc
                status, headers, raw = 0, {}, b""
                self._budget_cancel(reservation)
            except aiohttp.ClientError as exc:
                failure = APIConnectionError(f"{method} {url} failed: {exc.__class__.__name__}: {exc} — {CANARY_HINT}")
                failure.__cause__ = exc
                status, headers, raw = 0, {}, b""
                self._budget_cancel(reservation)
            else:
                payload = _decode(raw)
                if status < 400:
                    if not isinstance(payload, (dict, list)):
                        failure = APIConnectionError(
                            f"{method} {url}: HTTP {status} with a body that is not JSON ({len(raw)} bytes)"
                        )
                    else:
                        ok = ApiResponse(status, headers, payload)
                        self._budget_settle(reservation, payload, headers)
                        return ok
                    self._budget_settle(reservation, None, headers)
                else:
                    failure = error_from_response(status, headers, payload)
                    if reservation is not None and self.budget is not None:
                        if status == 429:
                            self.budget.throttled(reservation, headers)
                        else:
                            self.budget.settle(reservation, 0, headers)

            should_retry = headers.get("x-should-retry")
            if isinstance(failure, QuotaExceededError):
                raise failure
            if isinstance(failure, RateLimitError) and should_retry != "false":
                hinted = retry_after_seconds(headers)
                if hinted is None:
                    lo, hi = self.retry.fallback_rate_limit_wait_s
                    wait = lo + (hi - lo) * self._rng()
                else:
                    wait = hinted
                if rl_attempts >= self.retry.max_rate_limit_retries or rl_waited + wait > self.retry.max_rate_limit_wait_s:
                    log.warning("rate limited on %s %s; giving up after %d retries", method, path, rl_attempts)
                    raise failure
                rl_attempts += 1
                rl_waited += wait
                log.info("rate limited on %s %s; waiting %.2fs (retry %d)", method, path, wait, rl_attempts)
                await self._sleep(wait)
                continue
            retryable = (
                should_retry == "true"
                or (should_retry != "false" and (status in RETRYABLE_STATUS or status == 0))
            )
            if retryable and transient_attempts < self.retry.max_retries:
                transient_attempts += 1
                wait = self.retry.backoff(transient_attempts, self._rng)
                hinted = retry_after_seconds(headers)
                if hinted is not None and hinted <= 60:
                    wait = hinted
                log.info("%s %s failed (%s); retry %d in %.2fs", method, path, failure, transient_attempts, wait)
                await self._sleep(wait)
                continue
            raise failure

    def _budget_settle(self, res: Reservation | None, payload: Any, headers: Mapping[str, str]) -> None:
        if res is None or self.budget is None:
            return
        usage = payload.get("usage") if isinstance(payload, dict) else None
        used = usage.get("total_tokens") if isinstance(usage, dict) else None
        self.budget.settle(res, int(used) if isinstance(used, (int, float)) else None, headers)

    def _budget_cancel(self, res: Reservation | None) -> None:
        if res is not None and self.budget is not None:
            self.budget.cancel(res)


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return jsonlib.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:500]
