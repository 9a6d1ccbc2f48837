"""The one HTTP core every OpenAI call goes through: session, headers, retries, typed errors.

Why one core: the Responses client and the vector store manager hit the same API with the same
failure modes (rate limits, 5xx, dropped connections). Writing the retry rules once keeps them
consistent and testable. This module knows HTTP and OpenAI's error shapes; it knows nothing of
stages, prompts or traces.

The retry decision is `refinery.wire.retry.next_wait`, a pure function; this module
sends one attempt at a time under the rate budget (`async with budget.reserve(...)`), turns
error answers into typed errors carrying the API's `error.message`, `type`, `param` and `code`,
and sleeps as told. Sleeping and the clock are injectable so tests never wait for real.
"""

from __future__ import annotations

import asyncio
import inspect
import json as jsonlib
import logging
import math
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from refinery.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
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
from refinery.wire.json_body import JSON_CONTENT_TYPE, encoded_off_loop, is_big
from refinery.wire.rate_budget import UNBUDGETED, BudgetStats, RateBudget, Ticket
from refinery.wire.retry import RETRYABLE_STATUS, Attempts, RetryPolicy, next_wait

if TYPE_CHECKING:  # aiohttp is imported where a request is made: `refinery plan` never makes one
    import aiohttp

__all__ = ["ApiResponse", "ApiSettings", "OpenAITransport", "RETRYABLE_STATUS", "RetryPolicy", "error_from_response"]

log = logging.getLogger("refinery.transport")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
FormFactory = Callable[[], "aiohttp.FormData"]
# takes a successful answer's body as it arrives (a file's content, not JSON); called afresh on each attempt
BodySink = Callable[["aiohttp.ClientResponse"], Awaitable[Any]]


TokenProvider = Callable[[], "str | Awaitable[str]"]  # an Entra token, sync or async


@dataclass(frozen=True)
class ApiSettings:
    """Where and as whom to call. The key is never logged nor shown in `repr`.

    `backend` is `openai`, or `azure` for Azure OpenAI: its v1 API (`{endpoint}/openai/v1/…`, the
    same paths for responses, files and vector stores) with the key in an `api-key` header, or a
    Microsoft Entra token (`token_provider`, called for each request) as a bearer token.
    """

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    project: str | None = None
    organization: str | None = None
    backend: str = "openai"
    token_provider: TokenProvider | None = field(default=None, repr=False)

    @classmethod
    def from_env(
        cls,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        project: str | None = None,
        organization: str | None = None,
        env: Mapping[str, str] | None = None,
        token_provider: TokenProvider | None = None,
    ) -> "ApiSettings":
        """From arguments, else the environment. `AZURE_OPENAI_ENDPOINT` (unless a base URL is
        given) selects Azure OpenAI, with `AZURE_OPENAI_API_KEY`, or `AZURE_OPENAI_AD_TOKEN` /
        `token_provider`; otherwise `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_PROJECT`,
        `OPENAI_ORG_ID`."""
        env = os.environ if env is None else env
        azure = env.get("AZURE_OPENAI_ENDPOINT") if not (base_url or env.get("OPENAI_BASE_URL")) else None
        if azure:
            return cls._azure(azure, api_key or env.get("AZURE_OPENAI_API_KEY"), env, token_provider)
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

    @classmethod
    def _azure(
        cls, endpoint: str, key: str | None, env: Mapping[str, str], token_provider: TokenProvider | None
    ) -> "ApiSettings":
        url = endpoint.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"AZURE_OPENAI_ENDPOINT must start with https://, got {url!r}")
        token = env.get("AZURE_OPENAI_AD_TOKEN")
        if token_provider is None and token:
            token_provider = lambda: token  # noqa: E731 - a fixed token: the provider's simplest form
        if not key and token_provider is None:
            raise ConfigurationError(
                "Azure OpenAI: set AZURE_OPENAI_API_KEY, or AZURE_OPENAI_AD_TOKEN (or pass a token provider)"
            )
        if not url.endswith("/openai/v1"):
            url += "/openai/v1"
        return cls(api_key=key or "", base_url=url, backend="azure", token_provider=None if key else token_provider)

    @property
    def host(self) -> str:
        """The backend and host, for messages (never the key)."""
        return f"{'Azure OpenAI' if self.backend == 'azure' else 'OpenAI'} at {self.base_url}"

    async def request_headers(self) -> dict[str, str]:
        """The headers of one request. An Entra token provider may be async (as openai-python's
        `AsyncAzureOpenAI` takes one) or sync; a sync one may block — refreshing a token is an HTTP
        call — so it is called in a worker thread, never on the event loop."""
        if self.backend != "azure" or self.api_key or self.token_provider is None:
            return self.headers()
        provider = self.token_provider
        token = await provider() if inspect.iscoroutinefunction(provider) else await asyncio.to_thread(provider)
        if inspect.isawaitable(token):
            token = await token
        return {"Authorization": f"Bearer {token}"}

    def headers(self) -> dict[str, str]:
        if self.backend == "azure":
            if self.api_key:
                return {"api-key": self.api_key}
            assert self.token_provider is not None
            return {"Authorization": f"Bearer {self.token_provider()}"}
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


