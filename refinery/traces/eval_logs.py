"""Eval logs: Inspect AI logs and τ-bench result records → one `Trace` per sample.

People who need to know why an agent failed often ran an eval rather than an observability
platform. These logs hold many samples; each becomes its own trace, its id made of the log's
task and the sample's id (so `--sample ID` and `refinery batch` can name it).

- **Inspect AI** (`{version, status, eval, plan, results, stats, samples: [{id, epoch, input,
  target, messages, output, scores, events, …}]}`; the `.eval` zip holds the same as
  `header.json` and `samples/*.json`, read one sample at a time by `inspect_zip_samples`): runs
  from the sample's `events` where present — each model call (its output message and tool calls,
  the last input message that prompted it), each tool call (function, arguments, result, error),
  each error — else from its `messages` as a transcript (tool calls linked to their results). The
  task is `input`; `target` is the expected output the default expectation states.
- **τ-bench / τ²-bench** (`{task_id, reward, info, traj, trial}`, or a list of them; τ² names the
  messages `messages`): the messages as a transcript, the task from `info.task.instruction`.

Answer keys — `scores` (with their explanations), `reward`, τ-bench's expected `actions` and
`outputs` — are kept in `metadata["labels"]`, never rendered, so an analysis cannot read its own
grade.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from refinery.core.models import Trace
from refinery.errors import TraceFormatError
from refinery.traces.common import content_text, span_bounds
from refinery.traces.inspect_events import event_runs, resolved
from refinery.traces.json_stream import ReadShape
from refinery.traces.plain import load_plain

__all__ = ["inspect_samples", "inspect_zip_samples", "is_inspect_log", "is_taubench", "taubench_records"]


READ_SHAPE = ReadShape(entries=frozenset({"samples"}))  # a big log's samples stay in the file until read


def is_inspect_log(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("eval"), dict) and "samples" in data


def is_taubench(data: Any) -> bool:
    records = data if isinstance(data, list) else [data]
    first = records[0] if records else None
    return (
        isinstance(first, dict)
        and isinstance(first.get("traj", first.get("messages")), list)
        and "task_id" in first
        and ("reward" in first or "reward_info" in first or "trial" in first)
    )


# --- Inspect AI -------------------------------------------------------------------------------
def inspect_samples(data: dict[str, Any], source: str | None = None) -> list[Trace]:
    """One trace per sample of an Inspect log read as JSON."""
    header = {k: v for k, v in data.items() if k != "samples"}
    samples = data.get("samples") or []
    if not samples:
        raise TraceFormatError(
            "the Inspect log holds no samples (was it written with --no-log-samples?)", source=source
        )
    return [_inspect_trace(s, header, source, f"samples[{i}]") for i, s in enumerate(samples)]


def inspect_zip_samples(path: Path) -> list[Trace]:
    """One trace per sample of an Inspect `.eval` log (a zip), each sample entry read on its own."""
    source = str(path)
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            header = _zip_json(z, "header.json", source) if "header.json" in names else {}
            if not header and "_journal/start.json" in names:
                header = _zip_json(z, "_journal/start.json", source)
            entries = sorted(n for n in names if n.startswith("samples/") and n.endswith(".json"))
            if not entries:
                raise TraceFormatError("the .eval log holds no samples", source=source)
            return [_inspect_trace(_zip_json(z, n, source), header, source, n) for n in entries]
    except zipfile.BadZipFile as exc:
        raise TraceFormatError(f"not a readable .eval (zip) log: {exc}", source=source) from None


def _zip_json(z: zipfile.ZipFile, name: str, source: str) -> Any:
    try:
        return json.loads(z.read(name).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TraceFormatError(f"{name} in the .eval log is not JSON ({exc})", source=source) from None


def _inspect_trace(sample: Any, header: dict[str, Any], source: str | None, field: str) -> Trace:
    if not isinstance(sample, dict):
        raise TraceFormatError("expected a sample object", source=source, field=field)
    info = header.get("eval") or {}
    sample_id = str(sample.get("id", field))
    epoch = sample.get("epoch")
    trace_id = "-".join(str(p) for p in (info.get("task") or "inspect", sample_id) if p) + (
        f"-epoch{epoch}" if epoch not in (None, 1) else ""
    )
    sample = resolved(sample)
    task = _input_text(sample.get("input"))
    events = [e for e in sample.get("events") or [] if isinstance(e, dict)]
    judged: list[dict[str, Any]] = []
    if any(e.get("event") in ("model", "tool") for e in events):
        runs, judged = event_runs(events, trace_id, source, field)
        start, end = span_bounds(runs)
        trace = Trace(
            trace_id=trace_id,
            project_name=str(info.get("task") or ""),
            runs=runs,
            start_time=start,
            end_time=end,
            metadata={"format": "inspect"},
        )
    else:
        messages = sample.get("messages") or []
        trace = load_plain({"trace_id": trace_id, "messages": messages}, source)
        trace.project_name = str(info.get("task") or "")
        trace.metadata["format"] = "inspect"
    meta = trace.metadata
    meta["sample_id"] = sample_id
    if epoch is not None:
        meta["epoch"] = epoch
    if task:
        meta["task"], meta["task_source"] = task, f"the sample's input ({field}.input)"
    if sample.get("target") not in (None, "", []):
        meta["expected_output"] = _input_text(sample["target"])
    if info.get("model"):
        meta["model"] = info["model"]
    labels = {k: sample[k] for k in ("scores", "score") if sample.get(k) is not None}
    labels.update({"score_events": [e for e in events if e.get("event") == "score"]} if events else {})
    labels.update({"scorer_calls": judged} if judged else {})
    if labels:
        meta["labels"] = {**meta.get("labels", {}), **labels}
    if sample.get("error"):
        meta["sample_error"] = sample["error"]
    return trace


def _input_text(value: Any) -> str:
    """A sample's input or target as text: a string, a list of strings, or chat messages."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [
            m if isinstance(m, str) else content_text(m.get("content")) if isinstance(m, dict) else str(m)
            for m in value
        ]
        return "\n".join(p for p in parts if p)
    return "" if value is None else json.dumps(value, ensure_ascii=False, default=str)


