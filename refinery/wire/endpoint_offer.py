"""Which reading a run uses where `store="auto"`, decided from the endpoint's address with no
request: the hosted store (Files, Vector Stores, `file_search`) where the endpoint is known to
have it — OpenAI's API host and Azure OpenAI's hosts — and the inline reading everywhere else.

Why no probe: vLLM, Ollama, LM Studio, llama.cpp, LiteLLM and OpenRouter serve `/v1/responses`
and/or `/v1/chat/completions` and none has Files or Vector Stores; a user who runs there to keep
traces in the company must see no request at all go to `/v1/files` or `/v1/vector_stores`, not
even a `GET` asking whether they exist. A gateway in front of OpenAI (a proxy on another host)
takes `--store hosted`. Responses itself is still found by the first call made to it (`api="auto"`:
a route the server does not know is answered 404/405 without an API error object, and the call
goes to `/chat/completions` from then on), so a server that has it pays no probe.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from refinery.errors import APIStatusError, ConfigurationError, UserInputError

__all__ = [
    "APIS",
    "STORES",
    "StoreChoice",
    "chat_token_field",
    "check_choice",
    "configured_endpoint",
    "no_hosted_store",
    "openai_or_azure",
    "route_missing",
    "store_choice",
]

STORES = ("auto", "hosted", "none")
APIS = ("auto", "responses", "chat")
_ABSENT = (404, 405, 501)
OPENAI_API_HOST = "api.openai.com"  # and its regional hosts (`eu.api.openai.com`, data residency)
# Azure OpenAI resources: `<name>.openai.azure.com`, `<name>.cognitiveservices.azure.com`, and the
# Foundry resources' `<name>.services.ai.azure.com` (all serve the v1 API's Files and Vector Stores)
_AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
_DEFAULT_BASE_URL = f"https://{OPENAI_API_HOST}/v1"


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """`value` when it is one of `allowed`, else a one-line `UserInputError` naming the option."""
    if value not in allowed:
        raise UserInputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def route_missing(exc: BaseException) -> bool:
    """Whether an error answer says the server has no such route (not: no such model, or a bad
    body): 404/405/501 without an API error object (`type`/`code`)."""
    return isinstance(exc, APIStatusError) and exc.status in _ABSENT and exc.type is None and exc.code is None


def no_hosted_store(base_url: str, exc: APIStatusError) -> ConfigurationError:
    """The one-line error for `--store hosted` against a server that has no such route (`exc`,
    `route_missing`): what is missing, and the flag that reads the trace there."""
    return ConfigurationError(
        f"{base_url or 'the endpoint'} has no Files or Vector Stores (HTTP {exc.status} on the store's first request): "
        "--store hosted needs OpenAI's or Azure OpenAI's; give --store none, or leave --store off, to read the "
        "trace inline"
    )


@dataclass(frozen=True)
class StoreChoice:
    """The reading a run uses and why, in words a user can act on (`refinery canary`, `plan`)."""

    store: str  # "hosted" or "none"
    reason: str
    base_url: str

    @property
    def change(self) -> str:
        """How to get the other reading."""
        if self.store == "hosted":
            return "--store none reads inline and uploads nothing"
        return "--store hosted uses Files, Vector Stores and file_search (a gateway in front of OpenAI)"

    def as_dict(self) -> dict[str, Any]:
        return {"store": self.store, "reason": self.reason, "base_url": self.base_url, "change": self.change}


def configured_endpoint(base_url: str | None = None, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The base URL and backend (`openai` / `azure`) requests would go to, read as
    `ApiSettings.from_env` reads them but with no key needed: `refinery plan` decides offline."""
    env = os.environ if env is None else env
    url = base_url or env.get("OPENAI_BASE_URL")
    azure = env.get("AZURE_OPENAI_ENDPOINT") if not url else None
    if azure:
        return azure.rstrip("/"), "azure"
    return (url or _DEFAULT_BASE_URL).rstrip("/"), "openai"


def _host(base_url: str) -> str:
    return (urlsplit(base_url).hostname or "").lower()


def openai_or_azure(base_url: str, backend: str = "openai") -> str | None:
    """ "OpenAI" or "Azure OpenAI" where the endpoint is one of theirs (by its host, or
    `backend == "azure"`), else None: a server that speaks their API is not known to be them."""
    host = _host(base_url)
    if host == OPENAI_API_HOST or host.endswith("." + OPENAI_API_HOST):
        return "OpenAI"
    if backend == "azure" or host.endswith(_AZURE_HOSTS):
        return "Azure OpenAI"
    return None


def chat_token_field(base_url: str, backend: str = "openai") -> str:
    """The Chat Completions output budget's name the endpoint reads: `max_completion_tokens` on
    OpenAI and Azure (their reasoning models refuse `max_tokens`), `max_tokens` elsewhere (Ollama,
    LM Studio, OpenRouter and older llama.cpp ignore `max_completion_tokens`; vLLM reads both)."""
    return "max_completion_tokens" if openai_or_azure(base_url, backend) else "max_tokens"


def store_choice(wanted: str, base_url: str, backend: str = "openai", api: str = "auto") -> StoreChoice:
    """`wanted` (`hosted`/`none`) as given, or for `auto` the hosted store only where the endpoint
    is OpenAI's API or Azure OpenAI (by its host, or `backend == "azure"`) and the wire can
    search a store (Chat Completions has no `file_search`); inline everywhere else."""
    check_choice("store", wanted, STORES)
    if wanted != "auto":
        return StoreChoice(wanted, f"--store {wanted} was asked for", base_url)
    host = _host(base_url)
    owner = openai_or_azure(base_url, backend)
    if owner is not None and api == "chat":
        return StoreChoice("none", f"{host} is {owner}'s API, but Chat Completions has no file_search", base_url)
    if owner is not None:
        return StoreChoice("hosted", f"{host} is {owner}'s API, which has Files and Vector Stores", base_url)
    return StoreChoice(
        "none",
        f"{host or base_url} is not OpenAI's or Azure OpenAI's API host, so no hosted store is assumed "
        "and nothing is sent to /v1/files or /v1/vector_stores",
        base_url,
    )
