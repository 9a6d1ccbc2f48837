"""Plain JSON chat logs and step lists → `Trace`.

A multi-agent run exported as messages (`role` / `name` / `content`) or as steps (`name`,
`input`, `output`, `error`) becomes one run per entry, in order, so it can be analysed like any
other trace. Accepts a bare list or `{"messages": [...]}` / `{"steps": [...]}`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from refinery.core.models import RunType, Trace, TraceRun
from refinery.errors import TraceFormatError
from refinery.traces.common import as_dict, parse_time, span_bounds

ROLE_TYPES = {"assistant": RunType.LLM, "ai": RunType.LLM, "tool": RunType.TOOL, "function": RunType.TOOL, "system": RunType.PROMPT, "user": RunType.PROMPT, "human": RunType.PROMPT}


def _items(data: Any, source: str | None) -> tuple[list[Any], dict[str, Any]]:
    if isinstance(data, list):
        return data, {}
    if isinstance(data, dict):
        for key in ("messages", "steps"):
            if isinstance(data.get(key), list):
                return data[key], {k: v for k, v in data.items() if k != key}
    raise TraceFormatError("expected a list of messages/steps or {messages: [...]}", source=source)


def load_plain(data: Any, source: str | None = None) -> Trace:
    items, head = _items(data, source)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]
    trace_id = str(head.get("trace_id") or head.get("id") or f"chat-{digest}")
    runs: list[TraceRun] = []
    for i, item in enumerate(items):
        field = f"messages[{i}]"
        if not isinstance(item, dict):
            raise TraceFormatError("expected an object with role/name/content", source=source, field=field)
        if not any(k in item for k in ("role", "content", "name", "input", "output")):
            raise TraceFormatError("expected 'role', 'name', 'content', 'input' or 'output'", source=source, field=field)
        role = str(item.get("role") or "").lower()
        name = str(item.get("name") or item.get("agent") or role or f"step {i + 1}")
        content = item.get("content")
        inputs = as_dict(item.get("input"), "input") or {}
        outputs = as_dict(item.get("output"), "output")
        if content is not None:
            if role in ("user", "human", "system"):
                inputs.setdefault("content", content)
            else:
                outputs = {**(outputs or {}), "content": content}
        if item.get("tool_calls"):
            outputs = {**(outputs or {}), "tool_calls": item["tool_calls"]}
        metadata = {k: v for k, v in item.items() if k not in ("role", "name", "content", "input", "output", "error", "id", "timestamp", "tool_calls", "agent")}
        if role:
            metadata["role"] = role
        error = item.get("error")
        runs.append(
            TraceRun(
                id=str(item.get("id") or f"{trace_id}-{i + 1:04d}"),
                name=name,
                run_type=ROLE_TYPES.get(role, RunType.AGENT if item.get("agent") else RunType.CHAIN if not role else RunType.UNKNOWN),
                inputs=inputs,
                outputs=outputs,
                start_time=parse_time(item.get("timestamp") or item.get("start_time"), source=source, field=f"{field}.timestamp"),
                end_time=parse_time(item.get("end_time"), source=source, field=f"{field}.end_time"),
                error=str(error) if error else None,
                trace_id=trace_id,
                metadata=metadata,
            )
        )
    start, end = span_bounds(runs)
    return Trace(trace_id=trace_id, project_name=str(head.get("project") or ""), runs=runs, start_time=start, end_time=end, metadata={"format": "plain", **{k: v for k, v in head.items() if k in ("title", "description")}})