# --- τ-bench ----------------------------------------------------------------------------------
def taubench_records(data: Any, source: str | None = None) -> list[Trace]:
    """One trace per τ-bench result record."""
    records = data if isinstance(data, list) else [data]
    return [_tau_trace(r, source, f"[{i}]") for i, r in enumerate(records)]


def _tau_trace(record: Any, source: str | None, field: str) -> Trace:
    if not isinstance(record, dict):
        raise TraceFormatError("expected a τ-bench result record", source=source, field=field)
    info = record.get("info") or {}
    task: dict[str, Any] = info["task"] if isinstance(info.get("task"), dict) else {}
    trial = record.get("trial")
    trace_id = f"tau-task{record.get('task_id')}" + (f"-trial{trial}" if trial is not None else "")
    messages = record.get("traj", record.get("messages")) or []
    trace = load_plain({"trace_id": trace_id, "messages": messages}, source)
    meta = trace.metadata
    meta["format"] = "taubench"
    meta["sample_id"] = str(record.get("task_id"))
    instruction = task.get("instruction") or record.get("instruction")
    if instruction:
        meta["task"], meta["task_source"] = str(instruction), f"the record's task instruction ({field}.info.task)"
    if task.get("user_id"):
        meta["user_id"] = task["user_id"]
    labels = {k: record[k] for k in ("reward", "reward_info") if k in record}
    labels.update({f"expected_{k}": task[k] for k in ("actions", "outputs") if task.get(k)})
    if labels:
        meta["labels"] = {**meta.get("labels", {}), **labels}
    return trace


def samples_in(traces: list[Trace]) -> Iterator[str]:
    """The sample ids of a multi-sample log's traces, as `--sample` takes them."""
    return (str(t.metadata.get("sample_id") or t.trace_id) for t in traces)
