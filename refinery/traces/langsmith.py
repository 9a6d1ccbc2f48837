"""LangSmith runs → `Trace`.

Accepts a list of run objects (as exported, or as JSONL lines) and the ingestion payload
`{"post": [...], "patch": [...]}`, where a run's start (post) and end (patch) are merged on `id`.
JS SDK patches carry no `id`; it is the last segment of `dotted_order` (`<time>Z<run id>`).
"""

from __future__ import annotations

from typing import Any

from refinery.core.models import RunType, Trace, TraceRun
from refinery.errors import TraceFormatError
from refinery.traces.common import as_dict, order_runs, parse_time, span_bounds
from refinery.traces.json_stream import ReadShape, is_array

_RUN_TYPES = {t.value for t in RunType}
READ_SHAPE = ReadShape(entries=frozenset({"runs", "post", "patch"}))  # runs, or the API's batch payloads


def _dotted_order(value: Any, source: str | None, field: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise TraceFormatError(
            f"expected text like '<time>Z<run id>', got {type(value).__name__}", source=source, field=field
        )
    return value


def _id_from_dotted_order(dotted: Any) -> str | None:
    if isinstance(dotted, str) and "Z" in dotted:
        return dotted.rsplit(".", 1)[-1].split("Z", 1)[-1] or None
    return None


def merge_ingestion(payload: dict[str, Any], source: str | None = None) -> list[dict[str, Any]]:
    """The runs of a `{post, patch}` payload, each post updated by its patch."""
    merged: dict[str, dict[str, Any]] = {}
    for kind in ("post", "patch"):
        items = payload.get(kind) or []
        if not is_array(items):
            raise TraceFormatError(f"expected a list of runs, got {type(items).__name__}", source=source, field=kind)
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise TraceFormatError("expected a run object", source=source, field=f"{kind}[{i}]")
            run_id = item.get("id") or _id_from_dotted_order(item.get("dotted_order"))
            if not run_id:
                raise TraceFormatError("run has neither 'id' nor 'dotted_order'", source=source, field=f"{kind}[{i}]")
            base = merged.setdefault(str(run_id), {"id": str(run_id)})
            for k, v in item.items():
                if v is not None or k not in base:
                    base[k] = v
    return list(merged.values())


def _run(raw: dict[str, Any], i: int, source: str | None) -> TraceRun:
    field = f"runs[{i}]"
    run_id = raw.get("id") or _id_from_dotted_order(raw.get("dotted_order"))
    if not run_id:
        raise TraceFormatError("missing required field 'id'", source=source, field=field)
    run_type = str(raw.get("run_type") or "unknown").lower()
    raw_extra = raw.get("extra")
    extra: dict[str, Any] = raw_extra if isinstance(raw_extra, dict) else {}
    metadata: dict[str, Any] = {}
    if extra.get("metadata"):
        metadata["metadata"] = extra["metadata"]
    for key in ("tags", "session_name", "events"):
        if raw.get(key):
            metadata[key] = raw[key]
    if not isinstance(metadata.get("events", []), list):  # the renderer reads events as a list
        metadata["events"] = [metadata["events"]]
    error = raw.get("error")
    stated = str(raw.get("status") or "").lower()  # LangSmith's run status: success, error, pending
    if stated == "error" and not error:
        error = "run status error"
    return TraceRun(
        id=str(run_id),
        name=str(raw.get("name") or run_type),
        run_type=RunType(run_type) if run_type in _RUN_TYPES else RunType.UNKNOWN,
        inputs=as_dict(raw.get("inputs"), "input") or {},
        outputs=as_dict(raw.get("outputs"), "output"),
        start_time=parse_time(raw.get("start_time"), source=source, field=f"{field}.start_time"),
        end_time=parse_time(raw.get("end_time"), source=source, field=f"{field}.end_time"),
        error=str(error) if error else None,
        status="error" if error else ("ok" if stated == "success" else None),
        parent_run_id=str(raw["parent_run_id"]) if raw.get("parent_run_id") else None,
        trace_id=str(raw.get("trace_id") or ""),
        dotted_order=_dotted_order(raw.get("dotted_order"), source, f"{field}.dotted_order"),
        metadata=metadata,
    )


def _flatten_child_runs(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    stack = list(reversed(items))
    while stack:
        item = stack.pop()
        out.append(item)
        children = item.get("child_runs") or []
        for child in reversed(children):
            if isinstance(child, dict):
                child = {**child, "parent_run_id": child.get("parent_run_id") or item.get("id")}
                stack.append(child)
    return out


def load_langsmith(data: Any, source: str | None = None) -> Trace:
    if isinstance(data, dict) and ("post" in data or "patch" in data):
        raw_runs = merge_ingestion(data, source)
    elif isinstance(data, dict) and is_array(data.get("runs")):
        raw_runs = data["runs"]
    elif is_array(data):
        raw_runs = data
    else:
        raise TraceFormatError("expected a list of LangSmith runs or a {post, patch} payload", source=source)
    for i, item in enumerate(raw_runs):
        if not isinstance(item, dict):
            raise TraceFormatError("expected a run object", source=source, field=f"runs[{i}]")
    runs = order_runs([_run(r, i, source) for i, r in enumerate(_flatten_child_runs(raw_runs))])
    trace_id = next((r.trace_id for r in runs if r.trace_id), None) or (runs[0].id if runs else "langsmith-trace")
    for r in runs:
        r.trace_id = r.trace_id or trace_id
    project = next((str(item.get("session_name")) for item in raw_runs if item.get("session_name")), "")
    start, end = span_bounds(runs)
    return Trace(
        trace_id=trace_id,
        project_name=project,
        runs=runs,
        start_time=start,
        end_time=end,
        metadata={"format": "langsmith"},
    )
