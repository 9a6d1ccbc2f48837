"""`load_trace`: one entry point for every supported trace format, with auto-detection.

Detection looks at the shape only (no guessing from file names): OTLP `resourceSpans`, Langfuse
`observations`, LangSmith `post`/`patch` payloads or runs with `run_type`/`dotted_order`, span
lists with span ids or attribute maps, and finally plain message/step lists. An input that is
none of these gets an error naming the file and what was expected.
"""

from __future__ import annotations

import logging
import sys
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from refinery.core.models import Trace
from refinery.errors import RefineryError, TraceFormatError
from refinery.traces import eval_logs, langfuse, langsmith, otel, plain
from refinery.traces.agent_logs import (
    is_agents_sdk,
    is_openhands,
    is_swe_agent,
    load_agents_sdk,
    load_openhands,
    load_swe_agent,
)
from refinery.traces.eval_logs import (
    inspect_samples,
    inspect_zip_samples,
    is_inspect_log,
    is_taubench,
    taubench_records,
)
from refinery.traces.fallback import find_messages, first_user_message, top_level_keys
from refinery.traces.json_stream import is_array, read_trace_json
from refinery.traces.langfuse import load_langfuse
from refinery.traces.langsmith import load_langsmith
from refinery.traces.otel import is_attribute_map, load_otel
from refinery.traces.plain import LIST_KEYS, load_plain
from refinery.traces.redact import redact_text
from refinery.traces.task import with_task


class Loader(Protocol):
    def __call__(self, data: Any, source: str | None = None) -> Trace: ...


LOADERS: dict[str, Loader] = {
    "langsmith": load_langsmith,
    "otel": load_otel,
    "langfuse": load_langfuse,
    "plain": load_plain,
    "swe_agent": load_swe_agent,
    "openhands": load_openhands,
    "openai_agents": load_agents_sdk,
}
log = logging.getLogger("refinery.traces")

# What each loader walks one entry at a time, so a big file's entries may stay in it until read
READ_SHAPE = langsmith.READ_SHAPE | otel.READ_SHAPE | langfuse.READ_SHAPE | plain.READ_SHAPE | eval_logs.READ_SHAPE
# Formats whose files hold many traces (an eval log's samples, a results file's records)
MULTI_LOADERS: dict[str, Callable[[Any, str | None], list[Trace]]] = {
    "inspect": inspect_samples,
    "taubench": taubench_records,
}
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


def _is_span(item: Any) -> bool:
    return isinstance(item, dict) and any(k in item for k in _SPAN_KEYS)


def detect_format(data: Any) -> str | None:
    """The format's name (see `formats()`), or None when the shape is unknown."""
    if is_inspect_log(data):
        return "inspect"
    if is_taubench(data):
        return "taubench"
    if is_swe_agent(data):
        return "swe_agent"
    if is_agents_sdk(data):
        return "openai_agents"
    if is_openhands(data):
        return "openhands"
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
        if is_array(data.get("data")) and _is_span(next((x for x in data["data"] if isinstance(x, dict)), None)):
            return "otel"  # a REST API's page of spans (Phoenix: `{data, next_cursor}`)
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
        if _is_span(first):
            return "otel"
        if any(k in first for k in ("role", "content", "name", "input", "output")):
            return "plain"
    return None


def load_trace(path_or_data: str | Path | Any, *, format: str | None = None, sample: str | None = None) -> Trace:
    """A `Trace` from a file path (JSON, JSONL, or an Inspect `.eval` zip) or already-parsed data.

    `format` forces a loader (see `formats()`); otherwise the shape is detected. A file holding
    several traces (an eval log's samples, a τ-bench results file) needs `sample` (a sample id as
    `load_traces` gives it) unless it holds only one.
    """
    traces = load_traces(path_or_data, format=format)
    source = str(path_or_data) if isinstance(path_or_data, (str, Path)) else None
    if sample is not None:
        return _pick(traces, sample, source)
    if len(traces) > 1:
        raise TraceFormatError(
            f"holds {len(traces)} traces ({_sample_list(traces)}); pick one with --sample ID, or analyse them all "
            "with `refinery batch`",
            source=source,
        )
    return traces[0]


def load_traces(path_or_data: str | Path | Any, *, format: str | None = None) -> list[Trace]:
    """Every trace a file (or parsed data) holds: one for most formats, one per sample for eval logs."""
    source = str(path_or_data) if isinstance(path_or_data, (str, Path)) else None
    try:
        return _load(path_or_data, source, format)
    except RecursionError:  # spans nested thousands deep, arrays in arrays: Python's stack ends first
        raise TraceFormatError(
            f"nested too deeply to read (more than about {sys.getrecursionlimit() // 3} levels)", source=source
        ) from None


def formats() -> list[str]:
    """The names `format=` (and `--format`) take."""
    return sorted({*LOADERS, *MULTI_LOADERS})


def _pick(traces: list[Trace], sample: str, source: str | None) -> Trace:
    """The trace `sample` names: a sample's name as `load_traces` gives it (`ID`, or `ID:EPOCH` when
    the log ran the sample more than once), its trace id, or an id alone when only one trace has it."""
    exact = [t for t in traces if sample in (t.metadata.get("sample_id"), t.trace_id)]
    if exact:
        return exact[0]
    epochs = [t for t in traces if str(t.metadata.get("sample", "")) == sample]
    if len(epochs) == 1:
        return epochs[0]
    if epochs:
        forms = " or ".join(str(t.metadata.get("sample_id")) for t in epochs)
        raise TraceFormatError(
            f"sample {sample!r} ran {len(epochs)} times; pick one with --sample {forms}", source=source
        )
    raise TraceFormatError(f"no sample {sample!r}; it holds {_sample_list(traces)}", source=source)


