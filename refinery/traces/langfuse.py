"""Langfuse `{trace, observations[]}` exports → `Trace`.

Observations form the tree through `parentObservationId`; `type` gives the run type, `level:
ERROR` (with `statusMessage`) marks a failed run, and usage/cost/model go to the metadata.
"""

from __future__ import annotations

from typing import Any

from refinery.core.models import RunType, Trace, TraceRun
from refinery.errors import TraceFormatError
from refinery.traces.common import (
    as_dict,
    maybe_json,
    order_runs,
    parse_time,
    require,
    span_bounds,
)
from refinery.traces.json_stream import ReadShape, is_array

READ_SHAPE = ReadShape(entries=frozenset({"observations"}))
TYPES = {
    "GENERATION": RunType.LLM,
    "SPAN": RunType.CHAIN,
    "CHAIN": RunType.CHAIN,
    "EVENT": RunType.CHAIN,
    "AGENT": RunType.AGENT,
    "TOOL": RunType.TOOL,
    "RETRIEVER": RunType.RETRIEVER,
    "EMBEDDING": RunType.EMBEDDING,
    "EVALUATOR": RunType.CHAIN,
    "GUARDRAIL": RunType.CHAIN,
}
_META_KEYS = (
    "model",
    "modelParameters",
    "usageDetails",
    "costDetails",
    "totalCost",
    "latency",
    "timeToFirstToken",
    "promptName",
    "promptVersion",
    "level",
)


def _run(obs: dict[str, Any], i: int, source: str | None, trace_id: str) -> TraceRun:
    field = f"observations[{i}]"
    obs_id = require(obs, "id", source=source, field=field)
    level = str(obs.get("level") or "DEFAULT").upper()
    error = None
    if level == "ERROR":
        error = str(obs.get("statusMessage") or "observation level ERROR")
    metadata: dict[str, Any] = {k: obs[k] for k in _META_KEYS if obs.get(k) not in (None, {}, "")}
    if obs.get("metadata"):
        metadata["metadata"] = maybe_json(obs["metadata"])
    if level == "WARNING" and obs.get("statusMessage"):
        metadata["warning"] = obs["statusMessage"]
    kind = str(obs.get("type") or "SPAN").upper()
    return TraceRun(
        id=str(obs_id),
        name=str(obs.get("name") or kind.lower()),
        run_type=TYPES.get(kind, RunType.UNKNOWN),
        inputs=as_dict(obs.get("input"), "input") or {},
        outputs=as_dict(obs.get("output"), "output"),
        start_time=parse_time(obs.get("startTime"), source=source, field=f"{field}.startTime"),
        end_time=parse_time(obs.get("endTime"), source=source, field=f"{field}.endTime"),
        error=error,
        status="error" if error else None,  # a level other than ERROR says nothing of success
        parent_run_id=str(obs["parentObservationId"]) if obs.get("parentObservationId") else None,
        trace_id=str(obs.get("traceId") or trace_id),
        metadata=metadata,
    )


def load_langfuse(data: Any, source: str | None = None) -> Trace:
    if not isinstance(data, dict) or not is_array(data.get("observations")):
        raise TraceFormatError(
            "expected a Langfuse export {trace, observations: [...]}", source=source, field="observations"
        )
    raw_head = data.get("trace")
    head: dict[str, Any] = raw_head if isinstance(raw_head, dict) else {}
    trace_id = str(
        head.get("id")
        or next(
            (o.get("traceId") for o in data["observations"] if isinstance(o, dict) and o.get("traceId")),
            "langfuse-trace",
        )
    )
    for i, obs in enumerate(data["observations"]):
        if not isinstance(obs, dict):
            raise TraceFormatError("expected an observation object", source=source, field=f"observations[{i}]")
    runs = order_runs([_run(o, i, source, trace_id) for i, o in enumerate(data["observations"])])
    start, end = span_bounds(runs)
    metadata: dict[str, Any] = {"format": "langfuse"}
    for key in ("name", "tags", "userId", "sessionId", "release", "version", "environment"):
        if head.get(key):
            metadata[key] = head[key]
    if head.get("input") is not None:
        metadata["input"] = maybe_json(head["input"])
    if head.get("output") is not None:
        metadata["output"] = maybe_json(head["output"])
    return Trace(
        trace_id=trace_id,
        project_name=str(head.get("projectId") or ""),
        runs=runs,
        start_time=parse_time(head.get("timestamp"), source=source, field="trace.timestamp") or start,
        end_time=end,
        metadata=metadata,
    )
