"""What an endpoint serves, found out once: the Responses API or only Chat Completions, and
whether it has the hosted Files and Vector Stores a `file_search` reading needs.

Why: OpenAI and Azure serve all of it; vLLM, Ollama, LM Studio, llama.cpp, LiteLLM and OpenRouter
serve `/v1/responses` and/or `/v1/chat/completions` and none has Files or Vector Stores. A run
with `store="auto"` / `api="auto"` asks the endpoint instead of failing half way: the hosted store
is probed with `GET /vector_stores?limit=1` and `GET /files?limit=1` (a 404 or 405 — no such
route — means there is none); Responses is found by the first call made to it (a route the
server does not know is answered 404/405 without an API error object, and the call goes to
`/chat/completions` from then on), so a server that has it pays no probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from refinery.errors import APIStatusError, UserInputError

__all__ = ["APIS", "STORES", "EndpointOffer", "check_choice", "route_missing"]

STORES = ("auto", "hosted", "none")
APIS = ("auto", "responses", "chat")
_ABSENT = (404, 405, 501)


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """`value` when it is one of `allowed`, else a one-line `UserInputError` naming the option."""
    if value not in allowed:
        raise UserInputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def route_missing(exc: BaseException) -> bool:
    """Whether an error answer says the server has no such route (not: no such model, or a bad
    body): 404/405/501 without an API error object (`type`/`code`)."""
    return isinstance(exc, APIStatusError) and exc.status in _ABSENT and exc.type is None and exc.code is None


@dataclass(frozen=True)
class EndpointOffer:
    """What one endpoint answered when asked."""

    base_url: str
    files: bool
    vector_stores: bool

    @property
    def hosted_store(self) -> bool:
        """Files and Vector Stores both answer: a hosted store (and `file_search`) can be used."""
        return self.files and self.vector_stores

    def as_dict(self) -> dict[str, Any]:
        return {"files": self.files, "vector_stores": self.vector_stores, "hosted_store": self.hosted_store}
