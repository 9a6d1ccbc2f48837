"""`load_trace`: one entry point for every supported trace format, with auto-detection.

Detection looks at the shape only (no guessing from file names): OTLP `resourceSpans`, Langfuse
`observations`, LangSmith `post`/`patch` payloads or runs with `run_type`/`dotted_order`, span
lists with span ids or attribute maps, and finally plain message/step lists. An input that is
none of these gets an error naming the file and what was expected.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Protocol

from refinery.core.models import Trace
from refinery.errors import TraceFormatError
from refinery.traces import langfuse, langsmith, otel, plain
from refinery.traces.json_stream import is_array, read_trace_json
from refinery.traces.langfuse import load_langfuse
from refinery.traces.langsmith import load_langsmith
from refinery.traces.otel import is_attribute_map, load_otel
from refinery.traces.plain import LIST_KEYS, load_plain
from refinery.traces.task import with_task


class Loader(Protocol):
    def __call__(self, data: Any, source: str | None = None) -> Trace: ...


LOADERS: dict[str, Loader] = {
    "langsmith": load_langsmith,
    "otel": load_otel,
    "langfuse": load_langfuse,
    "plain": load_plain,
}
# What each loader walks one entry at a time, so a big file's entries may stay in it until read
READ_SHAPE = langsmith.READ_SHAPE | otel.READ_SHAPE | langfuse.READ_SHAPE | plain.READ_SHAPE
_SPAN_KEYS = (
    "spanId",
    "span_id",
    "spanContext",
    "context",
    "parentSpanId",
    "child_spans",
    "startTimeUnixNano",
    "SpanId",
    "SpanName",
    "span_name",
)


def detect_format(data: Any) -> str | None:
    """`langsmith`, `otel`, `langfuse`, `plain`, or None when the shape is unknown."""
    if isinstance(data, dict):
        if "resourceSpans" in data:
            return "otel"
        if is_array(data.get("observations")):
            return "langfuse"
        if "post" in data or "patch" in data:
            return "langsmith"
        if is_array(data.get("runs")):
            return "langsmith"
        if is_array(data.get("spans")):
            return "otel"
        if is_attribute_map(data):
            return "otel"
        if any(is_array(data.get(k)) for k in LIST_KEYS):
            return "plain"
        return None
    if is_array(data):
        first = next((x for x in data if isinstance(x, dict)), None)
        if first is None:
            return "plain" if not data else None
        if "run_type" in first or "dotted_order" in first or "parent_run_id" in first:
            return "langsmith"
        if any(k in first for k in _SPAN_KEYS):
            return "otel"
        if any(k in first for k in ("role", "content", "name", "input", "output")):
            return "plain"
    return None


def load_trace(path_or_data: str | Path | Any, *, format: str | None = None) -> Trace:
    """A `Trace` from a file path (JSON or JSONL) or already-parsed data.

    `format` forces a loader (`langsmith`, `otel`, `langfuse`, `plain`); otherwise the shape is
    detected.
    """
    source = str(path_or_data) if isinstance(path_or_data, (str, Path)) else None
    try:
        return _load(path_or_data, source, format)
    except RecursionError:  # spans nested thousands deep, arrays in arrays: Python's stack ends first
        raise TraceFormatError(
            f"nested too deeply to read (more than about {sys.getrecursionlimit() // 3} levels)", source=source
        ) from None


def _load(path_or_data: str | Path | Any, source: str | None, format: str | None) -> Trace:
    data = path_or_data
    if source is not None:
        data = read_trace_json(Path(path_or_data), READ_SHAPE)
    fmt = format or detect_format(data)
    if fmt is None:
        kind = type(data).__name__
        raise TraceFormatError(
            f"unrecognised trace format (a {kind}); expected LangSmith runs or {{post, patch}}, OTLP/JSON "
            "resourceSpans or a span list, a Langfuse {trace, observations}, or a list of messages",
            source=source,
        )
    if fmt not in LOADERS:
        raise TraceFormatError(f"unknown format {fmt!r}; use one of {sorted(LOADERS)}", source=source)
    trace = with_task(LOADERS[fmt](data, source))
    if not trace.runs:
        # an analysis of nothing would still be paid for, and would cite nothing
        raise TraceFormatError(f"the trace has no runs (read as {fmt}); nothing to analyse", source=source)
    return trace
