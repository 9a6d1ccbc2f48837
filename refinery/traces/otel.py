"""OpenTelemetry spans (with OpenInference or GenAI attributes) → `Trace`.

Shapes accepted:
- OTLP/JSON: `resourceSpans[].scopeSpans[].spans[]`, attributes as typed `{key, value}` pairs,
  hex ids, `*UnixNano` timestamps;
- a flat list of spans (OTLP-like, SDK `ReadableSpan`-like with `spanContext`, or snake_case
  exporter dicts with `context`), optionally under `{"spans": [...]}` / `{"data": [...]}`;
- nested span trees whose children sit in `child_spans`;
- the OpenTelemetry collector's ClickHouse exporter layout, snake_case (`span_name`,
  `span_attributes`, `status_code`, `timestamp` + `duration`, events with `Name`/`Attributes`,
  `logs`) or CamelCase (`SpanName`, `SpanAttributes`, `StatusCode`, `Timestamp`, `Duration`,
  `Events.Name`, …), flat or nested — the shape TRAIL and many self-hosted stacks export;
- a single span given as its flat attribute map (`openinference.span.kind`, `gen_ai.*`, …).

OpenInference attributes (`input.value`, `llm.input_messages.N.*`, `llm.output_messages.N.*`,
tool calls, `llm.token_count.*`) and the OTel GenAI conventions (`gen_ai.*`) become the run's
inputs, outputs and metadata; a span whose status is ERROR becomes a failed run. When a span
carries its conversation both as `input.value` and as `llm.input_messages.*` (OpenInference
instrumentors write both), only the structured messages are kept, so nothing is shown twice.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

from refinery.core.models import LazyRuns, Trace, TraceRun, run_fact, run_from_values
from refinery.errors import TraceFormatError
from refinery.traces.common import maybe_json, order_runs, span_bounds
from refinery.traces.json_stream import LazyArray, ReadShape, is_array
from refinery.traces.otel_attributes import StringPool, attributes_of, otlp_value, unflatten
from refinery.traces.otel_columns import column, from_columns, is_clickhouse_span, log_io, parse_duration
from refinery.traces.otel_keys import key_layout
from refinery.traces.otel_span import (
    END_NAMES,
    START_NAMES,
    SpanWatch,
    kind_of,
    span_ids,
    span_skeleton,
    span_status,
    span_time,
    synthetic_id,
)
from refinery.traces.otel_status import error_of, plain_events, status_code
from refinery.traces.span_source import Hoisted, Skeleton, SpanEntries, SpanEntry

__all__ = ["attributes_of", "is_attribute_map", "load_otel", "otlp_value", "parse_duration", "span_to_run", "unflatten"]

CHILD_KEYS = ("child_spans", "ChildSpans", "children")  # a span's nested children
# Spans (flat, or a tree nested under its root) under OTLP's `resourceSpans[].scopeSpans[]` or a
# `spans`/`data` list: the spans stay in the file, read one at a time, children too.
READ_SHAPE = ReadShape(
    entries=frozenset({"spans", "data"}),
    wrappers=frozenset({"resourceSpans", "scopeSpans", "instrumentationLibrarySpans"}),
    children=frozenset(CHILD_KEYS),
    nesting=frozenset({"spans", "data"}),
    watches=(("spans", SpanWatch), ("data", SpanWatch)),  # a big array's skeletons taken as it is first read
)
_ATTRIBUTE_MARKERS = ("openinference.span.kind", "gen_ai.", "llm.", "input.value", "output.value")


def _io(attrs: dict[str, Any], keys: tuple[tuple[str, str], ...], messages: list[Any]) -> dict[str, Any]:
    """A run's inputs (or outputs): the serialised ones its keys' layout names (`KeyLayout.input_io`,
    those the messages duplicate left out) that hold something, parsed, and its messages."""
    out: dict[str, Any] = {}
    for key, name in keys:
        value = attrs[key]
        if value not in (None, ""):
            out[name] = maybe_json(value)
    if messages:
        out["messages"] = messages
    return out


def span_to_run(
    span: dict[str, Any],
    i: int,
    source: str | None,
    resource: dict[str, Any] | None = None,
    pool: StringPool | None = None,
    *,
    known: Skeleton | None = None,
) -> TraceRun:
    """Span `i` as a run. `known`: its skeleton, as the load read it from this span (its ids and
    times taken from there, not read again: a big trace's runs are made on every pass)."""
    if not isinstance(span, dict):
        raise TraceFormatError(f"expected a span object, got {type(span).__name__}", source=source, field=f"spans[{i}]")
    if is_clickhouse_span(span):
        span = from_columns(span, source, f"spans[{i}]")
        resource = span.pop("resource", None) or resource
    trace_id, span_id, parent = span_ids(span) if known is None else (known.trace_id, known.id, known.parent_run_id)
    attrs = attributes_of(span.get("attributes"), pool)
    name = str(span.get("name") or attrs.get("gen_ai.tool.name") or attrs.get("tool.name") or "span")
    if not span_id:
        span_id = synthetic_id(span, i)
    layout = key_layout(attrs)  # which keys are messages, inputs, model, tokens: worked out once a set of keys
    inputs = _io(attrs, layout.input_io, layout.inputs.read(attrs))
    outputs = _io(attrs, layout.output_io, layout.outputs.read(attrs))
    metadata: dict[str, Any] = {}
    for k in layout.model:  # the first that says one
        if attrs[k]:
            metadata["model"] = attrs[k]
            break
    if layout.tokens:
        tokens = {as_: attrs[k] for k, as_ in layout.tokens if attrs[k] is not None}
        if tokens:
            metadata["tokens"] = tokens
    tools = unflatten(attrs, "llm.tools", list(layout.tools)) if layout.tools else []
    if tools:
        inputs["tools"] = tools
    if span.get("logs"):
        log_in, log_out, log_rest = log_io(span["logs"])
        for k, v in log_in.items():
            inputs.setdefault(k, v)
        if log_out and not outputs:
            outputs = log_out
        if log_rest:
            metadata["logs"] = log_rest
    rest = layout.rest_of(attrs)
    if rest:
        metadata["attributes"] = rest
    kind = span.get("kind") or span.get("span_kind")  # Phoenix's REST API: `span_kind`, taken from the attributes
    if kind not in (None, "", 0):
        metadata["span_kind"] = kind
    if resource:
        metadata["resource"] = resource
    if span.get("events"):
        metadata["events"] = plain_events(span["events"], pool)
    status = span_status(span)
    if known is None or known.run_type is None:
        error = error_of(status, span.get("events"))
        run_type, stated = kind_of(name, attrs, kind), "error" if error else status_code(status)
    else:  # what the load read of this span: the same
        error, run_type, stated = known.error, known.run_type, known.status
    if isinstance(status, dict) and status.get("message") and not error:
        metadata["status_message"] = status["message"]
    if known is None:
        start = span_time(span, START_NAMES, source, i)
        end = span_time(span, END_NAMES, source, i)
    else:
        start, end = known.start_time, known.end_time
    # every field of its type by construction (ids, names and keys text, times parsed): not validated
    # again, and written out in the model's order (`run_from_checked`'s merge with the defaults, done here)
    values = {
        "id": span_id,
        "name": name,
        "run_type": run_type,
        "inputs": inputs,
        "outputs": outputs or None,
        "start_time": start,
        "end_time": end,
        "error": error,
        "parent_run_id": parent,
        "trace_id": trace_id or "",
        "dotted_order": None,
        "metadata": metadata,
        "step": None,
        "status": stated,
    }
    return run_from_values(values, set(_SPAN_GIVEN))


# the fields `span_to_run` gives (`dotted_order` and `step` are the defaults, not given)
_SPAN_GIVEN = frozenset(
    ("id", "name", "run_type", "inputs", "outputs", "start_time", "end_time", "error", "status")
    + ("parent_run_id", "trace_id", "metadata")
)


def is_attribute_map(data: Any) -> bool:
    return isinstance(data, dict) and any(k.startswith(_ATTRIBUTE_MARKERS) for k in data) and "name" not in data


def _walk_nested(spans: Iterable[Any], parent: str | None) -> Iterator[dict[str, Any]]:
    """Each span of a (possibly nested) span list, flat, children given their parent's id."""
    for span in spans:
        if not isinstance(span, dict):
            yield span  # not a span: `span_to_run` says so, naming it
            continue
        children: Any = next((span[k] for k in CHILD_KEYS if span.get(k)), [])
        flat = {k: v for k, v in span.items() if k not in CHILD_KEYS}
        id_source = (
            {"span_id": column(flat, "span_id"), "parent_span_id": column(flat, "parent_span_id")}
            if is_clickhouse_span(flat)
            else flat
        )
        _, own_id, own_parent = span_ids(id_source)
        if parent and not own_parent:
            flat["ParentSpanId" if "SpanName" in flat else "parent_span_id"] = parent
        yield flat
        if children:
            yield from _walk_nested(children, own_id)


def _otlp_parts(data: dict[str, Any], source: str | None) -> list[tuple[Sequence[Any], dict[str, Any] | None]]:
    """Each `spans` array under `resourceSpans`, with its resource's attributes, in file order."""
    parts: list[tuple[Sequence[Any], dict[str, Any] | None]] = []
    resource_spans = data.get("resourceSpans") or []
    if not isinstance(resource_spans, list):
        raise TraceFormatError(
            f"expected a list, got {type(resource_spans).__name__}", source=source, field="resourceSpans"
        )
    for r_i, rs in enumerate(resource_spans):
        if not isinstance(rs, dict):
            raise TraceFormatError("expected an object", source=source, field=f"resourceSpans[{r_i}]")
        res = rs.get("resource") or {}
        resource = attributes_of(res.get("attributes") if isinstance(res, dict) else None) or None
        scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []
        if not isinstance(scopes, list):
            raise TraceFormatError("expected a list", source=source, field=f"resourceSpans[{r_i}].scopeSpans")
        for s_i, ss in enumerate(scopes):
            if not isinstance(ss, dict | None):
                field = f"resourceSpans[{r_i}].scopeSpans[{s_i}]"
                raise TraceFormatError(f"expected an object, got {type(ss).__name__}", source=source, field=field)
            parts.append(((ss or {}).get("spans") or [], resource))
    return parts


def load_otel(data: Any, source: str | None = None) -> Trace:
    trace = _load_spans(data, source)
    named = data.get("project") if isinstance(data, dict) else None
    if isinstance(named, str) and not trace.project_name:  # a fetched page of spans says which project it is from
        trace.project_name = named
    return trace


def _load_spans(data: Any, source: str | None) -> Trace:
    # Spans are converted as they are read: a big file's spans stay in the file until then
    # (`json_stream.LazyArray`), so the parsed spans and the trace never peak together; and when
    # they do stay there, so do the runs (`LazyRuns` over `SpanEntries`), made again when read.
    parts: list[tuple[Sequence[Any], dict[str, Any] | None]] | None = None
    if isinstance(data, dict) and "resourceSpans" in data:
        parts = _otlp_parts(data, source)
    elif is_attribute_map(data):
        name = data.get("gen_ai.tool.name") or data.get("llm.model_name") or "span"
        return _trace([span_to_run({"name": name, "attributes": data}, 0, source)])
    else:
        items = (data["spans"] if is_array(data.get("spans")) else data.get("data")) if isinstance(data, dict) else data
        if not is_array(items):
            raise TraceFormatError("expected OTLP/JSON resourceSpans or a list of spans", source=source)
        if isinstance(items, LazyArray) and not items.nested:
            parts = [(items, None)]
        else:
            pool: StringPool = {}  # one copy of each repeated message across spans (see `attributes_of`)
            spans = _walk_nested(cast("Iterable[Any]", items), None)
            return _trace([span_to_run(s, i, source, None, pool) for i, s in enumerate(spans)])
    if any(isinstance(items, LazyArray) for items, _ in parts):
        return _lazy_trace(parts, source)
    pool = {}
    spans_with = ((span, res) for items, res in parts for span in items)
    return _trace([span_to_run(s, i, source, res, pool) for i, (s, res) in enumerate(spans_with)])


def _trace(converted: list[TraceRun]) -> Trace:
    runs = order_runs(converted)
    del converted
    trace_id = _trace_id(runs)
    for r in runs:
        r.trace_id = r.trace_id or trace_id
    hoisted = Hoisted()
    for r in runs:
        hoisted.see(r)
    metadata = _metadata(runs, hoisted.settle(runs[0] if runs else None))
    for r in runs:
        hoisted.apply(r)
    services = ((r.metadata.get("resource") or {}).get("service.name") for r in runs)
    start, end = span_bounds(runs)
    project = _project(metadata, services)
    return Trace(trace_id=trace_id, project_name=project, runs=runs, start_time=start, end_time=end, metadata=metadata)


def _lazy_trace(parts: list[tuple[Sequence[Any], dict[str, Any] | None]], source: str | None) -> Trace:
    """A trace whose spans stay in the file: each span read once for its place, times, failure and
    repeated attributes (`span_skeleton`, no run made) — by the reader's own scan where a watch saw
    the spans of an array, else here; `LazyRuns` makes the runs when read."""
    entries = SpanEntries(parts)
    hoisted = Hoisted()
    skeletons: list[Skeleton] = []
    facts = bytearray()  # each span's type and failure, in file order: `LazyRuns` reads them, not the runs
    for items, resource in parts:
        offset = len(skeletons)
        watch = _watched(items, offset)
        if isinstance(items, LazyArray):
            items.watched = ()  # what the watches took is the load's now: not held as long as the trace
        if watch is None:
            _skeletons(items, offset, resource, source, skeletons, facts, hoisted)
            continue
        kept = resource or None
        service = kept.get("service.name") if isinstance(kept, dict) else None
        for skeleton in watch.skeletons:
            skeleton.index += offset
            skeleton.service = service
        skeletons += watch.skeletons
        facts += watch.facts
        hoisted.merge(watch.hoisted, kept)
    entries.positions.extend(range(len(skeletons)))  # each span's position among the arrays' items: its index
    ordered = order_runs(skeletons)
    del skeletons
    entries.order = array("q", (s.index for s in ordered))
    _shared_ids(ordered)  # kept for the passes (each run's ids and times): one copy of each repeated id
    trace_id = _trace_id(ordered)
    first = span_to_run(*_args(entries[0], source)) if len(entries) else None
    metadata = _metadata(ordered, hoisted.settle(first))
    start, end = span_bounds(ordered)
    project = _project(metadata, (s.service for s in ordered))
    runs = LazyRuns(
        entries,
        _made_again(source, trace_id, hoisted, ordered),
        bytes(facts[k] for k in entries.order),
    )
    return Trace(trace_id=trace_id, project_name=project, runs=runs, start_time=start, end_time=end, metadata=metadata)


def _shared_ids(skeletons: list[Skeleton]) -> None:
    """One string for each trace id and parent id the skeletons repeat (a trace's spans share one
    trace id, siblings their parent's): read from each span, each was a copy of its own."""
    seen: dict[str, str] = {}
    for s in skeletons:
        s.trace_id = seen.setdefault(s.trace_id, s.trace_id)
        if s.parent_run_id is not None:
            s.parent_run_id = seen.setdefault(s.parent_run_id, s.parent_run_id)


def _watched(items: Sequence[Any], offset: int) -> SpanWatch | None:
    """The watch that saw every span of `items` as the reader first read them, if one did and its
    spans' numbers within the array are their numbers in the trace (or none needed its number)."""
    if not isinstance(items, LazyArray):
        return None
    return next(
        (
            w
            for w in items.watched
            if isinstance(w, SpanWatch) and len(w.skeletons) == len(items) and (offset == 0 or not w.indexed)
        ),
        None,
    )


def _skeletons(
    items: Sequence[Any],
    offset: int,
    resource: dict[str, Any] | None,
    source: str | None,
    skeletons: list[Skeleton],
    facts: bytearray,
    hoisted: Hoisted,
) -> None:
    """Each span's skeleton, fact and attributes, from a pass over the spans of one array."""
    for k, span in enumerate(items, start=offset):
        seen = span_skeleton(span, k, source, resource, attributes=hoisted.reads_attributes)
        if seen is None:  # a span only its run can tell about (or that fails, named)
            run = span_to_run(span, k, source, resource)
            seen = (
                Skeleton.of(run, k),
                run.metadata.get("resource"),
                run.metadata.get("attributes") or {},
                run_fact(run),
            )
        skeleton, kept_resource, attributes, fact = seen
        hoisted.see_values(kept_resource, attributes)
        skeletons.append(skeleton)
        facts.append(fact)


def _args(entry: SpanEntry, source: str | None) -> tuple[Any, int, str | None, dict[str, Any] | None]:
    span, resource, k = entry
    return span, k, source, resource


def _made_again(
    source: str | None, trace_id: str, hoisted: Hoisted, known: list[Skeleton]
) -> Callable[[int, SpanEntry], TraceRun]:
    """What makes run `i` (in run order) again from its span, with what its skeleton (`known[i]`)
    read (a closure, not a `partial` with keywords: it is called for every run of every pass)."""

    def made(i: int, entry: SpanEntry) -> TraceRun:
        span, resource, k = entry
        skeleton = known[i]
        run = hoisted.apply(span_to_run(span, k, source, resource, known=skeleton if skeleton.index == k else None))
        if not run.trace_id:  # (set only when it changes: a model's assignment is not cheap)
            run.trace_id = trace_id
        return run

    return made


def _trace_id(runs: Sequence[TraceRun] | Sequence[Skeleton]) -> str:
    ids = [r.trace_id for r in runs if r.trace_id]
    return ids[0] if ids else (runs[0].id if runs else "otel-trace")


def _metadata(runs: Sequence[TraceRun] | Sequence[Skeleton], hoisted: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"format": "otel"}
    trace_ids = list(dict.fromkeys(r.trace_id for r in runs if r.trace_id))
    if len(trace_ids) > 1:
        metadata["trace_ids"] = trace_ids
    metadata.update(hoisted)
    return metadata


def _project(metadata: dict[str, Any], services: Iterable[Any]) -> str:
    """The service that emitted the spans: the hoisted resource's, else the first run's that names one."""
    hoisted = metadata.get("resource")
    for service in [hoisted.get("service.name") if isinstance(hoisted, dict) else None, *services]:
        if service:
            return str(service)
    return ""