_ERROR_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
}


def connection_reason(exc: aiohttp.ClientError) -> str:
    """Why a connection failed, as a person reads it: host, port and the system's reason
    ("cannot connect to 127.0.0.1:9: Connection refused"), not the HTTP library's internals."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        # asyncio words a refused connection "Connect call failed (…)": the system's words are its errno's
        reason = (
            os.strerror(os_error.errno)
            if os_error is not None and os_error.errno
            else (os_error.strerror if os_error is not None and os_error.strerror else str(os_error))
        )
        return f"cannot connect to {exc.host}:{exc.port}: {reason}"
    text = str(exc) or exc.__class__.__name__
    return text.replace("\n", " ")


def error_from_response(status: int, headers: Mapping[str, str], payload: Any) -> APIStatusError:
    """The typed error for an HTTP error answer, carrying the API's `error` fields."""
    err = payload.get("error") if isinstance(payload, dict) else None
    err = err if isinstance(err, dict) else {}
    message = str(err.get("message") or (payload if isinstance(payload, str) and payload else f"HTTP {status}"))
    code = err.get("code")
    if status == 429:
        quota = code == "insufficient_quota" or err.get("type") == "insufficient_quota"
        cls: type[APIStatusError] = QuotaExceededError if quota else RateLimitError
    else:
        cls = _ERROR_CLASSES.get(status) or (ServerError if status >= 500 else APIStatusError)
    if status == 404 and not err:  # no API error body: the path itself is unknown, so the base URL is off
        message = f"{message} — no such endpoint: check OPENAI_BASE_URL (it usually ends in /v1)"
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
        budget: RateBudget | bool = True,
        tpm: int | None = None,
        rpm: int | None = None,
    ) -> None:
        """`budget`: True (default) builds the one rate budget every caller of this transport
        shares, with the limits `tpm` / `rpm` if given, else learned from the API's headers, on
        this transport's clock and sleep; a `RateBudget` is used as it is; False sends without
        client-side admission."""
        import aiohttp

        self.settings = settings or ApiSettings.from_env(api_key)
        self.timeout = timeout or aiohttp.ClientTimeout(total=300, connect=30, sock_read=240)
        self.retry = retry or RetryPolicy()
        self._sleep: Sleep = sleep or asyncio.sleep
        self.clock: Clock = clock or time.monotonic
        self._rng = rng or random.random
        self._session = session
        self._owns_session = session is None
        if isinstance(budget, RateBudget) and (tpm or rpm):
            raise ConfigurationError(
                "give the limits (tpm / rpm) or a RateBudget, not both: the budget's own limits would win silently"
            )
        if budget is True:
            budget = RateBudget(tpm=tpm, rpm=rpm, clock=self.clock, sleep=self._sleep)
        self.budget: RateBudget | None = budget or None

    @property
    def budget_stats(self) -> BudgetStats | None:
        """Admissions, waits and 429s of the shared budget (None without one)."""
        return self.budget.stats if self.budget is not None else None

    async def __aenter__(self) -> "OpenAITransport":
        self._ensure_session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        import aiohttp

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
        retry: RetryPolicy | None = None,
        sink: BodySink | None = None,
    ) -> ApiResponse:
        """Send one API call with the retry rules; return its parsed JSON or raise a typed error.

        `form` is a factory, not a `FormData`, because a multipart body is consumed by sending it
        and a retry must build it again. `cost` (estimated tokens) puts the call under the rate
        budget; `cost_class` groups calls whose hidden costs (retrieved chunks) are alike.
        `retry` replaces the transport's policy for this call (a call that must not be repeated
        blindly, as creating a batch, retries nothing transient and looks before trying again).
        `sink` takes a successful answer's body as it arrives, instead of it being read whole and
        parsed (a file's content, hundreds of MB); what it returns is the answer's `data`. It is
        called afresh on each attempt, so it must start over each time.
        """
        attempts = Attempts()
        policy = retry or self.retry
        body = await encoded_off_loop(json) if json is not None and is_big(json) else None  # once, every attempt
        while True:
            outcome = await self._attempt(
                method,
                path,
                json=json if body is None else None,
                body=body,
                form=form,
                params=params,
                cost=cost,
                cost_class=cost_class,
                sink=sink,
            )
            if isinstance(outcome, ApiResponse):
                return outcome
            failure, status, headers = outcome
            wait = next_wait(failure, status, headers, attempts, policy, self._rng)
            if wait is None:
                if attempts.rate_limited and isinstance(failure, RateLimitError):
                    log.warning(
                        "rate limited on %s %s; giving up after %d retries", method, path, attempts.rate_limited
                    )
                raise failure
            attempts.record(wait)
            log.info("%s %s failed (%s); %s retry in %.2fs", method, path, failure, wait.kind, wait.wait_s)
            await self._sleep(wait.wait_s)

    def _admission(self, cost: int | None, cost_class: str | None) -> AbstractAsyncContextManager[Ticket]:
        if self.budget is None or cost is None:
            return nullcontext(UNBUDGETED)
        return self.budget.reserve(cost, cost_class)

    async def _attempt(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        body: bytes | None = None,
        form: FormFactory | None,
        params: Mapping[str, str] | None,
        cost: int | None,
        cost_class: str | None,
        sink: BodySink | None = None,
    ) -> ApiResponse | tuple[APIError, int, dict[str, str]]:
        """One try: the answer, or (the typed failure, HTTP status or 0, headers). `body`: a big
        JSON body already serialised (`wire.json_body`), sent as it is."""
        import aiohttp

        session = self._ensure_session()
        url = self.url(path)
        typed = {"Content-Type": JSON_CONTENT_TYPE} if body is not None else {}
        async with self._admission(cost, cost_class) as ticket:
            try:
                async with session.request(
                    method,
                    url,
                    json=json,
                    data=body if body is not None else form() if form is not None else None,
                    params=params,
                    headers={**await self.settings.request_headers(), **typed},
                ) as resp:
                    status = resp.status
                    headers = {k.lower(): v for k, v in resp.headers.items()}
                    if sink is not None and status < 400:
                        data = await sink(resp)  # a read cut short raises here, and is retried as any
                        ticket.settle(None, headers)
                        return ApiResponse(status, headers, data)
                    raw = await resp.read()
            except asyncio.TimeoutError as exc:
                failure: APIError = APITimeoutError(f"{method} {url} timed out")
                failure.__cause__ = exc
                return failure, 0, {}  # the ticket is given back as the block ends
            except aiohttp.ClientError as exc:
                failure = APIConnectionError(f"{method} {url} failed: {connection_reason(exc)}")
                failure.__cause__ = exc
                return failure, 0, {}
            payload = _decode(raw)
            if status >= 400:
                if status == 429:
                    ticket.throttled(headers)
                else:
                    ticket.settle(0, headers)
                return error_from_response(status, headers, payload), status, headers
            if not isinstance(payload, (dict, list)):
                ticket.settle(None, headers)
                return (
                    APIConnectionError(
                        f"{method} {url}: HTTP {status} with a body that is not JSON ({len(raw)} bytes)"
                    ),
                    status,
                    headers,
                )
            ticket.settle(_total_tokens(payload), headers)
            return ApiResponse(status, headers, payload)


def _total_tokens(payload: Any) -> int | None:
    usage = payload.get("usage") if isinstance(payload, dict) else None
    used = usage.get("total_tokens") if isinstance(usage, dict) else None
    ok = isinstance(used, (int, float)) and not isinstance(used, bool) and math.isfinite(used) and used >= 0
    return int(used) if ok else None  # NaN, negative or not a number: no count


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return jsonlib.loads(raw)
    except (ValueError, RecursionError):  # nested past Python's stack too: not JSON we can read
        return raw.decode("utf-8", "replace")[:500]
