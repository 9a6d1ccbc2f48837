"""The model as a small protocol: create one structured response, with its usage.

Why a seam here: stage logic builds a request and reads an answer; who executes the request is
another matter — the live Responses API (`ResponsesClient`), a batch engine that collects requests
and feeds answers back hours later, or a function in a unit test. Stages only ever call
`create_json`, so each of those can stand behind them (as pydantic-ai's `FunctionModel` stands in
for a provider), and stage logic is tested without HTTP.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from refinery.core.offload import in_worker
from refinery.core.tokens import estimate_body_tokens, estimate_tokens
from refinery.errors import OutputFormatError
from refinery.wire.function_calls import ToolRunner
from refinery.wire.response_output import CallUsage
from refinery.wire.responses_client import JsonAnswer, SpendGuard, answer_problems

__all__ = ["FunctionModel", "StructuredModel"]


@runtime_checkable
class StructuredModel(Protocol):
    """What executes one stage request: a body in, a JSON answer valid for `schema` out, with the
    usage of exactly the calls it made; `guard` (a cost ceiling) admits each call before it is made;
    `tools` answers the model's function calls (a body offering `search_trace`). A model that does
    not call functions ignores it."""

    async def create_json(
        self,
        body: Mapping[str, Any],
        schema: Mapping[str, Any] | None = None,
        *,
        label: str | None = None,
        guard: SpendGuard | None = None,
        tools: ToolRunner | None = None,
    ) -> JsonAnswer: ...


Answer = Callable[[dict[str, Any], Mapping[str, Any] | None], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]


class FunctionModel:
    """A `StructuredModel` whose answers come from a function of the request body and schema.

    For unit tests of stage logic (and hosts' own tests): `FunctionModel(lambda body, schema: {...})`.
    Each body is kept in `requests`; an answer that breaks the schema raises `OutputFormatError`, as
    a real model's would after its re-ask; usage is estimated from the texts. No I/O.
    """

    def __init__(self, answer: Answer, *, model: str = "function-model") -> None:
        self.answer = answer
        self.model = model
        self.requests: list[dict[str, Any]] = []

    async def create_json(
        self,
        body: Mapping[str, Any],
        schema: Mapping[str, Any] | None = None,
        *,
        label: str | None = None,
        guard: SpendGuard | None = None,
        tools: ToolRunner | None = None,
    ) -> JsonAnswer:
        sent = json.loads(json.dumps(body))  # what a wire would carry: plain JSON, a copy
        ticket = await guard.admit(sent) if guard is not None else None
        self.requests.append(sent)
        data = self.answer(sent, schema)
        if inspect.isawaitable(data):
            data = await data
        text = json.dumps(data)
        usage = CallUsage(
            label=label,
            model=self.model,
            response_id=f"fn_{len(self.requests)}",
            input_tokens=estimate_body_tokens(sent),
            output_tokens=estimate_tokens(text),
        )
        usage = usage.model_copy(update={"total_tokens": usage.input_tokens + usage.output_tokens})
        if guard is not None:
            await guard.settle(ticket, usage)
        problems = await in_worker(answer_problems, text, schema)  # off the loop, as the client checks
        if problems:
            raise OutputFormatError(f"the function's answer is not the JSON asked for: {problems[0]}", text, problems)
        return JsonAnswer(dict(data), usage, [], usage.response_id)
