"""What one OpenTelemetry span says of itself — its ids, times, kind, status and the attributes its
run keeps as attributes — and the skeleton of a span: those facts without the run.

Why apart from `otel`: a big trace's load reads every span only to learn its place, its times,
whether it failed and which attributes every span repeats (`span_source.Skeleton`, `Hoisted`).
Making the whole run for that (its messages unflattened, its values parsed, the model validated)
cost about twice what the skeleton does; both read the span through the functions here, so the
skeleton and the run cannot disagree.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from refinery.core.models import RunType, fact_of
from refinery.traces.common import nanos_time, parse_time
from refinery.traces.otel_attributes import attributes_of
from refinery.traces.otel_columns import is_clickhouse_span
from refinery.traces.otel_keys import key_layout
from refinery.traces.otel_status import error_of, plain_events, status_code
from refinery.traces.span_source import Hoisted, Skeleton

START_NAMES = ("startTimeUnixNano", "start_time_unix_nano", "startTime", "start_time")
END_NAMES = ("endTimeUnixNano", "end_time_unix_nano", "endTime", "end_time")

OPENINFERENCE_KINDS = {
    "LLM": RunType.LLM,
    "CHAIN": RunType.CHAIN,
    "TOOL": RunType.TOOL,
    "RETRIEVER": RunType.RETRIEVER,
    "RERANKER": RunType.RETRIEVER,
    "EMBEDDING": RunType.EMBEDDING,
    "AGENT": RunType.AGENT,
    "PROMPT": RunType.PROMPT,
    "GUARDRAIL": RunType.CHAIN,
    "EVALUATOR": RunType.CHAIN,
}
GENAI_OPERATIONS = {
    "chat": RunType.LLM,
    "text_completion": RunType.LLM,
    "generate_content": RunType.LLM,
    "execute_tool": RunType.TOOL,
    "embeddings": RunType.EMBEDDING,
    "invoke_agent": RunType.AGENT,
    "create_agent": RunType.AGENT,
}


def kind_of(name: str, attrs: dict[str, Any], span_kind: Any = None) -> RunType:
    for oi in (attrs.get("openinference.span.kind"), span_kind):
        if isinstance(oi, str) and oi.upper() in OPENINFERENCE_KINDS:
            return OPENINFERENCE_KINDS[oi.upper()]
    op = attrs.get("gen_ai.operation.name")
    if isinstance(op, str) and op in GENAI_OPERATIONS:
        return GENAI_OPERATIONS[op]
    lowered = name.lower()
    if lowered.startswith("ai."):  # Vercel AI SDK
        if "tool" in lowered:
            return RunType.TOOL
        if "embed" in lowered:
            return RunType.EMBEDDING
        if lowered.endswith((".dogenerate", ".dostream")):
            return RunType.LLM
        return RunType.CHAIN
    if attrs.get("gen_ai.request.model") or attrs.get("llm.model_name"):
        return RunType.LLM
    return RunType.UNKNOWN


_HEX_DIGITS = "0123456789abcdefABCDEF"


def hex_id(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        text = value[2:] if value.startswith("0x") else value
        if not text.strip(_HEX_DIGITS):  # hex digits only (strip leaves any other character)
            return text
        try:  # OTLP protobuf-JSON from some SDKs: base64-encoded bytes
            raw = base64.b64decode(text, validate=True)
            if len(raw) in (8, 16):
                return raw.hex()
        except ValueError:
            pass
        return text
    if isinstance(value, int):
        return format(value, "x")
    return str(value)


def span_ids(span: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    trace_id, span_id, parent = span.get("traceId"), span.get("spanId"), span.get("parentSpanId")
    if (  # OTLP's three ids, each text of hex digits only: what the chains below take first, as they are
        type(trace_id) is str
        and type(span_id) is str
        and type(parent) is str
        and trace_id
        and span_id
        and parent
        and not (trace_id + span_id + parent).strip(_HEX_DIGITS)
    ):
        return trace_id, span_id, parent
    ctx = span.get("spanContext") or span.get("context") or {}
    ctx = ctx if isinstance(ctx, dict) else {}
    trace_id = span.get("traceId") or span.get("trace_id") or ctx.get("traceId") or ctx.get("trace_id")
    span_id = span.get("spanId") or span.get("span_id") or ctx.get("spanId") or ctx.get("span_id") or span.get("id")
    parent = span.get("parentSpanId") or span.get("parent_span_id") or span.get("parent_id") or span.get("parentId")
    if parent is None and isinstance(span.get("parentSpanContext"), dict):
        parent = span["parentSpanContext"].get("spanId")
    return hex_id(trace_id), hex_id(span_id), hex_id(parent)


def span_time(span: dict[str, Any], names: tuple[str, ...], source: str | None, i: int) -> Any:
    """Span `i`'s time under the first of `names` it gives (a bad one named `spans[i].NAME`)."""
    for n in names:
        value = span.get(n)
        if value not in (None, "", 0, "0"):  # OTLP's nanoseconds read directly, the same datetime
            return nanos_time(value) or parse_time(value, source=source, field=f"spans[{i}].{n}")
    return None


