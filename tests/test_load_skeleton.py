"""A big trace's load reads each entry's skeleton (place, times, failure, the attributes it keeps)
without making its run, and the runs its passes make are the runs a validated load makes: same
ids, times, trace id and failures as the trace read whole, bad entries still failing the load."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from refinery.core.models import LazyRuns, RunType, TraceRun, run_from_checked
from refinery.errors import TraceFormatError
from refinery.traces import json_stream, load_trace, otel, otel_attributes, plain
from refinery.traces.otel_attributes import unflatten


def _lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_stream, "LAZY_BYTES", 0)  # every entry array stays in the file


def _counted(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[tuple]:
    """Calls of `module.name(first, second, ...)`: the first two arguments of each."""
    made: list[tuple] = []
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda a, b, *rest, **kw: made.append((a, b)) or real(a, b, *rest, **kw))
    return made


def test_a_big_chat_logs_load_makes_no_run_and_gives_the_id_times_and_failures_of_a_whole_read(tmp_path, monkeypatch):
    steps = [
        {"role": "user", "content": "Refund order 42"},
        {"role": "assistant", "name": "Planner", "content": "ok", "timestamp": "2026-01-02T10:00:05Z", "n": 1.5},
        {"role": "tool", "content": {"rows": 3}, "start_time": 1767348000, "end_time": "2026-01-02T10:00:09+00:00"},
        {"name": "Refunder", "output": '{"status": "failed"}', "error": {"type": "Timeout"}},
        {"role": "assistant", "content": "é ✓", "timestamp": 1767347990123, "error": "boom"},
    ]
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"question": "Refund order 42", "history": steps}, ensure_ascii=False))
    whole = load_trace(path)
    _lazy(monkeypatch)
    made = _counted(monkeypatch, plain, "_step_run")
    lazy = load_trace(path)
    assert made == [] and isinstance(lazy.runs, LazyRuns)
    assert (lazy.trace_id, lazy.start_time, lazy.end_time) == (whole.trace_id, whole.start_time, whole.end_time)
    assert str(lazy.start_time) == "2026-01-02 09:59:50.123000+00:00"
    # the id names folders: a hash of `json.dumps(…, sort_keys=True, default=str)` of the rest, then of each step
    digest = hashlib.sha256(json.dumps({"question": "Refund order 42"}, sort_keys=True, default=str).encode())
    for step in steps:
        digest.update(json.dumps(step, sort_keys=True, default=str).encode())
    assert lazy.trace_id == f"chat-{digest.hexdigest()[:12]}"
    assert [r.error for r in lazy.get_failed_runs()] == ["Timeout", "boom"] == [r.error for r in whole.runs if r.error]
    assert lazy.model_dump() == whole.model_dump()


@pytest.mark.parametrize(
    "entry, where",
    [
        ({"role": "user", "content": "x", "timestamp": "yesterday"}, r"history\[1\]\.timestamp"),
        ({"role": "user", "content": "x", "end_time": True}, r"history\[1\]\.end_time"),
        ({"speaker": "nobody"}, r"history\[1\]: expected 'role'"),
    ],
)
def test_a_bad_step_of_a_big_log_fails_its_load_naming_the_field(tmp_path, monkeypatch, entry, where):
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"history": [{"role": "user", "content": "hi"}, entry]}))
    _lazy(monkeypatch)
    with pytest.raises(TraceFormatError, match=r"log\.json at " + where):
        load_trace(path)


def _span(i: int, parent: int | None, start: int, **extra: object) -> dict:
    attrs = [
        {"key": "openinference.span.kind", "value": {"stringValue": "LLM" if i % 2 else "TOOL"}},
        {"key": "project", "value": {"stringValue": "shop"}},
        {"key": "input.value", "value": {"stringValue": json.dumps({"q": i})}},
        {"key": "llm.input_messages.0.message.role", "value": {"stringValue": "user"}},
        {"key": "llm.input_messages.0.message.content", "value": {"stringValue": f"step {i} ✓"}},
        {"key": "input.mime_type", "value": {"stringValue": "application/json"}},
        {"key": "llm.token_count.total", "value": {"intValue": "12"}},
        {"key": "turn", "value": {"intValue": str(i % 3)}},
    ]
    return {
        "traceId": "ab" * 16,
        "spanId": f"{i:016x}",
        "parentSpanId": "" if parent is None else f"{parent:016x}",
        "name": f"span {i}",
        "startTimeUnixNano": str(1_700_000_000_000_000_000 + start * 1000),
        "endTimeUnixNano": str(1_700_000_000_000_000_000 + start * 1000 + 500),
        "attributes": attrs if i % 4 else attrs[:2],
        "status": {"code": 2, "message": f"failed {i}"} if i % 5 == 3 else {"code": 1},
        **extra,
    }


def _otlp(tmp_path: Path, spans: list[list[dict]]) -> Path:
    """Spans under two resources; run order (parents first, siblings by start) far from file order."""
    resources = [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": f"svc{r}"}}]},
            "scopeSpans": [{"spans": part}],
        }
        for r, part in enumerate(spans)
    ]
    path = tmp_path / "otlp.json"
    path.write_text(json.dumps({"resourceSpans": resources}, ensure_ascii=False))
    return path


def test_a_big_otlp_traces_load_makes_one_run_and_its_pass_gives_the_runs_of_a_whole_read(tmp_path, monkeypatch):
    rng = random.Random(7)
    spans = [_span(0, None, 50)] + [_span(i, rng.randrange(i), rng.randrange(100)) for i in range(1, 40)]
    rng.shuffle(spans)
    path = _otlp(tmp_path, [spans[:25], spans[25:]])
    whole = load_trace(path)
    _lazy(monkeypatch)
    made = _counted(monkeypatch, otel, "span_to_run")
    lazy = load_trace(path)
    first_llm = next(r for r in whole.runs if r.run_type == RunType.LLM)
    # only the first run (the order of the attributes the trace holds once) and the task's (the first LLM call)
    assert sorted(span["spanId"] for span, _ in made) == sorted({whole.runs[0].id, first_llm.id})
    fields = ("trace_id", "project_name", "start_time", "end_time", "metadata")
    assert {f: getattr(lazy, f) for f in fields} == {f: getattr(whole, f) for f in fields}
    assert [r.model_dump() for r in lazy.runs] == [r.model_dump() for r in whole.runs]
    assert [r.id for r in lazy.get_failed_runs()] == [r.id for r in whole.runs if r.is_failed] != []
    assert whole.metadata["common_attributes"] == {"project": "shop"}


@pytest.mark.parametrize(
    "extra, where",
    [
        ({"startTimeUnixNano": "soon"}, r"spans\[1\]\.startTimeUnixNano"),
        ({"events": [{"name": "e", "timeUnixNano": "later"}]}, r"expected an ISO-8601 timestamp"),
        ({"attributes": [{"key": "n", "value": {"arrayValue": 5}}]}, r"not what a otel trace holds"),
    ],
)
def test_a_bad_span_of_a_big_otlp_trace_fails_its_load(tmp_path, monkeypatch, extra, where):
    path = _otlp(tmp_path, [[_span(0, None, 0), _span(1, 0, 1, **extra)]])
    for lazy_bytes in (json_stream.LAZY_BYTES, 0):
        monkeypatch.setattr(json_stream, "LAZY_BYTES", lazy_bytes)
        with pytest.raises(TraceFormatError, match=where):
            load_trace(path)


def test_a_run_made_without_validation_is_the_run_validation_makes():
    fields = {"id": "s1", "name": "n", "run_type": RunType.LLM, "inputs": {"q": 1}, "error": None, "step": 0}
    made, validated = run_from_checked(dict(fields)), TraceRun(**fields)
    assert made == validated and made.model_fields_set == validated.model_fields_set
    assert made.model_dump_json() == validated.model_dump_json() and repr(made) == repr(validated)
    assert made.metadata == {} and made.metadata is not run_from_checked(dict(fields)).metadata


def _walked(attrs: dict, prefix: str) -> list:
    """`unflatten` by its general walk alone."""
    real = otel_attributes._messages
    otel_attributes._messages = lambda *a: None
    try:
        return unflatten(attrs, prefix)
    finally:
        otel_attributes._messages = real


def test_messages_unflattened_directly_are_what_the_general_walk_makes():
    """OpenInference's `N.message.FIELD` keys have their own quick path; every other shape near it
    (indices as fields, values that are objects, other depths, "²" which is a digit `int` refuses)
    gives the same lists, with the same key order, as the walk."""
    rng = random.Random(3)
    parts = ["0", "1", "10", "00", "2", "message", "role", "content", "", "²", "3", "tool_calls"]
    for _ in range(3000):
        attrs: dict = {"other": 1}
        for _ in range(rng.randint(1, 6)):
            path = [rng.choice(parts) for _ in range(rng.choice([1, 2, 3, 3, 3, 4]))]
            if len(path) == 3 and rng.random() < 0.7:
                path[1] = "message"
            attrs["p." + ".".join(path)] = rng.choice(["a", 1, None, {"k": 1}, {"0": 2}, [1], ""])
        quick, walked = unflatten(attrs, "p"), _walked(attrs, "p")
        assert quick == walked and [list(m) if isinstance(m, dict) else m for m in quick] == [
            list(m) if isinstance(m, dict) else m for m in walked
        ]
