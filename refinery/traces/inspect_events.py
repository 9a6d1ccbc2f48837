"""An Inspect AI sample as the agent saw it: references resolved, its steps apart from its grading. Pure.

Inspect stores a sample compactly, and the compact form hides text from a reader of the JSON:

- **attachments**: any string longer than about 100 characters in the events (and images in the
  messages) is stored once in the sample's `attachments` and written as `attachment://<hash>`
  (older logs: `tc://<hash>`) wherever it occurs — messages, model inputs and outputs, tool
  calls and results, state changes. `resolved` puts the text back everywhere.
- **message pool**: newer logs keep each model call's input messages once, in `message_pool`,
  and give a call `input_refs` (`[start, end)` ranges into the pool) instead of its `input`;
  `resolved` expands them.
- **scoring**: scorers run inside spans of type `scorer` / `scorers` (older logs: `step` events
  with `action: begin|end` and `type: scorer`); a model-graded scorer (`model_graded_fact`, a
  judge) makes model calls there, and a model given a grading role (`role: grader`) may make
  them anywhere. Those calls grade the run; they are not steps of the agent.
  `event_runs` keeps them apart, as labels, like the scores.

Model calls show what is new to the agent in their input: each distinct system message once,
where the agent first receives it, and the messages not already shown (an earlier call's output,
a tool result rendered as the tool's own run).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from refinery.core.models import RunType, TraceRun
from refinery.traces.common import as_dict, parse_time

ATTACHMENT = "attachment://"
_OLD_ATTACHMENT = "tc://"
SCORER_SPANS = frozenset({"scorer", "scorers", "score"})
JUDGE_ROLES = frozenset({"grader", "judge", "scorer"})  # a model event's `role` (Inspect's model roles)


def resolved(sample: dict[str, Any]) -> dict[str, Any]:
    """The sample with every `attachment://` reference replaced by its text and each model call's
    `input_refs` expanded from the message pool (references with no attachment stay as written)."""
    attachments = sample.get("attachments") if isinstance(sample.get("attachments"), dict) else {}

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            ref = ATTACHMENT + value[len(_OLD_ATTACHMENT) :] if value.startswith(_OLD_ATTACHMENT) else value
            if ref.startswith(ATTACHMENT):
                found = attachments.get(ref[len(ATTACHMENT) :])
                return _readable(found) if isinstance(found, str) else value
            return value
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    pool = walk(sample.get("message_pool") or [])
    out = {k: walk(v) for k, v in sample.items() if k not in ("attachments", "message_pool", "call_pool")}
    events = out.get("events")
    if isinstance(events, list) and isinstance(pool, list) and pool:
        out["events"] = [_with_input(e, pool) for e in events]
    return out


def _readable(text: str) -> str:
    """An attachment's text; an image or other file kept as a base64 data URI is no text to read,
    so it is named, not inlined (Inspect stores screenshots this way)."""
    if text.startswith("data:") and ";base64," in text[:200]:
        return f"[{text[5:].split(';', 1)[0] or 'binary'} data, {len(text)} characters, not shown]"
    return text


def _with_input(event: Any, pool: list[Any]) -> Any:
    if not isinstance(event, dict) or event.get("event") != "model" or event.get("input"):
        return event
    refs = event.get("input_refs")
    if not isinstance(refs, list):
        return event
    messages = [m for r in refs if isinstance(r, list) and len(r) == 2 for m in pool[int(r[0]) : int(r[1])]]
    return {**{k: v for k, v in event.items() if k != "input_refs"}, "input": messages}


def scorer_of(events: list[dict[str, Any]]) -> list[str | None]:
    """For each event, the scorer it runs inside (its name), or None for the agent's own events."""
    spans: dict[str, tuple[str, str, str | None]] = {}  # span id → (type, name, parent id)
    legacy: list[tuple[str, str]] = []  # open `step` events (older logs): (type, name)
    found: list[str | None] = []
    for e in events:
        kind = e.get("event")
        if kind == "span_begin" and e.get("id"):
            spans[str(e["id"])] = (str(e.get("type") or ""), str(e.get("name") or ""), _opt(e.get("parent_id")))
        elif kind == "step":
            if e.get("action") == "begin":
                legacy.append((str(e.get("type") or ""), str(e.get("name") or "")))
            elif legacy:
                legacy.pop()
        scorer = _span_scorer(spans, _opt(e.get("span_id")))
        if scorer is None:
            scorer = next((name or kind_ for kind_, name in reversed(legacy) if kind_ in SCORER_SPANS), None)
        found.append(scorer)
    return found


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _span_scorer(spans: dict[str, tuple[str, str, str | None]], span_id: str | None) -> str | None:
    seen: set[str] = set()
    while span_id is not None and span_id in spans and span_id not in seen:
        seen.add(span_id)
        kind, name, parent = spans[span_id]
        if kind in SCORER_SPANS:
            return name or kind
        span_id = parent
    return None


def message_text(message: Any) -> str:
    """A chat message's text: its content string, or its content blocks' text, reasoning and refusals."""
    content = message.get("content") if isinstance(message, dict) else message
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                parts += [str(block[k]) for k in ("text", "reasoning", "refusal") if block.get(k)]
            elif block:
                parts.append(str(block))
        return "\n".join(parts)
    if isinstance(content, str):
        return content
    return "" if content is None else json.dumps(content, ensure_ascii=False, default=str)


