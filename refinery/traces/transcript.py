"""Chat transcripts whose assistant turns call tools: each call a run of its own, linked to its result.

Two shapes are common (OpenAI's and Anthropic's APIs, and the eval harnesses built on them):
- OpenAI: an assistant message lists `tool_calls` (`id`, `function.name`, `function.arguments`
  as JSON text); each result is a later message with `role: "tool"` and that `tool_call_id`;
- Anthropic: an assistant message's `content` holds `tool_use` blocks (`id`, `name`, `input`);
  the results are `tool_result` blocks (`tool_use_id`, `content`, `is_error`) in the next user
  message's `content`.

Why: read as plain messages, the call's name and arguments sit in one step and its result in
another, unlinked, and a failing tool is not a failed run. Here a tool result becomes the tool's
run — its name, its arguments, its result, nested under the assistant turn that called it, failed
when the result says so — and an Anthropic message's text blocks become its text. Every message
keeps its step number (its index in the list); a result carried inside a user message is a run of
that step, with the tool call's id as its run id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from refinery.core.models import RunType, TraceRun
from refinery.traces.common import content_text, maybe_json

__all__ = ["has_tool_calls", "link_tool_calls", "tool_said"]


@dataclass(frozen=True)
class _Call:
    name: str
    arguments: Any
    caller: str  # the run id of the assistant turn that made it


def has_tool_calls(items: Sequence[Any]) -> bool:
    """Whether a message list uses either tool-call shape, or content blocks (checked on its first
    200 messages)."""
    for item in items[:200]:
        if not isinstance(item, dict):
            continue
        if item.get("tool_calls") or item.get("role") == "tool" or item.get("tool_call_id"):
            return True
        if any(b.get("type") in ("text", "tool_use", "tool_result") for b in _blocks(item)):
            return True  # content blocks: their text is the message's text
    return False


def link_tool_calls(runs: list[TraceRun], items: Sequence[Any]) -> list[TraceRun]:
    """The runs of a message list (run `i` made from message `i`) with tool calls linked: results
    become the tool's runs under their caller; Anthropic results inside a message are added after it."""
    calls: dict[str, _Call] = {}
    out: list[TraceRun] = []
    for run, item in zip(runs, items):
        out.append(run)
        if not isinstance(item, dict):
            continue
        for call in item.get("tool_calls") or []:  # OpenAI
            if isinstance(call, dict) and call.get("id"):
                calls[str(call["id"])] = _call_of(call, run.id)
        if item.get("role") == "tool" and str(item.get("tool_call_id") or "") in calls:
            _as_tool_run(run, calls[str(item["tool_call_id"])], str(item["tool_call_id"]))
        blocks = _blocks(item)
        if blocks:
            out += _anthropic(run, blocks, calls)
    return out


def _call_of(call: dict[str, Any], caller: str) -> _Call:
    """OpenAI's `{function: {name, arguments: "<json>"}}`, or Inspect's `{function: name, arguments: {…}}`."""
    fn = call.get("function")
    if isinstance(fn, dict):
        return _Call(str(fn.get("name") or call.get("name") or "tool"), maybe_json(fn.get("arguments")), caller)
    return _Call(str(fn or call.get("name") or "tool"), maybe_json(call.get("arguments")), caller)


def _blocks(item: dict[str, Any]) -> list[dict[str, Any]]:
    content = item.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _anthropic(run: TraceRun, blocks: list[dict[str, Any]], calls: dict[str, _Call]) -> list[TraceRun]:
    """Record an assistant's `tool_use` blocks, turn `tool_result` blocks into runs, and leave the
    message its own text (and its calls listed)."""
    uses = [b for b in blocks if b.get("type") == "tool_use"]
    results = [b for b in blocks if b.get("type") == "tool_result"]
    if any(b.get("type") not in ("text", "tool_use", "tool_result") for b in blocks):
        return []  # images, documents, thinking: the blocks stay as they are
    for b in uses:
        calls[str(b.get("id"))] = _Call(str(b.get("name") or "tool"), b.get("input"), run.id)
    text = "\n\n".join(str(b.get("text")) for b in blocks if b.get("type") == "text" and b.get("text"))
    where = run.outputs if run.outputs and "content" in run.outputs else run.inputs
    if where is not None and "content" in where:
        if text:
            where["content"] = text
        else:
            del where["content"]
    if uses:
        run.outputs = {
            **(run.outputs or {}),
            "tool_calls": [{k: b.get(k) for k in ("id", "name", "input")} for b in uses],
        }
    made = []
    for b in results:
        use_id = str(b.get("tool_use_id") or "")
        call = calls.get(use_id, _Call("tool", None, run.id))
        child = TraceRun(id=use_id or f"{run.id}.result", name=call.name, trace_id=run.trace_id, step=run.step)
        child.start_time, child.end_time = run.start_time, run.end_time
        child.outputs = {"content": content_text(b.get("content"))}
        _as_tool_run(child, call, use_id)
        if b.get("is_error"):
            child.error = content_text(b.get("content")) or "the tool result is marked is_error"
        made.append(child)
    return made


def _as_tool_run(run: TraceRun, call: _Call, call_id: str) -> None:
    run.name = call.name
    run.run_type = RunType.TOOL
    run.parent_run_id = call.caller
    if call.arguments not in (None, "", {}):
        run.inputs = {"arguments": call.arguments, **{k: v for k, v in (run.inputs or {}).items() if k != "content"}}
    run.metadata = {**run.metadata, "tool_call_id": call_id}
    if run.error is None and isinstance(run.metadata.get("error"), dict):  # Inspect: {type, message}
        run.error = str(run.metadata["error"].get("message") or run.metadata["error"].get("type") or "tool error")
    if run.error is None and isinstance(run.outputs, dict) and run.metadata.get("is_error"):
        run.error = content_text(run.outputs.get("content")) or "the tool result is marked is_error"


def tool_said(runs: Iterable[TraceRun], blamed: str | None) -> tuple[str, str] | None:
    """(tool name, output text) of the tool call a diagnosis rests on, for a failure no run states
    as an error: the blamed run itself when it is a tool call, else the last tool call before it
    (the result the blamed step acted on), else — the blamed step comes before any tool call, or
    none is named — the trace's last tool call. None when no tool call says anything."""
    last: tuple[str, str] | None = None
    before: tuple[str, str] | None = None
    for run in runs:
        if run.run_type == RunType.TOOL:
            text = _output_text(run.outputs)
            if text:
                last = (run.name, text)
        if blamed is not None and run.id == blamed:
            before = last
    return before or last


def _output_text(outputs: dict[str, Any] | None) -> str:
    for key in ("content", "result", "output", "observation"):
        value = (outputs or {}).get(key)
        if value not in (None, "", [], {}):
            return content_text(value).strip()
    return ""
