"""A big OTLP trace's spans stay in the file and its runs are made when read (`LazyRuns`): what a
host reads, sets and renders is the same as for the same trace read whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refinery.core.models import LazyRuns
from refinery.traces import json_stream, load_trace
from refinery.traces.spool import upload_files_for
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
