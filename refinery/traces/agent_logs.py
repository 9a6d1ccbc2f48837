"""Agent frameworks' own logs: SWE-agent trajectories, OpenHands event streams, OpenAI Agents SDK traces.

- **SWE-agent** `.traj` (`{trajectory: [{thought, action, observation, state, execution_time,
  …}], history, info}`): one run per trajectory step — what a person debugging it reads (the
  model's `history` is its prompt, not its steps); the problem statement (the first user message
  of `history`) is the task; `info` (exit status, submission) is kept.
- **OpenHands** event streams (a list of events, or `{events: [...]}`; each with `id`, `source`,
  and either `action` + `args` or `observation` + `content` + `extras`, an observation naming its
  action in `cause`): one run per action, its observation as the result; an `error` observation
  fails the action it answers; an observation with no action is a run of its own.
- **OpenAI Agents SDK** traces (the exported `trace` and `trace.span` objects, as a list or under
  `data`): one run per span — agent, generation/response, function, handoff, guardrail, custom —
  nested by `parent_id`; a span's `error` fails it.
Step numbers are the source's indexes, 0-based.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from refinery.core.models import RunType, Trace, TraceRun
from refinery.errors import TraceFormatError
from refinery.traces.common import as_dict, content_text, maybe_json, order_runs, parse_time, span_bounds
from refinery.traces.task import is_demonstration

__all__ = [
    "is_agents_sdk",
    "is_openhands",
    "is_swe_agent",
    "load_agents_sdk",
    "load_openhands",
    "load_swe_agent",
]


# --- SWE-agent ----------------------------------------------------------------------------------
def is_swe_agent(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("trajectory"), list) and ("history" in data or "info" in data)


def load_swe_agent(data: Any, source: str | None = None) -> Trace:
    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    trace_id = str(data.get("instance_id") or info.get("instance_id") or _digest(data.get("trajectory")))
    runs = []
    for i, step in enumerate(data["trajectory"]):
        if not isinstance(step, dict):
            raise TraceFormatError("expected a trajectory step object", source=source, field=f"trajectory[{i}]")
        action = str(step.get("action") or "").strip()
        inputs = {k: step[k] for k in ("thought", "action") if step.get(k) not in (None, "")}
        meta = {k: maybe_json(step[k]) for k in ("state", "execution_time") if step.get(k) not in (None, "")}
        runs.append(
            TraceRun(
                id=f"step-{i}",
                name=(action.split() or ["step"])[0][:60],
                run_type=RunType.TOOL,
                inputs=inputs,
                outputs={"observation": step.get("observation")},
                trace_id=trace_id,
                step=i,
                metadata=meta,
            )
        )
    history = data.get("history") or []
    # the problem statement: the first user message that is not a demonstration (`is_demo`, or one that says so)
    first = next(
        (
            (i, m.get("content"))
            for i, m in enumerate(history)
            if isinstance(m, dict) and m.get("role") == "user" and not is_demonstration(m)
        ),
        None,
    )
    meta = {"format": "swe_agent", **({"info": info} if info else {})}
    if first is not None and first[1]:
        meta["task"] = content_text(first[1])
        meta["task_source"] = (
            f"the first user message of the trajectory's history that is no demonstration (history[{first[0]}])"
        )
    return Trace(trace_id=trace_id, runs=runs, metadata=meta)


# --- OpenHands ----------------------------------------------------------------------------------
def _events(data: Any) -> list[Any] | None:
    items = data.get("events") if isinstance(data, dict) else data
    return items if isinstance(items, list) else None


def is_openhands(data: Any) -> bool:
    items = _events(data) or []
    head = [e for e in items[:50] if isinstance(e, dict)]
    return bool(head) and all("source" in e and ("action" in e or "observation" in e) for e in head)


def load_openhands(data: Any, source: str | None = None) -> Trace:
    items = _events(data) or []
    trace_id = str((data.get("id") or data.get("session_id")) if isinstance(data, dict) else "") or _digest(items)
    runs: list[TraceRun] = []
    by_event: dict[str, TraceRun] = {}
    for i, e in enumerate(items):
        if not isinstance(e, dict):
            raise TraceFormatError("expected an event object", source=source, field=f"events[{i}]")
        when = parse_time(e.get("timestamp"), source=source, field=f"events[{i}].timestamp")
        cause = by_event.get(str(e.get("cause")))
        if "observation" in e and cause is not None:  # the result of an earlier action
            cause.outputs = {**(cause.outputs or {}), "content": e.get("content"), **_extras(e)}
            cause.end_time = when or cause.end_time
            if e["observation"] == "error":
                cause.error = str(e.get("content") or e.get("message") or "error observation")
            continue
        kind = str(e.get("action") or e.get("observation") or "event")
        src = str(e.get("source") or "")
        run = TraceRun(
            id=f"event-{e.get('id', i)}",
            name=f"{src} {kind}".strip(),
            run_type=_oh_type(kind, src),
            inputs=as_dict(e.get("args"), "args") or ({"message": e["message"]} if e.get("message") else {}),
            outputs={"content": e.get("content"), **_extras(e)} if "observation" in e else None,
            start_time=when,
            trace_id=trace_id,
            step=i,
        )
        if e.get("observation") == "error":
            run.error = str(e.get("content") or e.get("message") or "error observation")
        by_event[str(e.get("id", i))] = run
        runs.append(run)
    task = next((r.inputs.get("content") or r.inputs.get("message") for r in runs if r.name == "user message"), None)
    meta: dict[str, Any] = {"format": "openhands"}
    if task:
        meta["task"], meta["task_source"] = content_text(task), "the user's first message event"
    start, end = span_bounds(runs)
    return Trace(trace_id=trace_id, runs=runs, start_time=start, end_time=end, metadata=meta)


def _oh_type(kind: str, source: str) -> RunType:
    if kind == "message":
        return RunType.LLM if source == "agent" else RunType.PROMPT
    return RunType.CHAIN if kind in ("finish", "think", "system", "recall", "condensation") else RunType.TOOL


def _extras(e: dict[str, Any]) -> dict[str, Any]:
    extras = e.get("extras")
    return {"extras": extras} if extras else {}


# --- OpenAI Agents SDK --------------------------------------------------------------------------
def _sdk_items(data: Any) -> list[Any] | None:
    items = data.get("data") if isinstance(data, dict) else data
    return items if isinstance(items, list) else None


def is_agents_sdk(data: Any) -> bool:
    items = _sdk_items(data) or []
    return any(isinstance(x, dict) and (x.get("object") == "trace.span" or "span_data" in x) for x in items[:50])


def load_agents_sdk(data: Any, source: str | None = None) -> Trace:
    items = [x for x in _sdk_items(data) or [] if isinstance(x, dict)]
    head = next((x for x in items if x.get("object") == "trace"), {})
    spans = [x for x in items if x.get("object") == "trace.span" or "span_data" in x]
    trace_id = str(head.get("id") or next((s.get("trace_id") for s in spans if s.get("trace_id")), "") or "agents")
    runs = [_sdk_run(s, i, trace_id, source) for i, s in enumerate(spans)]
    runs = order_runs(runs)
    meta: dict[str, Any] = {"format": "openai_agents"}
    for key in ("workflow_name", "group_id", "metadata"):
        if head.get(key):
            meta[key] = head[key]
    first = next((r for r in runs if r.run_type == RunType.LLM and r.inputs), None)
    if first is not None:
        meta["task"], meta["task_source"] = _first_user(first.inputs.get("input")), f"the first generation {first.id}"
        if not meta["task"]:
            del meta["task"], meta["task_source"]
    start, end = span_bounds(runs)
    return Trace(
        trace_id=trace_id,
        project_name=str(head.get("workflow_name") or ""),
        runs=runs,
        start_time=start,
        end_time=end,
        metadata=meta,
    )


_SDK_TYPES = {
    "agent": RunType.AGENT,
    "generation": RunType.LLM,
    "response": RunType.LLM,
    "function": RunType.TOOL,
    "handoff": RunType.CHAIN,
    "guardrail": RunType.CHAIN,
    "custom": RunType.CHAIN,
}


def _sdk_run(span: dict[str, Any], i: int, trace_id: str, source: str | None) -> TraceRun:
    data = span.get("span_data") or {}
    kind = str(data.get("type") or "span")
    if kind == "handoff":
        name = f"handoff {data.get('from_agent')} → {data.get('to_agent')}"
    else:
        name = str(data.get("name") or data.get("model") or kind)
    inputs = {k: maybe_json(data[k]) for k in ("input", "tools", "handoffs", "from_agent") if data.get(k)}
    outputs = {k: maybe_json(data[k]) for k in ("output", "triggered", "to_agent", "response_id") if k in data}
    rest = {k: v for k, v in data.items() if k not in {*inputs, *outputs, "type", "name"}}
    err = span.get("error")
    return TraceRun(
        id=str(span.get("id") or f"span-{i}"),
        name=name,
        run_type=_SDK_TYPES.get(kind, RunType.CHAIN),
        inputs=inputs,
        outputs=outputs or None,
        parent_run_id=span.get("parent_id"),
        trace_id=trace_id,
        start_time=parse_time(span.get("started_at"), source=source, field=f"spans[{i}].started_at"),
        end_time=parse_time(span.get("ended_at"), source=source, field=f"spans[{i}].ended_at"),
        error=(str(err.get("message") or err) if isinstance(err, dict) else str(err)) if err else None,
        metadata={"span_type": kind, **rest},
    )


def _first_user(messages: Any) -> str:
    if isinstance(messages, list):
        for m in messages:
            if isinstance(m, dict) and m.get("role") == "user":
                return content_text(m.get("content"))
    return ""


def _digest(value: Any) -> str:
    """A stable id for a log that names none."""
    return "log-" + hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]