def span_status(span: dict[str, Any]) -> Any:
    """The span's status as OTLP gives it, or Phoenix's REST API's two top-level fields as one."""
    status = span.get("status")
    if status is None and span.get("status_code"):
        status = {"code": span["status_code"], "message": span.get("status_message")}
    return status


def synthetic_id(span: dict[str, Any], i: int) -> str:
    """An id for a span that has none: its place and a hash of its content."""
    digest = hashlib.sha256(json.dumps(span, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"span-{i + 1:04d}-{digest}"


def rest_attributes(attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes a run keeps as its `metadata["attributes"]` (`KeyLayout.rest_of`): read from
    the keys' layout, so the load need not make the messages to know it."""
    return key_layout(attrs).rest_of(attrs)


def span_skeleton(
    span: Any, k: int, source: str | None, resource: dict[str, Any] | None, *, attributes: bool = True
) -> tuple[Skeleton, dict[str, Any] | None, dict[str, Any], int] | None:
    """Span `k` as the load needs it: its `Skeleton`, the resource and attributes its run would keep
    (for `Hoisted`; `attributes=False`: none, when it reads them no more), and its `LazyRuns` fact —
    after every check that making its run makes, in the same order, so a bad span fails the load
    here, named. None for what only a run can tell (no object, the ClickHouse layout): the caller
    makes the run."""
    if not isinstance(span, dict) or is_clickhouse_span(span):
        return None
    trace_id, span_id, parent = span_ids(span)
    attrs = attributes_of(span.get("attributes"))
    name = str(span.get("name") or attrs.get("gen_ai.tool.name") or attrs.get("tool.name") or "span")
    if span.get("events"):
        plain_events(span["events"], None)  # what it would refuse (a bad time, a bad attribute) fails here
    status = span_status(span)
    stated = status_code(status)
    error = None if stated == "ok" else error_of(status, span.get("events"))  # (`error_of` says None to "ok")
    # OTLP's own names first, read directly: the time `span_time` finds under them
    start = nanos_time(span.get("startTimeUnixNano")) or span_time(span, START_NAMES, source, k)
    end = nanos_time(span.get("endTimeUnixNano")) or span_time(span, END_NAMES, source, k)
    kept = resource or None
    service = kept.get("service.name") if isinstance(kept, dict) else None
    kind = kind_of(name, attrs, span.get("kind") or span.get("span_kind"))
    skeleton = Skeleton(
        span_id or synthetic_id(span, k),
        parent,
        start,
        end,
        trace_id or "",
        k,
        service,
        None,
        kind,
        error,
        "error" if error else stated,
    )
    failed = error is not None  # `error_of` gives text for every status ERROR: its code not read again
    return skeleton, kept, rest_attributes(attrs) if attributes else {}, fact_of(kind, failed)


class SpanWatch:
    """What a big trace's load needs of each span of one array — its skeleton, its fact, the
    attributes every span repeats — taken while the reader's own scan holds the span parsed
    (`ReadShape.watches`), so the load need not parse the file once more. Its spans are numbered
    within the array and their resource is not known yet: the load adds both (`indexed`: some span
    needed its number — an id made from it, a time it names in a warning — so the watch serves only
    the trace's first spans). A span only its run can tell about (no object, the ClickHouse layout)
    or a bad one raises: the reader drops the watch, and the load reads the spans itself."""

    def __init__(self, key: str, head: Mapping[str, Any], source: str) -> None:
        self.source = source
        self.skeletons: list[Skeleton] = []
        self.facts = bytearray()
        self.hoisted = Hoisted()
        self.indexed = False

    def add(self, span: Any) -> None:
        seen = span_skeleton(span, len(self.skeletons), self.source, None, attributes=self.hoisted.reads_attributes)
        if seen is None:
            raise ValueError("a span only its run can tell about")
        skeleton, _, attributes, fact = seen
        self.hoisted.see_values(None, attributes)
        self.skeletons.append(skeleton)
        self.facts.append(fact)
        if (
            skeleton.id.startswith("span-")  # made from its number, perhaps (a real id so named: counted too)
            or (skeleton.start_time is None and any(span.get(n) not in (None, "", 0, "0") for n in START_NAMES))
            or (skeleton.end_time is None and any(span.get(n) not in (None, "", 0, "0") for n in END_NAMES))
        ):
            self.indexed = True
