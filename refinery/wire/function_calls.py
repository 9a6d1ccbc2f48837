"""A function the model may call, on either wire: reading its calls out of an answer and sending
their results back. Pure functions over Responses bodies and answers (the chat wire translates).

Why here: a stage that reads with no store may offer one function (`search_trace`) answered by
refinery; the model's calls and their outputs are request and answer shapes, so they live with
the wire, and the loop that answers them (`ResponsesClient.create_json(…, tools=…)`) is bounded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["ToolRunner", "function_calls", "with_function_results", "without_more_calls"]


class ToolRunner(Protocol):
    """Answers the model's function calls: at most `max_calls` a request. Blocking (run off the loop)."""

    max_calls: int

    def answer(self, arguments: str) -> str: ...


def function_calls(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `function_call` items of an answer, in order."""
    return [
        dict(item)
        for item in response.get("output") or []
        if isinstance(item, Mapping) and item.get("type") == "function_call"
    ]


def with_function_results(
    body: Mapping[str, Any], calls: Sequence[Mapping[str, Any]], outputs: Sequence[str]
) -> dict[str, Any]:
    """A copy of `body` whose input goes on with the model's calls and their outputs (stateless:
    the whole conversation is sent again, as servers without stored responses need)."""
    items = list(body.get("input") or [])
    for call, output in zip(calls, outputs, strict=True):
        items.append(
            {"type": "function_call", "call_id": call["call_id"], "name": call["name"], "arguments": call["arguments"]}
        )
        items.append({"type": "function_call_output", "call_id": call["call_id"], "output": output})
    return {**body, "input": items}


def without_more_calls(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `body` in which the model may call no function: it must answer."""
    return {**body, "tool_choice": "none"}
