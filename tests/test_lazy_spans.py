"""A big OTLP trace's spans stay in the file and its runs are made when read (`LazyRuns`): what a
host reads, sets and renders is the same as for the same trace read whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refinery.core.models import LazyRuns
from refinery.traces import json_stream, lazy_array, load_trace, otel, plain
from refinery.traces.spool import upload_files_for
from refinery.traces.task import find_task
from tests.helpers import SHARED

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = SHARED / "trace-samples" / "openinference"
SAMPLE_FILES = sorted(SAMPLES.glob("*.json")) if SAMPLES.is_dir() else []


def span_arrays(path: Path) -> bool:
    """An OTLP export or a span list (not one span given alone)."""
    data = json.loads(path.read_text())
    return isinstance(data, list) or (isinstance(data, dict) and ("resourceSpans" in data or "spans" in data))


FLAT_SPANS = [
    p for p in [FIXTURES / "otlp_trace.json", FIXTURES / "otel_span_list.json", *SAMPLE_FILES] if span_arrays(p)
]


def read_both(path: Path, monkeypatch: pytest.MonkeyPatch):
    whole = load_trace(path)
    monkeypatch.setattr(json_stream, "LAZY_BYTES", 0)  # every entry array stays in the file
    return whole, load_trace(path)


@pytest.mark.parametrize("path", FLAT_SPANS, ids=lambda p: p.name)
def test_spans_left_in_the_file_give_the_runs_and_the_files_of_the_trace_read_whole(path, monkeypatch):
    whole, lazy = read_both(path, monkeypatch)
    assert isinstance(lazy.runs, LazyRuns) and isinstance(whole.runs, list)
    assert [r.model_dump() for r in lazy.runs] == [r.model_dump() for r in whole.runs]
    fields = ("trace_id", "project_name", "start_time", "end_time", "metadata")
    assert {f: getattr(lazy, f) for f in fields} == {f: getattr(whole, f) for f in fields}
    assert list(upload_files_for(lazy)[0]) == list(upload_files_for(whole)[0])


def test_the_resource_and_attributes_every_span_repeats_go_on_the_trace_once(tmp_path, monkeypatch):
    spans = [
        {
            "spanId": f"s{i}",
            "parentSpanId": "s0" if i else "",
            "name": f"step {i}",
            "startTimeUnixNano": str(1_700_000_000_000_000_000 + (5 - i) * 1000),  # file order is not run order
            "attributes": [
                {"key": "project", "value": {"stringValue": "shop"}},
                {"key": "turn", "value": {"intValue": str(i)}},
            ],
        }
        for i in range(5)
    ]
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "refunds"}}]}
    path = tmp_path / "otlp.json"
    path.write_text(json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}))
    whole, lazy = read_both(path, monkeypatch)
    for trace in (whole, lazy):
        assert trace.project_name == "refunds"
        assert trace.metadata["resource"] == {"service.name": "refunds"}
        assert trace.metadata["common_attributes"] == {"project": "shop"}
        assert [r.id for r in trace.runs] == ["s0", "s4", "s3", "s2", "s1"]  # parent first, then by start time
        assert all("resource" not in r.metadata and "project" not in r.metadata["attributes"] for r in trace.runs)


def test_a_big_otlp_traces_runs_behave_as_a_small_ones_for_what_a_host_reads_and_sets(monkeypatch):
    whole, lazy = read_both(FIXTURES / "otlp_trace.json", monkeypatch)
    for trace in (whole, lazy):
        assert trace.runs[0] is trace.runs[0]
        trace.runs[1].error = "boom"
        assert [r.id for r in trace.runs if r.error == "boom"] == [whole.runs[1].id]
        assert trace.runs[0:2][1].error == "boom"


def test_a_span_that_is_no_object_is_named(tmp_path, monkeypatch):
    path = tmp_path / "otlp.json"
    spans = [{"spanId": "a", "name": "x"}, 7]
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
    for lazy_bytes in (json_stream.LAZY_BYTES, 0):
        monkeypatch.setattr(json_stream, "LAZY_BYTES", lazy_bytes)
        with pytest.raises(Exception, match=r"spans\[1\]: expected a span object, got int"):
            load_trace(path)


def _spans_with_failures(tmp_path: Path) -> Path:
    """Forty spans: a tool and an LLM call in turn, every seventh failed; the first LLM call says the task."""
    spans = []
    for i in range(40):
        kind = "LLM" if i % 2 else "TOOL"
        attrs = [{"key": "openinference.span.kind", "value": {"stringValue": kind}}]
        if kind == "LLM":
            attrs += [
                {"key": "llm.input_messages.0.message.role", "value": {"stringValue": "user"}},
                {"key": "llm.input_messages.0.message.content", "value": {"stringValue": f"Refund order {i}"}},
            ]
        spans.append(
            {
                "spanId": f"{i:016x}",
                "name": f"{kind.lower()} {i}",
                "startTimeUnixNano": str(1_700_000_000_000_000_000 + i * 1000),
                "attributes": attrs,
                "status": {"code": 2, "message": f"failed {i}"} if i % 7 == 3 else {"code": 1},
            }
        )
    path = tmp_path / "otlp.json"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
    return path


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    made: list[int] = []
    real = otel.span_to_run

    def counted(span, i, *args, **kwargs):
        made.append(i)
        return real(span, i, *args, **kwargs)

    monkeypatch.setattr(otel, "span_to_run", counted)
    return made


def test_the_failed_runs_of_a_big_otlp_trace_are_made_alone_from_what_the_load_learnt(tmp_path, monkeypatch):
    path = _spans_with_failures(tmp_path)
    whole, lazy = read_both(path, monkeypatch)
    made = _counting(monkeypatch)
    failed = lazy.get_failed_runs()
    assert [r.model_dump() for r in failed] == [r.model_dump() for r in whole.get_failed_runs()]
    assert [r.name for r in failed] == [f"tool {i}" if i % 2 == 0 else f"llm {i}" for i in range(40) if i % 7 == 3]
    assert len(made) == len(failed)  # each failed span made once, no other


def test_the_failed_runs_of_a_big_trace_are_read_through_one_open_file(tmp_path, monkeypatch):
    """Each failed run read by index: the file opened once for them all, not once a run; what a
    host set on a kept run still counts, and the kept run is the one handed back."""
    whole, lazy = read_both(_spans_with_failures(tmp_path), monkeypatch)
    kept = lazy.runs[0]
    kept.error = "set by the host"
    whole.runs[0].error = "set by the host"
    opened: list[int] = []
    real = json_stream.LazyArray._open
    monkeypatch.setattr(json_stream.LazyArray, "_open", lambda self: opened.append(1) or real(self))
    failed = lazy.get_failed_runs()
    assert [r.model_dump() for r in failed] == [r.model_dump() for r in whole.get_failed_runs()]
    assert len(failed) == 7 and any(r is kept for r in failed) and opened == [1]


def test_a_failure_a_host_sets_on_a_kept_run_of_a_big_trace_is_counted(tmp_path, monkeypatch):
    _, lazy = read_both(_spans_with_failures(tmp_path), monkeypatch)
    lazy.runs[0].error = "set by the host"
    lazy.runs[3].error, lazy.runs[3].status = None, "ok"
    assert [r.name for r in lazy.get_failed_runs()][:2] == ["tool 0", "tool 10"]


def test_the_task_of_a_big_otlp_trace_is_found_making_only_the_runs_of_the_type_looked_for(tmp_path, monkeypatch):
    whole, lazy = read_both(_spans_with_failures(tmp_path), monkeypatch)
    made = _counting(monkeypatch)
    lazy.metadata.pop("task", None), whole.metadata.pop("task", None)
    found = find_task(lazy)
    assert made == [1]  # no agent span was seen, so none is made; the first LLM call answers
    assert found == find_task(whole)
    assert found[0] == "Refund order 1"


def test_the_failed_steps_of_a_big_chat_log_are_made_alone_from_what_the_load_learnt(tmp_path, monkeypatch):
    steps = [{"role": "assistant", "name": f"agent{i}", "content": f"step {i}"} for i in range(30)]
    for i in (4, 17):
        steps[i]["error"] = f"tool failed at {i}"
    path = tmp_path / "chat.json"
    path.write_text(json.dumps({"question": "Refund order 42", "history": steps}))
    whole, lazy = read_both(path, monkeypatch)
    assert isinstance(lazy.runs, LazyRuns)
    made: list[int] = []
    real = plain._step_run
    monkeypatch.setattr(plain, "_step_run", lambda i, item, **kw: made.append(i) or real(i, item, **kw))
    lazy = load_trace(path)  # converted through the counting function from here on
    made.clear()
    failed = lazy.get_failed_runs()
    assert [r.model_dump() for r in failed] == [r.model_dump() for r in whole.get_failed_runs()]
    assert [r.error for r in failed] == ["tool failed at 4", "tool failed at 17"]
    assert made == [4, 17]


def test_a_big_otlp_traces_runs_read_a_few_at_a_time_are_the_runs_of_the_trace_read_whole(tmp_path, monkeypatch):
    """As the renderer reads them (a file's few runs a slice), in blocks of spans, some written
    before their parents: every slice, of every width and step, gives the whole read's runs."""
    spans = []
    for i in range(600):
        parent = (i // 10) * 10 if i % 10 else None  # each tenth span a parent, written after its children
        spans.append(
            {
                "spanId": f"{i:016x}",
                "parentSpanId": f"{parent:016x}" if parent is not None else "",
                "name": f"step {i}",
                "startTimeUnixNano": str(1_700_000_000_000_000_000 + i * 1000),
                "attributes": [
                    {"key": "openinference.span.kind", "value": {"stringValue": "LLM" if i % 3 else "TOOL"}},
                    {"key": "llm.input_messages.0.message.content", "value": {"stringValue": f"say {i} " * 20}},
                ],
            }
        )
    for block in range(0, 600, 10):  # each parent after its children in the file
        spans[block : block + 10] = [*spans[block + 1 : block + 10], spans[block]]
    path = tmp_path / "otlp.json"
    path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
    whole = load_trace(path)
    monkeypatch.setattr(json_stream, "_CHUNK", 4096)
    monkeypatch.setattr(json_stream, "LAZY_BYTES", 1 << 15)  # spans in the file, in blocks of up to 32 KiB
    lazy = load_trace(path)
    items = lazy.runs._entries._parts[0][0]
    assert isinstance(items, json_stream.LazyArray) and len(items._firsts) < len(spans) / 4  # blocks
    want = [r.model_dump() for r in whole.runs]
    items._whole.clear()  # (as if the load's own pass had not read them: a watch reads a big trace's spans)
    items._left.clear()
    with monkeypatch.context() as m:  # the first read: each block parsed in one call, none item by item
        m.setattr(lazy_array, "item_spans", lambda *a: pytest.fail("a block read item by item"))
        assert [r.model_dump() for s in range(0, len(want), 6) for r in lazy.runs[s : s + 6]] == want
    for width in (1, 2, 6, 7, 50):
        got = [r.model_dump() for s in range(0, len(want), width) for r in lazy.runs[s : s + width]]
        assert got == want
    assert [r.model_dump() for r in lazy.runs[5:400:3]] == want[5:400:3]
    assert [r.model_dump() for r in lazy.runs[::-7]] == want[::-7]
    assert [r.model_dump() for r in lazy.runs[-9:]] == want[-9:] and lazy.runs[9:3] == []