def _named(traces: list[Trace]) -> list[Trace]:
    """Each trace of a many-trace file named so that `--sample` and `batch` tell them apart: a sample
    id that several traces share (an eval run for several epochs) becomes `ID:EPOCH` (the id alone
    kept as `sample`), or the trace's id when the log numbers no epochs."""
    counts = Counter(str(t.metadata.get("sample_id")) for t in traces if t.metadata.get("sample_id") is not None)
    for t in traces:
        sid = t.metadata.get("sample_id")
        if sid is None or counts[str(sid)] < 2:
            continue
        epoch = t.metadata.get("epoch")
        t.metadata["sample"] = str(sid)
        t.metadata["sample_id"] = f"{sid}:{epoch}" if epoch is not None else t.trace_id
    return traces


def _sample_list(traces: list[Trace]) -> str:
    ids = [redact_text(str(t.metadata.get("sample_id") or t.trace_id)) for t in traces]  # printed: no secret
    return "samples " + ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


# What each format's document holds: the end of the one-line error when a loader meets valid
# JSON of the wrong types (a number where a list belongs, a string where a span belongs)
EXPECTED = {
    "langsmith": "a list of runs (objects with id, name, run_type, start_time, dotted_order as text) or {post, patch}",
    "otel": "OTLP/JSON {resourceSpans: [{scopeSpans: [{spans: [span objects]}]}]} or a list of span objects",
    "langfuse": "{trace: {…}, observations: [observation objects]}",
    "plain": "a list of messages or steps (objects with role and content), or an object holding one",
    "swe_agent": "a SWE-agent trajectory {trajectory: [step objects], history: [message objects]}",
    "openhands": "an OpenHands event list (objects with action or observation)",
    "openai_agents": "an OpenAI Agents SDK trace {spans: [objects with span_data]}",
    "inspect": "an Inspect AI log {eval: {…}, samples: [{id, messages: [...], events: [...]}]}",
    "taubench": "τ-bench results: a list of {task_id, reward, traj: [message objects], info: {…}}",
}


def _guarded(fmt: str, source: str | None, load: Callable[[], list[Trace]]) -> list[Trace]:
    """`load()`, with any crash a loader has on valid JSON of the wrong types turned into one line
    naming the file, the format and what it should hold."""
    try:
        return load()
    except (RefineryError, RecursionError):
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
        what = " ".join(str(exc).split())[:200]
        raise TraceFormatError(
            f"not what a {fmt} trace holds ({type(exc).__name__}: {what}); expected {EXPECTED.get(fmt, 'a trace')}",
            source=source,
        ) from None


def _read(path: Path, source: str) -> Any:
    try:
        return read_trace_json(path, READ_SHAPE, source=source)
    except (RefineryError, RecursionError):
        raise
    except ValueError as exc:  # a number of more than 4,300 digits, text that is not UTF-8
        raise TraceFormatError(f"not readable as JSON ({' '.join(str(exc).split())[:200]})", source=source) from None


def _load(path_or_data: str | Path | Any, source: str | None, format: str | None) -> list[Trace]:
    data = path_or_data
    if source is not None:
        path = Path(path_or_data)
        if format in (None, "inspect") and path.is_file() and zipfile.is_zipfile(path):
            return _named(
                _guarded(
                    "inspect",
                    source,
                    lambda: [_checked(with_task(t), "inspect", source) for t in inspect_zip_samples(path)],
                )
            )
        data = _read(path, source)
    fmt = format or detect_format(data)
    if fmt is None:
        found = find_messages(data)
        if found is None:
            raise TraceFormatError(
                f"unrecognised trace format ({top_level_keys(data)}); expected LangSmith runs or {{post, patch}}, "
                "OTLP/JSON resourceSpans or a span list, a Langfuse {trace, observations}, an Inspect AI log, τ-bench "
                "results, a SWE-agent .traj, an OpenHands event list, an OpenAI Agents SDK trace, or a list of "
                "messages (role, content) anywhere in the document",
                source=source,
            )
        where, messages = found
        log.warning("loaded messages from %s; use --format to choose another reading", where)
        first_user = first_user_message(messages)
        head = {"task": messages[first_user].get("content")} if first_user is not None else {}
        trace = _guarded("plain", source, lambda: [with_task(load_plain({"messages": messages, **head}, source))])[0]
        trace.metadata["loaded_from"] = where
        if first_user is not None:
            trace.metadata["task_source"] = f"the first user message ({where}[{first_user}])"
        return [_checked(trace, "plain", source)]
    if fmt in MULTI_LOADERS:
        multi = MULTI_LOADERS[fmt]
        return _named(_guarded(fmt, source, lambda: [_checked(with_task(t), fmt, source) for t in multi(data, source)]))
    if fmt not in LOADERS:
        raise TraceFormatError(f"unknown format {fmt!r}; use one of {formats()}", source=source)
    loader = LOADERS[fmt]
    return _guarded(fmt, source, lambda: [_checked(with_task(loader(data, source)), fmt, source)])


def _checked(trace: Trace, fmt: str, source: str | None) -> Trace:
    if not trace.runs:
        # an analysis of nothing would still be paid for, and would cite nothing
        raise TraceFormatError(f"the trace has no runs (read as {fmt}); nothing to analyse", source=source)
    return trace
