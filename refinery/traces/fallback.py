"""The last resort for a JSON shape no loader knows: the conversation, wherever it sits.

Why: many tools write a log whose top level is their own (a result record, a run summary) with the
agent's messages somewhere inside. Rather than refuse it, take the longest array whose items are
mostly message-like (`role` + `content`, or `type` + `content`), load it as a chat log, and say
which path was used, so the user can check it or choose another loader with `--format`.
"""

from __future__ import annotations

from typing import Any

from refinery.traces.json_stream import is_array
from refinery.traces.task import USER_ROLES, is_demonstration

__all__ = ["find_messages", "first_user_message", "top_level_keys"]

_MAX_DEPTH = 8
_LOOK = 1000  # items of an array looked at to judge it


def _message_like(x: Any) -> bool:
    return isinstance(x, dict) and "content" in x and ("role" in x or "type" in x)


def find_messages(data: Any) -> tuple[str, list[Any]] | None:
    """(JSONPath, items) of the longest array of mostly message-like objects, or None."""
    best: tuple[str, list[Any]] | None = None
    stack: list[tuple[Any, str, int]] = [(data, "$", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > _MAX_DEPTH:
            continue
        if is_array(value):
            head = list(value[:_LOOK])
            liked = sum(_message_like(x) for x in head)
            if liked and liked * 2 >= len(head) and (best is None or len(value) > len(best[1])):
                best = (path, list(value))
            stack += [(x, f"{path}[{i}]", depth + 1) for i, x in enumerate(head[:200]) if isinstance(x, (dict, list))]
        elif isinstance(value, dict):
            stack += [(x, f"{path}.{k}", depth + 1) for k, x in value.items() if isinstance(x, (dict, list))]
    return best


def first_user_message(messages: list[Any]) -> int | None:
    """The index of the first message in the user's seat (`user`, `human`, …) that is not an
    example shown to the agent: the task of a conversation found this way."""
    return next(
        (
            i
            for i, m in enumerate(messages)
            if isinstance(m, dict) and str(m.get("role") or "").lower() in USER_ROLES and not is_demonstration(m)
        ),
        None,
    )


def top_level_keys(data: Any) -> str:
    """What an unknown document shows at its top, for the error that lists what is accepted."""
    if isinstance(data, dict):
        keys = list(data)
        return "keys " + ", ".join(repr(k) for k in keys[:12]) + (" …" if len(keys) > 12 else "")
    if is_array(data):
        return f"a list of {len(data)} items"
    return f"a {type(data).__name__}"