def _key(message: dict[str, Any]) -> str:
    return str(message.get("id") or json.dumps([message.get("role"), message_text(message)], ensure_ascii=False))


def _shown(message: dict[str, Any]) -> dict[str, Any]:
    """A message as a model run's input shows it: role, text and what links it to a tool call."""
    view: dict[str, Any] = {"role": message.get("role"), "content": message_text(message)}
    for k in ("name", "function", "tool_call_id", "tool_calls", "error"):
        if message.get(k):
            view[k] = message[k]
    return view


class _Seen:
    """What the agent has been shown so far: each message (by id, else by role and text) as many
    times as one input held it — a message written again word for word (a "please continue"
    prompt in a log without message ids) is new again — and each distinct system text once."""

    def __init__(self, tool_ids: set[str]) -> None:
        self.counts: Counter[str] = Counter()
        self.system: set[str] = set()
        self.tool_ids = tool_ids  # tool calls rendered as runs of their own: their results are there

    def new_inputs(self, messages: list[Any], output: dict[str, Any]) -> dict[str, Any]:
        """The part of a model call's input the agent had not been shown, then the call's output
        counted as shown (the next input repeats it)."""
        system: list[str] = []
        others: list[dict[str, Any]] = []
        here: Counter[str] = Counter()
        for m in (m for m in messages if isinstance(m, dict)):
            key, text = _key(m), message_text(m)
            here[key] += 1
            if m.get("role") == "system":
                if text not in self.system:
                    self.system.add(text)
                    system.append(text)
            elif here[key] > self.counts[key]:
                if not (m.get("role") == "tool" and str(m.get("tool_call_id")) in self.tool_ids):
                    others.append(_shown(m))
        if output:
            here[_key(output)] += 1
        for key, n in here.items():
            self.counts[key] = max(self.counts[key], n)
        inputs: dict[str, Any] = {}
        if system:
            inputs["system message" if len(system) == 1 else "system messages"] = (
                system[0] if len(system) == 1 else system
            )
        if others:
            inputs["new input messages"] = others
        return inputs


def event_runs(
    events: list[dict[str, Any]], trace_id: str, source: str | None, field: str
) -> tuple[list[TraceRun], list[dict[str, Any]]]:
    """A run per model call, tool call and error event of the agent, in order (a tool call nested
    under the model call whose output asked for it); and the scorers' own calls, as labels."""
    runs: list[TraceRun] = []
    judged: list[dict[str, Any]] = []
    caller: dict[str, str] = {}  # tool call id → the model call's run id
    scorers = scorer_of(events)
    seen = _Seen({str(e.get("id")) for e, s in zip(events, scorers) if e.get("event") == "tool" and s is None})
    for i, (e, scorer) in enumerate(zip(events, scorers)):
        kind = e.get("event")
        if kind not in ("model", "tool", "error"):
            continue  # sample_init, state, store, span/step, score (a label), logger, info, sandbox, …
        if scorer is None and kind == "model" and str(e.get("role") or "").lower() in JUDGE_ROLES:
            scorer = f"the {e['role']} model"
        if scorer is not None:
            judged.append(_judge_call(e, scorer))
            continue
        rid = str(e.get("uuid") or e.get("id") or f"event-{i}")
        if kind == "model":
            message = _output_message(e)
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict) and call.get("id"):
                    caller[str(call["id"])] = rid
            outputs: dict[str, Any] = {"content": message_text(message)}
            if message.get("tool_calls"):
                outputs["tool_calls"] = message["tool_calls"]
            inputs = seen.new_inputs(e.get("input") or [], message)
            run = TraceRun(
                id=rid, name=str(e.get("model") or "model"), run_type=RunType.LLM, inputs=inputs, outputs=outputs
            )
        elif kind == "tool":
            call_id = str(e.get("id") or rid)
            run = TraceRun(
                id=call_id,
                name=str(e.get("function") or "tool"),
                run_type=RunType.TOOL,
                inputs=as_dict(e.get("arguments"), "arguments") or {},
                outputs=as_dict(e.get("result"), "result"),
                parent_run_id=caller.get(call_id),
            )
        else:
            err = e.get("error") or {}
            run = TraceRun(id=rid, name="error", run_type=RunType.CHAIN, outputs={"traceback": err.get("traceback")})
            run.error = str(err.get("message") or "error")
        err = e.get("error")
        if kind != "error" and err:
            run.error = str(err.get("message") if isinstance(err, dict) else err)
        run.start_time = parse_time(e.get("timestamp"), source=source, field=f"{field}.events[{i}].timestamp")
        run.end_time = parse_time(e.get("completed"), source=source, field=f"{field}.events[{i}].completed")
        run.trace_id, run.step = trace_id, i
        runs.append(run)
    return runs, judged


def _output_message(event: dict[str, Any]) -> dict[str, Any]:
    choices = (event.get("output") or {}).get("choices") or [{}]
    message = (choices[0] or {}).get("message") if isinstance(choices[0], dict) else None
    return message if isinstance(message, dict) else {}


def _judge_call(event: dict[str, Any], scorer: str) -> dict[str, Any]:
    """A scorer's own model or tool call, as the labels keep it."""
    if event.get("event") == "model":
        return {
            "scorer": scorer,
            "model": event.get("model"),
            "input": [_shown(m) for m in event.get("input") or [] if isinstance(m, dict)],
            "output": message_text(_output_message(event)),
        }
    return {"scorer": scorer, "event": event.get("event"), "function": event.get("function"), "data": event}
