"""The task a trace was given, found where the tools that write traces keep it. Pure.

Why: without `--expect`, the expectation is "the agent accomplishes the task it was given", and
the model needs the task in the index either way. Step logs state it as `question` / `task`
(`traces.plain`); agent frameworks keep it elsewhere: smolagents writes the top agent span's
`input.value` as `{"task": …}`, others put it in the first user message of the first LLM call,
LangSmith in the root run's inputs, Langfuse in the trace's `input`. The first place that holds
it wins, and where it was found is kept (`task_source`) so `refinery plan` can say so.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from refinery.core.models import LazyRuns, RunType, Trace, TraceRun
from refinery.traces.text import message_view, outline

TASK_FIELDS = ("task", "question", "input", "query", "prompt")
# Roles in the user's seat: chat APIs' `user`, LangChain's and Magentic-One's `human`, AutoGen's
# `user_proxy`, customer-service simulations' `customer`.
USER_ROLES = frozenset({"user", "human", "user_proxy", "customer"})
# A message that says it is an example (SWE-agent's demonstration, a few-shot prompt's example) is
# not the task, whatever its role.
_EXAMPLE = re.compile(
    r"^\W*(?:(?:here is|here's|below is|the following is|this is)\s+(?:an?\s+|one\s+)?"
    r"(?:demonstration|example)\b|-+\s*demonstration\b|(?:demonstration|example)\s*:)",
    re.IGNORECASE,
)
_SCAN_LIMIT = 2000  # runs looked at for the first agent / LLM span: a task is stated early


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        if _parts_text(value):
            return _parts_text(value)
        for key in TASK_FIELDS:
            found = _as_text(value.get(key))
            if found:
                return found
        return None
    if isinstance(value, list):
        return _first_user_message(value)
    return None


def _parts_text(msg: Any) -> str | None:
    """The text of a GenAI-convention message `{role, parts: [{type: text, content}]}`."""
    parts = msg.get("parts") if isinstance(msg, dict) else None
    if not isinstance(parts, list):
        return None
    texts = [
        str(p.get("content") or p.get("text") or "")
        for p in parts
        if isinstance(p, dict) and p.get("type", "text") == "text"
    ]
    return "\n".join(t for t in texts if t).strip() or None


def is_demonstration(message: Any) -> bool:
    """Whether a message is an example shown to the agent rather than its task: flagged so
    (SWE-agent's `is_demo`, `message_type: demonstration`) or saying so in its first words."""
    if isinstance(message, dict):
        if message.get("is_demo") or str(message.get("message_type") or "").lower() == "demonstration":
            return True
        _, text = message_view(message)
    else:
        text = str(message or "")
    return bool(_EXAMPLE.match(text[:300]))


def _first_user_message(messages: Iterable[Any]) -> str | None:
    for msg in messages:
        role, text = message_view(msg)
        if role.lower() in USER_ROLES and not is_demonstration(msg):
            text = _parts_text(msg) or text.strip()
            if text:
                return text
    return None


def _first_user_turn(runs: list[TraceRun]) -> tuple[str, str] | None:
    """A chat log's first turn from the user's seat (a `role` of the user's, no other name), not an example."""
    for run in runs:
        role = str(run.metadata.get("role") or "").lower()
        text = run.inputs.get("content") or (run.outputs or {}).get("content")
        if role in USER_ROLES and run.name.lower() == role and isinstance(text, str) and text.strip():
            if not is_demonstration({"role": role, "content": text}):
                return text.strip(), f"the first {role} message [run_id: {run.id}]"
    return None


def _inputs_task(run: TraceRun) -> str | None:
    """A task in a run's inputs: a task-like field (itself a JSON object with one, or text)."""
    for key in TASK_FIELDS:
        found = _as_text(run.inputs.get(key))
        if found:
            return found
    messages = run.inputs.get("messages")
    return _first_user_message(messages) if isinstance(messages, list) else None


def _first(
    runs: Sequence[TraceRun], run_type: RunType, test: Callable[[TraceRun], bool] | None = None
) -> TraceRun | None:
    """The first of the first `_SCAN_LIMIT` runs of `run_type` that passes `test`. A big trace's
    runs are made only where its loader saw that type (`LazyRuns.indices_of`), and not kept."""
    if isinstance(runs, LazyRuns):
        candidates: Iterable[TraceRun] = (runs.made(i) for i in runs.indices_of(run_type, _SCAN_LIMIT))
    else:
        candidates = itertools.islice(runs, _SCAN_LIMIT)
    return next((r for r in candidates if r.run_type == run_type and (test is None or test(r))), None)


def find_task(trace: Trace) -> tuple[str, str] | None:
    """(task, where it was found), or None when the trace states none."""
    if trace.metadata.get("task"):
        return str(trace.metadata["task"]), str(trace.metadata.get("task_source") or "the log's question / task field")
    runs = trace.runs
    agent = _first(runs, RunType.AGENT)
    if agent is not None:
        found = _inputs_task(agent)
        if found:
            return found, f"the input of the top agent span {agent.name!r} [run_id: {agent.id}]"
    llm = _first(runs, RunType.LLM, lambda r: isinstance(r.inputs.get("messages"), list))
    if llm is not None:
        found = _first_user_message(llm.inputs["messages"])
        if found:
            return found, f"the first user message of the first LLM call {llm.name!r} [run_id: {llm.id}]"
    root = trace.get_root_run()
    if root is not None:
        found = _inputs_task(root)
        if found:
            return found, f"the inputs of the root run {root.name!r} [run_id: {root.id}]"
    plain = trace.metadata.get("format") == "plain"
    found_turn = _first_user_turn(list(itertools.islice(runs, _SCAN_LIMIT))) if plain else None
    if found_turn is not None:
        return found_turn
    if trace.metadata.get("input") is not None:
        value = trace.metadata["input"]
        found = _as_text(value) or (outline(value).strip() or None)
        if found:
            return found, "the trace's input"
    return None


def with_task(trace: Trace) -> Trace:
    """`trace` with `metadata["task"]` and `metadata["task_source"]` set when a task is found."""
    if trace.metadata.get("task"):
        return trace
    found = find_task(trace)
    if found is not None:
        trace.metadata["task"], trace.metadata["task_source"] = found
    return trace
