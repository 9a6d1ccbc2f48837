"""Spans in the OpenTelemetry collector's ClickHouse exporter layout, read as OTLP-like spans.

Why: self-hosted stacks (and TRAIL's published traces) export spans as the exporter's table rows,
snake_case (`span_name`, `span_attributes`, `status_code`, `timestamp` + `duration`, events with
`Name`/`Attributes`, `logs`) or CamelCase (`SpanName`, `SpanAttributes`, `StatusCode`,
`Duration` in ns, parallel `Events.Name` / `Events.Attributes` arrays). Read as plain OTLP they
became empty shells named `span`; `from_columns` maps them onto the keys `span_to_run` reads.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from refinery.errors import TraceFormatError
from refinery.traces.common import maybe_json, parse_time
from refinery.traces.otel_attributes import attributes_of

# The ClickHouse exporter's columns: snake_case as some exports (TRAIL) write them, CamelCase as the
# exporter's own tables name them. Each canonical key is read from the first column present.
_COLUMNS = {
    "name": ("span_name", "SpanName"),
    "kind": ("span_kind", "SpanKind"),
    "attributes": ("span_attributes", "SpanAttributes"),
    "resource": ("resource_attributes", "ResourceAttributes"),
    "status_code": ("status_code", "StatusCode"),
    "status_message": ("status_message", "StatusMessage"),
    "timestamp": ("timestamp", "Timestamp"),
    "duration": ("duration", "Duration"),
    "trace_id": ("trace_id", "TraceId"),
    "span_id": ("span_id", "SpanId"),
    "parent_span_id": ("parent_span_id", "ParentSpanId"),
    "service_name": ("service_name", "ServiceName"),
    "events": ("events", "Events"),
    "logs": ("logs", "Logs"),
}
_COLUMN_MARKERS = frozenset({"span_name", "SpanName", "span_attributes", "SpanAttributes"})
_ISO_DURATION = re.compile(
    r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)

log = logging.getLogger("refinery.traces")


def is_clickhouse_span(span: Any) -> bool:
    return isinstance(span, dict) and not _COLUMN_MARKERS.isdisjoint(span)  # one C loop over its keys


def parse_duration(value: Any, *, source: str | None = None, field: str | None = None) -> timedelta | None:
    """A span duration: ISO-8601 (`PT1M48.75S`, as TRAIL writes it) or a number of nanoseconds
    (the ClickHouse exporter's `Duration UInt64`)."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise TraceFormatError(f"expected a duration, got {value!r}", source=source, field=field)
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        try:
            return timedelta(microseconds=float(value) / 1000)
        except (OverflowError, ValueError):  # NaN, Infinity, 1e400: no usable duration
            log.warning(
                "%s: %s: %r is no usable duration; taken as absent", source or "trace", field or "duration", value
            )
            return None
    if isinstance(value, str):
        m = _ISO_DURATION.match(value.strip().upper())
        if m and any(m.groups()):
            d, h, mi, sec = (float(g) if g else 0.0 for g in m.groups())
            return timedelta(days=d, hours=h, minutes=mi, seconds=sec)
    raise TraceFormatError(f"expected an ISO-8601 duration or nanoseconds, got {value!r}", source=source, field=field)


def _column_events(span: dict[str, Any]) -> list[dict[str, Any]]:
    """Events as `{name, attributes, timestamp}`: from a list of `{Name, Attributes, Timestamp}`
    objects, or from the exporter's parallel `Events.Name` / `Events.Attributes` arrays."""
    raw = column(span, "events")
    out: list[dict[str, Any]] = []
    if isinstance(raw, list):
        for ev in raw:
            if isinstance(ev, dict):
                out.append(
                    {
                        "name": ev.get("name", ev.get("Name")),
                        "attributes": attributes_of(ev.get("attributes", ev.get("Attributes"))),
                        "timestamp": ev.get("timestamp", ev.get("Timestamp")),
                    }
                )
    names = span.get("Events.Name") or span.get("events.name")
    if isinstance(names, list):
        attrs = span.get("Events.Attributes") or span.get("events.attributes") or []
        times = span.get("Events.Timestamp") or span.get("events.timestamp") or []
        for i, name in enumerate(names):
            out.append(
                {
                    "name": name,
                    "attributes": attributes_of(attrs[i] if i < len(attrs) else {}),
                    "timestamp": times[i] if i < len(times) else None,
                }
            )
    return out


def column(span: dict[str, Any], key: str) -> Any:
    """A ClickHouse-layout span's value for a canonical key (`_COLUMNS`), in either spelling."""
    return next((span[c] for c in _COLUMNS[key] if c in span), None)


def _end(start: Any, duration: timedelta | None) -> str | None:
    try:
        return (start + duration).isoformat() if start and duration is not None else None
    except OverflowError:  # a duration that runs past the calendar
        return None


def from_columns(span: dict[str, Any], source: str | None, field: str) -> dict[str, Any]:
    """A ClickHouse-layout span as the OTLP-like dict `span_to_run` reads."""
    start = parse_time(column(span, "timestamp"), source=source, field=f"{field}.timestamp")
    duration = parse_duration(column(span, "duration"), source=source, field=f"{field}.duration")
    status_code = column(span, "status_code")
    out: dict[str, Any] = {
        "name": column(span, "name"),
        "attributes": attributes_of(column(span, "attributes")),
        "status": {"code": status_code, "message": column(span, "status_message")},
        "events": _column_events(span),
        "traceId": column(span, "trace_id"),
        "spanId": column(span, "span_id"),
        "parentSpanId": column(span, "parent_span_id"),
        "startTime": start.isoformat() if start else None,
        "endTime": _end(start, duration),
    }
    kind = column(span, "kind")
    if kind not in (None, ""):
        out["kind"] = kind
    resource = attributes_of(column(span, "resource"))
    service = column(span, "service_name")
    if service and "service.name" not in resource:
        resource["service.name"] = service
    if resource:
        out["resource"] = resource
    logs = column(span, "logs")
    if logs:
        out["logs"] = logs
    return out


def log_io(logs: Any) -> tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]:
    """Inputs, outputs and the rest from span logs whose body records a function call
    (`function.arguments` / `function.output`, as Patronus-instrumented spans do), so a span
    with no OpenInference attributes still shows what it was given and what it returned."""
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] | None = None
    kept: list[dict[str, Any]] = []
    for log in logs if isinstance(logs, list) else []:
        if not isinstance(log, dict):
            continue
        body = log.get("body", log.get("Body"))
        if isinstance(body, dict):
            if body.get("function.arguments") not in (None, {}, ""):
                inputs["arguments"] = maybe_json(body["function.arguments"])
            if body.get("function.output") not in (None, "", "<null>"):
                outputs = {"output": maybe_json(body["function.output"])}
            rest = {
                k: v for k, v in body.items() if k not in ("function.arguments", "function.output", "function.name")
            }
            if rest:
                kept.append({"severity": log.get("severity_text", log.get("SeverityText")), "body": rest})
        elif body not in (None, ""):
            kept.append({"severity": log.get("severity_text", log.get("SeverityText")), "body": body})
    return inputs, outputs, kept
