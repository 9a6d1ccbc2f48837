"""`ResponsesClient`: `POST /v1/responses` with retries, output extraction, JSON recovery, usage.

The retry rules live in the shared transport; this module adds what is specific to the
Responses endpoint: reading the answer out of `output`, one format-only re-ask when the JSON is
broken, one larger budget when `max_output_tokens` cut the answer, and the token usage of every
call. `create_json` returns the usage of exactly the calls it made (re-asks included) and the
chunks `file_search` retrieved with its answer, so each analysis counts its own calls even when
many share one client, and citations can be checked against what the model actually saw.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from refinery.core.offload import in_worker
from refinery.core.tokens import worst_case_tokens
from refinery.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    CanaryError,
    IncompleteResponseError,
    NotFoundError,
    OutputFormatError,
    PermissionDeniedError,
    RefineryError,
)
from refinery.wire.chat_wire import as_response, chat_body
from refinery.wire.endpoint_offer import (
    APIS,
    StoreChoice,
    chat_token_field,
    check_choice,
    route_missing,
    store_choice,
)
from refinery.wire.function_calls import ToolRunner, function_calls, with_function_results, without_more_calls
from refinery.wire.rate_budget import BudgetStats, RateBudget
from refinery.wire.response_output import (
    CallUsage,
    citations,
    file_search_results,
    output_text,
    parse_json_output,
    parse_json_text,
)
from refinery.wire.responses_request_builder import (
    build_canary_test_body,
    with_max_output_tokens,
    with_user_text,
)
from refinery.wire.transport import (
    ApiSettings,
    Clock,
    OpenAITransport,
    RetryPolicy,
    Sleep,
    TokenProvider,
)
from refinery.wire.vector_store_manager import VectorStoreManager

if TYPE_CHECKING:  # both imported where used: `refinery plan` sends nothing and validates no answer
    import aiohttp
    import jsonschema

__all__ = [
    "ChatCompletionsClient",
    "ResponsesClient",
    "CanaryResult",
    "JsonAnswer",
    "output_text",
    "parse_json_output",
    "file_search_results",
    "citations",
]

log = logging.getLogger("refinery.responses")

USAGE_KEPT = 256  # `ResponsesClient.usage` keeps the last this many calls

REASK_TEXT = (
    "Return ONLY the exact JSON again, valid against the schema, with no other text. Your previous output was:\n"
)


class SpendGuard(Protocol):
    """Admits each request before it is sent (raising to stop it) and hears what it cost."""

    async def admit(self, body: Mapping[str, Any]) -> Any: ...

    async def settle(self, ticket: Any, usage: CallUsage | None) -> None: ...


@dataclass(frozen=True)
class JsonAnswer:
    """A JSON answer with what it cost and what it was based on.

    `usage` sums every call made for this answer (a larger budget, a re-ask); `results` are the
    chunks `file_search` returned with the final answer (`include: ["file_search_call.results"]`).
    """

    data: dict[str, Any]
    usage: CallUsage
    results: list[dict[str, Any]] = field(default_factory=list)
    response_id: str | None = None


@dataclass(frozen=True)
class CanaryResult:
    ok: bool
    model: str
    response_id: str | None
    reply: str
    backend: str = "openai"  # or "azure"
    host: str = ""  # "OpenAI at https://…" / "Azure OpenAI at https://…"
    api: str = "responses"  # the wire that answered: "responses" or "chat"
    store: StoreChoice | None = None  # the reading a run with no --store flag uses there, and why


class ResponsesClient:
    """An async context manager for the Responses endpoint, over one `OpenAITransport`.

    Build it from the environment (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_PROJECT`,
    `OPENAI_ORG_ID`), from explicit arguments, or over an existing transport (so a
    `VectorStoreManager` can share the same session and retry core).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        project: str | None = None,
        organization: str | None = None,
        transport: OpenAITransport | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
        max_output_tokens_cap: int = 64_000,
        tpm: int | None = None,
        rpm: int | None = None,
        budget: RateBudget | bool = True,
        clock: Clock | None = None,
        azure_ad_token_provider: TokenProvider | None = None,
        api: str = "responses",
    ) -> None:
        """Without `transport`, one is built here; `budget`, `tpm` and `rpm` configure its shared
        rate budget (see `OpenAITransport`), on the given `clock` and `sleep`. On Azure OpenAI
        (`AZURE_OPENAI_ENDPOINT`), `azure_ad_token_provider` gives a Microsoft Entra token per request (sync or async).

        `api`: the wire stage requests go by — `responses` (`POST /responses`), `chat` (the same
        requests as `POST /chat/completions`, `wire.chat_wire`) or `auto`: Responses until the
        endpoint answers that it has no such route, Chat Completions from then on."""
        if transport is None:
            settings = ApiSettings.from_env(
                api_key,
                base_url=base_url,
                project=project,
                organization=organization,
                token_provider=azure_ad_token_provider,
            )
            transport = OpenAITransport(
                settings, timeout=timeout, retry=retry, sleep=sleep, clock=clock, budget=budget, tpm=tpm, rpm=rpm
            )
        self.transport = transport
        self.api = check_choice("api", api, APIS)
        # the wire this endpoint answers on, once known (what an endpoint serves, not per-run state)
        self._wire: str | None = None if api == "auto" else api
        self.max_output_tokens_cap = max_output_tokens_cap
        # the last calls' usage, for a host's look at what the client did lately; bounded, because a
        # client may live as long as its host. An analysis counts its own calls (`JsonAnswer.usage`).
        self.usage: deque[CallUsage] = deque(maxlen=USAGE_KEPT)

    @property
    def base_url(self) -> str:
        return self.transport.settings.base_url

    def vector_store_manager(self, **options: Any) -> VectorStoreManager:
        """A `VectorStoreManager` on this client's transport: one session, one retry core and one
        rate budget for every call an analysis makes."""
        return VectorStoreManager(self.transport, **options)

    @property
    def wire(self) -> str | None:
        """`responses` or `chat`: the wire requests go by (None: `auto`, before the first call)."""
        return self._wire

    def store_choice(self, wanted: str = "auto") -> StoreChoice:
        """The reading an analysis over this client uses (`endpoint_offer.store_choice`): for
        `auto`, decided from the endpoint's address and wire, with no request."""
        settings = self.transport.settings
        return store_choice(wanted, settings.base_url, settings.backend, self._wire or self.api)

    @property
    def budget_stats(self) -> BudgetStats | None:
        """The shared rate budget's admissions, waits and 429s (None without a budget)."""
        return self.transport.budget_stats

    async def __aenter__(self) -> "ResponsesClient":
        await self.transport.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.close()

    async def close(self) -> None:
        await self.transport.close()

    async def create(self, body: Mapping[str, Any], *, label: str | None = None) -> dict[str, Any]:
        """POST `/responses` and return the raw response object; its usage is recorded.

        The call goes through the transport's rate budget with its worst-case token cost (every
        `file_search` returning whole chunks included); calls with the same label suffix
        (`…:stage1`) share a learned allowance for anything usage shows beyond it.
        """
        return (await self._create(body, label))[0]

    async def _create(self, body: Mapping[str, Any], label: str | None) -> tuple[dict[str, Any], CallUsage]:
        # counting a big body's tokens is CPU work (a Stage 1 body holds its group's files): off the loop
        cost = await in_worker(worst_case_tokens, dict(body))
        cost_class = label.rsplit(":", 1)[-1] if label else None
        if self._wire == "chat":
            data = await self._create_chat(body, cost, cost_class)
        else:
            try:
                resp = await self.transport.request(
                    "POST", "/responses", json=dict(body), cost=cost, cost_class=cost_class
                )
            except APIStatusError as exc:
                # (a call sent at once with the first may hear the 404 after the switch: chat too)
                if self.api != "auto" or self._wire == "responses" or not route_missing(exc):
                    raise
                log.info("%s has no /responses (HTTP %s); using /chat/completions", self.base_url, exc.status)
                self._wire = "chat"
                data = await self._create_chat(body, cost, cost_class)
            else:
                self._wire = self._wire or "responses"
                data = resp.data if isinstance(resp.data, dict) else {}
        usage = CallUsage.from_response(data, label)
        self.usage.append(usage)
        return data, usage

    async def _create_chat(self, body: Mapping[str, Any], cost: int, cost_class: str | None) -> dict[str, Any]:
        """The request as `POST /chat/completions` (same transport, retries and rate budget), its
        output budget named as the endpoint reads it (`chat_token_field`), its answer read back
        as a Responses object."""
        settings = self.transport.settings
        field = chat_token_field(settings.base_url, settings.backend)
        sent = await in_worker(lambda: chat_body(body, token_field=field))
        resp = await self.transport.request("POST", "/chat/completions", json=sent, cost=cost, cost_class=cost_class)
        return as_response(resp.data)

    def usage_for(self, label: str) -> CallUsage:
        """The summed usage of the calls made with `label` among the last `USAGE_KEPT`."""
        return CallUsage.total((u for u in self.usage if u.label == label), label)

    async def create_json(
        self,
        body: Mapping[str, Any],
        schema: Mapping[str, Any] | None = None,
        *,
        label: str | None = None,
        guard: SpendGuard | None = None,
        tools: ToolRunner | None = None,
    ) -> JsonAnswer:
        """The answer as a JSON object, recovered once from each of two known failure modes.

        - cut off by `max_output_tokens` (a reasoning model may spend it all thinking) → retried
          once with double the budget (up to `max_output_tokens_cap`), then reported with the reason;
        - not JSON, or (when `schema` is given) JSON that breaks it → one format-only re-ask:
          the same body with the user content replaced by "Return ONLY the exact JSON again"
          and the raw text. Still wrong → `OutputFormatError` holding the raw text.

        `guard` admits every request this makes (the retries too) before it is sent. With `tools`,
        the model's function calls are answered (`tools.answer`, off the loop) and sent back, at
        most `tools.max_calls` of them; then it must answer (`tool_choice: "none"`).
        """
        body = dict(body)
        calls: list[CallUsage] = []

        async def send(b: dict[str, Any]) -> dict[str, Any]:
            ticket = await guard.admit(b) if guard is not None else None
            sent: CallUsage | None = None
            try:
                response, sent = await self._create(b, label)
            finally:
                if guard is not None:
                    await guard.settle(ticket, sent)
            calls.append(sent)
            return response

        response = await send(body)
        if tools is not None:
            body, response = await self._answer_calls(body, response, tools, send)
            body = without_more_calls(body) if body.get("tools") else body  # a retry or re-ask answers
        try:
            text = output_text(response)
        except IncompleteResponseError as exc:
            budget = int(body.get("max_output_tokens") or 0)
            bigger = min(self.max_output_tokens_cap, max(budget * 2, 256))
            if exc.reason != "max_output_tokens" or bigger <= budget:
                raise
            log.info(
                "output cut at %d tokens (%d of them reasoning); retrying once with %d",
                budget,
                calls[-1].reasoning_tokens,
                bigger,
            )
            body = with_max_output_tokens(body, bigger)
            response = await send(body)
            try:
                text = output_text(response)
            except IncompleteResponseError as again:
                thought = calls[-1].reasoning_tokens
                raise IncompleteResponseError(
                    again.reason,
                    again.partial_text,
                    detail=f"after one retry with max_output_tokens {bigger}, of which {thought} went to reasoning; "
                    "raise the stage's output budget or lower the reasoning effort",
                ) from again
        # in the worker: the validator's first use imports jsonschema (about 0.1 s), and a big answer's
        # parse and validation are pure Python (on the loop they held the host's loop)
        problems = await in_worker(answer_problems, text, schema)
        if problems:
            log.info("output not valid (%s); asking once for the JSON again", problems[0])
            response = await send(with_user_text(body, REASK_TEXT + text))
            text = output_text(response)
            problems = await in_worker(answer_problems, text, schema)
            if problems:
                raise OutputFormatError(
                    f"output is not the JSON asked for after one re-ask: {problems[0]}",
                    raw_text=text,
                    problems=problems,
                )
        return JsonAnswer(
            json.loads(text), CallUsage.total(calls, label), file_search_results(response), response.get("id")
        )

    @staticmethod
    async def _answer_calls(
        body: dict[str, Any], response: dict[str, Any], tools: ToolRunner, send: Callable[[dict[str, Any]], Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The model's function calls answered and sent back until it answers, at most `max_calls`."""
        made = 0
        while calls := function_calls(response):
            outputs = [await in_worker(tools.answer, str(c.get("arguments") or "{}")) for c in calls]
            made += len(calls)
            body = with_function_results(body, calls, outputs)
            if made >= tools.max_calls:
                body = without_more_calls(body)
            response = await send(body)
        return body, response

    async def canary(self, model: str = "gpt-4o") -> CanaryResult:
        """Send the smallest strict-JSON request and say plainly what is wrong when it fails."""
        base = self.base_url
        settings = self.transport.settings
        azure = settings.backend == "azure"
        key_var, url_var = (
            ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT") if azure else ("OPENAI_API_KEY", "OPENAI_BASE_URL")
        )
        try:
            answer = await self.create_json(build_canary_test_body(model), label="canary")
        except AuthenticationError as exc:
            raise CanaryError(f"authentication failed: check {key_var} (HTTP 401: {exc.message})") from exc
        except PermissionDeniedError as exc:
            raise CanaryError(
                f"permission denied: check OPENAI_PROJECT / OPENAI_ORG_ID and model access (HTTP 403: {exc.message})"
            ) from exc
        except NotFoundError as exc:
            raise CanaryError(
                f"not found: check the {'deployment' if azure else 'model'} name {model!r} and {url_var} {base!r} "
                f"({exc})"
            ) from exc
        except BadRequestError as exc:
            raise CanaryError(f"request rejected for model {model!r}: {exc.message}") from exc
        except APIConnectionError as exc:
            raise CanaryError(f"cannot reach {base!r}: check {url_var} and the network ({exc})") from exc
        except RefineryError as exc:
            raise CanaryError(f"canary failed: {exc}") from exc
        return CanaryResult(
            ok=True,
            model=model,
            response_id=answer.response_id,
            reply=str(answer.data.get("reply", "")),
            backend=settings.backend,
            host=settings.host,
            api=self._wire or "responses",
            store=self.store_choice(),
        )


def answer_problems(text: str, schema: Mapping[str, Any] | None) -> list[str]:
    """What keeps `text` from being the JSON object `schema` asks for (empty: nothing)."""
    try:
        value = parse_json_text(text)
    except OutputFormatError as exc:
        return exc.problems
    if not isinstance(value, dict):
        return ["output JSON is not an object"]
    if schema is None:
        return []
    validator = _validator(json.dumps(schema, sort_keys=True))
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:200]}"
        for e in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    ]


@lru_cache(maxsize=32)
def _validator(schema_json: str) -> jsonschema.Draft202012Validator:
    """One compiled validator per schema: building it was most of a call's client CPU."""
    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(schema_json))


class ChatCompletionsClient(ResponsesClient):
    """A `ResponsesClient` on the Chat Completions wire: the same stage requests and answers, sent
    as `POST /chat/completions` with a strict json_schema `response_format` (`wire.chat_wire`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("api", "chat")
        super().__init__(*args, **kwargs)
