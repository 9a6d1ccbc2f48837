"""A span's status and events: whether it failed, the error text it states, and its events as
plain values. Pure.

Why apart from `otel`: every span shape (OTLP/JSON, protobuf's snake_case JSON, Phoenix's REST
pages, the ClickHouse layout) states failure the same few ways — a status code (`2`, `ERROR`,
`STATUS_CODE_ERROR`), a message, `exception` events — and the loader only asks "failed, and why".
"""

from __future__ import annotations

from typing import Any, Literal

from refinery.traces.common import parse_time
from refinery.traces.otel_attributes import StringPool, attributes_of

__all__ = ["error_of", "plain_events", "status_code"]


def status_code(status: Any) -> Literal["ok", "error"] | None:
    """ "ok", "error", or None for UNSET / absent: OTel's UNSET says nothing about success."""
    code = status.get("code", status.get("status_code")) if isinstance(status, dict) else status
    if code in (2, "2") or (isinstance(code, str) and code.upper() in ("ERROR", "STATUS_CODE_ERROR")):
        return "error"
    if code in (1, "1") or (isinstance(code, str) and code.upper() in ("OK", "STATUS_CODE_OK")):
        return "ok"
    return None


def plain_events(events: Any, pool: StringPool | None) -> Any:
    """Events as their name, time and attributes in plain values: OTLP's typed `{key, value}`
    pairs (and the null fields protobuf's JSON lists) said once each, not as wrappers around them,
    and `timeUnixNano` as an ISO `timestamp` like the other span shapes give."""
    if not isinstance(events, list):
        return events
    out: list[Any] = []
    for ev in events:
        if not isinstance(ev, dict):
            out.append(ev)
            continue
        if isinstance(ev.get("attributes"), list):
            ev = {**ev, "attributes": attributes_of(ev["attributes"], pool)}
        nanos = next((ev[k] for k in ("timeUnixNano", "time_unix_nano") if ev.get(k) not in (None, "", 0, "0")), None)
        if nanos is not None and "timestamp" not in ev:  # a time as the run's own times read, not a count of ns
            when = parse_time(nanos)
            ev = {k: v for k, v in ev.items() if k not in ("timeUnixNano", "time_unix_nano")}
            ev["timestamp"] = when.isoformat() if when else nanos
        out.append({k: v for k, v in ev.items() if v is not None})
    return out


def _exceptions(events: Any) -> list[dict[str, Any]]:
    return [
        attributes_of(ev.get("attributes"))
        for ev in events or []
        if isinstance(ev, dict) and ev.get("name") == "exception"
    ]


def error_of(status: Any, events: Any) -> str | None:
    """The error a span states: its status ERROR (with message and exception events), or, when
    its status is not set, an exception event it recorded."""
    code = status_code(status)
    message = (status.get("message") or status.get("description")) if isinstance(status, dict) else None
    if code == "ok" or (code is None and not _exceptions(events)):
        return None
    details = []
    for a in _exceptions(events):
        line = ": ".join(str(a[k]) for k in ("exception.type", "exception.message") if a.get(k))
        if line and not (message and line in message):
            details.append(line)
        stack = str(a.get("exception.stacktrace") or "")
        if stack.strip() and stack.strip() != line and not (message and stack.strip() in message):
            details.append(stack)  # a one-line "stack trace" that repeats the line above is not shown twice
    text = "\n".join(p for p in [message, *details] if p)
    return text or ("span status ERROR" if code == "error" else "exception event")
