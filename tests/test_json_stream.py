"""Reading trace files a window at a time: big entry arrays stay in the file, items read back
exactly, and every way a file can be wrong still gets an error naming it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from refinery.core.models import LazyRuns
from refinery.errors import TraceFormatError
from refinery.traces import json_stream, load_trace
from refinery.traces.json_stream import LazyArray, read_trace_json
from refinery.traces.loader import READ_SHAPE
from tests.helpers import SHARED

CHAT = {
    "question": "Refund order 42.",
    "history": [
        {"role": "user", "content": "Refund order 42, please — it arrived broken 📦."},
        {"role": "assistant", "name": "Planner", "content": "Looking up «order 42» first.", "n": 12345},
        {"role": "assistant", "name": "Refunder", "content": "Refund issued: €42.00 ✓", "error": "timeout"},
    ],
}
OTLP = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
            "scopeSpans": [
                {
                    "scope": {"name": "oi"},
                    "spans": [
                        {"traceId": "ab" * 16, "spanId": f"{i:016x}", "name": f"span {i} ünïcode", "attributes": []}
                        for i in range(5)
                    ],
                },
                {"spans": []},
            ],
        }
    ]
}


def write(tmp_path: Path, data: object, name: str = "t.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def tiny_windows(monkeypatch):
    """A window of 7 bytes: every value and many UTF-8 characters cross a window's edge."""
    monkeypatch.setattr(json_stream, "_CHUNK", 7)


def test_a_big_entry_array_stays_in_the_file_and_reads_back_as_json_loads_gives_it(tmp_path, tiny_windows):
    data = read_trace_json(write(tmp_path, CHAT), READ_SHAPE, lazy_bytes=0)
    assert isinstance(data["history"], LazyArray)
    assert data["question"] == CHAT["question"]
    assert list(data["history"]) == CHAT["history"]
    assert data["history"][2] == CHAT["history"][2] and data["history"][-1] == CHAT["history"][-1]
    assert data["history"][1:] == CHAT["history"][1:]


def test_a_small_entry_array_is_a_plain_list(tmp_path):
    data = read_trace_json(write(tmp_path, CHAT), READ_SHAPE)
    assert type(data["history"]) is list and data == CHAT


def test_otlp_wrappers_are_walked_down_to_the_spans(tmp_path, tiny_windows):
    data = read_trace_json(write(tmp_path, OTLP), READ_SHAPE, lazy_bytes=0)
    scope = data["resourceSpans"][0]["scopeSpans"][0]
    assert isinstance(scope["spans"], LazyArray) and scope["scope"] == {"name": "oi"}
    assert list(scope["spans"]) == OTLP["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert data["resourceSpans"][0]["resource"] == OTLP["resourceSpans"][0]["resource"]


def test_a_top_level_array_and_numbers_at_a_windows_edge(tmp_path, tiny_windows):
    numbers = [123456789, -0.5e10, 7, True, None, "x" * 20]
    assert list(read_trace_json(write(tmp_path, numbers), READ_SHAPE, lazy_bytes=0)) == numbers


def test_a_byte_order_mark_is_skipped(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(CHAT, ensure_ascii=False).encode())
    assert list(read_trace_json(path, READ_SHAPE, lazy_bytes=0)["history"]) == CHAT["history"]


def test_json_lines_become_an_array(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(json.dumps(m, ensure_ascii=False) for m in CHAT["history"]) + "\n\n", encoding="utf-8")
    lazy = read_trace_json(path, READ_SHAPE, lazy_bytes=0)
    assert isinstance(lazy, LazyArray) and list(lazy) == CHAT["history"]
    assert read_trace_json(path, READ_SHAPE) == CHAT["history"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"history": [{"role": "user"}, {"role": ', r"t\.json: not JSON: Expecting value \(byte \d+\)"),
        ('{"history": [1 2]}', r"t\.json: not JSON: expected ',' or '\]' \(byte 15\)"),
        ('{"a": 1} {"b"', r"t\.json: not JSON"),
        ('{"a": 1}\n{"b": }\n', r"t\.json: line 2 is not JSON: Expecting value"),
        (
            '{\n  "history": [\n    {"role": "user"},\n    {"role": \n',
            r"t\.json: not JSON: Expecting value \(byte 53\)",
        ),
        ("", r"t\.json: not JSON: Expecting value"),
    ],
)
def test_a_broken_file_gets_an_error_naming_it_and_where(tmp_path, content, message):
    path = tmp_path / "t.json"
    path.write_text(content)
    with pytest.raises(TraceFormatError, match=message):
        read_trace_json(path, READ_SHAPE)


def test_a_file_that_is_not_utf8_says_so(tmp_path):
    path = tmp_path / "t.json"
    path.write_bytes(b'{"history": ["caf\xe9"]}')
    with pytest.raises(TraceFormatError, match=r"t\.json: not UTF-8 text"):
        read_trace_json(path, READ_SHAPE)


def test_a_file_changed_after_it_was_indexed_is_refused_not_misread(tmp_path):
    path = write(tmp_path, CHAT)
    data = read_trace_json(path, READ_SHAPE, lazy_bytes=0)
    path.write_text(json.dumps({"history": []}))
    os.utime(path, ns=(1, 1))
    with pytest.raises(TraceFormatError, match=r"t\.json: the file changed while it was being read"):
        list(data["history"])


def test_a_big_chat_log_loads_as_lazy_runs_equal_to_an_eager_load(tmp_path, monkeypatch):
    path = write(tmp_path, CHAT)
    eager = load_trace(path)
    monkeypatch.setattr(json_stream, "LAZY_BYTES", 0)
    lazy = load_trace(path)
    assert isinstance(lazy.runs, LazyRuns) and type(eager.runs) is list
    assert lazy == eager and lazy.model_dump() == eager.model_dump()
    assert [r.id for r in lazy.runs[1:]] == ["step-1", "step-2"] and lazy.get_failed_runs()[0].error == "timeout"
    assert lazy.model_dump_json() == eager.model_dump_json()


def test_a_bad_entry_in_a_big_log_fails_the_load_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(json_stream, "LAZY_BYTES", 0)
    path = write(tmp_path, {"history": [{"role": "user", "content": "hi"}, "not a step"]})
    with pytest.raises(TraceFormatError, match=r"t\.json at history\[1\]: expected an object"):
        load_trace(path)


SAMPLES = sorted(
    [
        *(SHARED / "trace-samples").glob("*/*.json"),
        *(SHARED / "eval-data").glob("*/*/*.json"),
        *(SHARED / "eval-data").glob("*/*/*/*.json"),
    ]
)


@pytest.mark.skipif(not SAMPLES, reason="../shared not present")
@pytest.mark.parametrize("window", [4096, 1 << 20])
def test_every_real_trace_loads_the_same_read_lazily_as_parsed_whole(monkeypatch, window):
    """The real exports in ../shared (LangSmith, Langfuse, OpenInference, TRAIL, Who&When), every
    entry array left in the file, give the same trace as `json.loads` of the whole file — read
    through small windows (blocks of items cut everywhere) and through the reader's own."""
    monkeypatch.setattr(json_stream, "LAZY_BYTES", 0)
    monkeypatch.setattr(json_stream, "_CHUNK", window)
    differ, compared = [], 0
    for path in SAMPLES:
        whole = json.loads(path.read_text(encoding="utf-8-sig"))
        try:
            expected = load_trace(whole).model_dump()
        except TraceFormatError:
            continue  # not a trace (an annotation file): nothing to compare
        compared += 1
        if load_trace(path).model_dump() != expected:
            differ.append(path.name)
    assert differ == [] and compared >= len(SAMPLES) // 2


def test_a_span_tree_nested_under_one_root_is_walked_so_its_children_stay_in_the_file(tmp_path, tiny_windows):
    """TRAIL's ClickHouse exports nest a whole trace under one root span's `child_spans`."""

    def span(i: int, children: list) -> dict:
        return {"span_id": f"s{i}", "span_name": f"step {i} — ✓", "child_spans": children}

    tree = {"trace_id": "t", "spans": [span(0, [span(1, [span(3, [])]), span(2, [])])]}
    data = read_trace_json(write(tmp_path, tree), READ_SHAPE, lazy_bytes=0)
    [root] = data["spans"]
    assert isinstance(data["spans"], LazyArray) and isinstance(root["child_spans"], LazyArray)
    first, second = root["child_spans"]
    assert first["span_name"] == "step 1 — ✓" and list(first["child_spans"]) == [span(3, [])] and second == span(2, [])
    assert load_trace(tree).model_dump() == load_trace(tmp_path / "t.json").model_dump()


def _nested_spans(depth: int, text: str) -> dict:
    """A TRAIL-like export: the whole trace under one root span, each span nesting the next."""
    span: dict = {"span_id": f"s{depth}", "span_name": "leaf", "attributes": {"output": text}, "child_spans": []}
    for level in range(depth - 1, -1, -1):
        span = {
            "span_id": f"s{level}",
            "span_name": f"level {level}",
            "attributes": {"input": text},
            "child_spans": [span],
        }
    return {"trace_id": "t" * 32, "spans": [span]}


class _CountingDecoder:
    """The reader's decoder, counting the characters it parses (a failed parse: up to where it failed)."""

    def __init__(self, real: json.JSONDecoder) -> None:
        self.real, self.chars = real, 0

    def _counted(self, parse, text: str, pos: int) -> tuple:
        try:
            value, end = parse(text, pos)
        except json.JSONDecodeError as exc:
            self.chars += exc.pos - pos
            raise
        self.chars += end - pos
        return value, end

    def scan_once(self, text: str, pos: int) -> tuple:
        return self._counted(self.real.scan_once, text, pos)

    def raw_decode(self, text: str, pos: int = 0) -> tuple:
        return self._counted(self.real.raw_decode, text, pos)

    def decode(self, text: str) -> object:
        self.chars += len(text)
        return self.real.decode(text)


def _counted(monkeypatch: pytest.MonkeyPatch) -> _CountingDecoder:
    from refinery.traces import json_cursor

    counting = _CountingDecoder(json_cursor.DECODER)
    monkeypatch.setattr(json_stream, "DECODER", counting)
    monkeypatch.setattr(json_cursor, "DECODER", counting)
    return counting


def test_a_nested_file_of_at_most_four_times_the_lazy_size_is_parsed_once_and_kept_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(json_stream, "LAZY_BYTES", 1 << 10)
    doc = _nested_spans(6, "the agent read the page " * 20)
    path = write(tmp_path, doc)
    assert (1 << 10) < path.stat().st_size <= 4 << 10
    counting = _counted(monkeypatch)
    data = read_trace_json(path, READ_SHAPE)
    assert data == doc and type(data["spans"]) is list and type(data["spans"][0]["child_spans"]) is list
    assert counting.chars <= path.stat().st_size


def test_a_nested_file_over_four_times_the_lazy_size_keeps_its_big_arrays_in_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(json_stream, "LAZY_BYTES", 1 << 10)
    doc = _nested_spans(6, "the agent read the page " * 40)
    path = write(tmp_path, doc)
    assert path.stat().st_size > 4 << 10
    data = read_trace_json(path, READ_SHAPE)
    assert isinstance(data["spans"], LazyArray) and list(data["spans"])[0]["span_id"] == "s0"


def _read_back(value: object) -> object:
    """A read value with every lazy array read, level by level, as a loader walks nested spans."""
    if isinstance(value, dict):
        return {k: _read_back(v) for k, v in value.items()}
    if isinstance(value, (list, LazyArray)):
        return [_read_back(v) for v in value]
    return value


def test_a_deeply_nested_big_file_read_back_level_by_level_is_parsed_about_twice_not_once_a_level(
    tmp_path, monkeypatch
):
    """Each level's span read back walks only its own fields: its child arrays, known from the
    first read, are skipped. Before, each level scanned everything below it again (here 12 deep).
    The window is the lazy size, as they are by default (1 MiB each)."""
    monkeypatch.setattr(json_stream, "LAZY_BYTES", 1 << 10)
    monkeypatch.setattr(json_stream, "_CHUNK", 1 << 10)
    doc = _nested_spans(12, "the agent read the page " * 40)
    path = write(tmp_path, doc)
    counting = _counted(monkeypatch)
    data = read_trace_json(path, READ_SHAPE)
    assert _read_back(data) == doc
    assert counting.chars <= 2.5 * path.stat().st_size


def test_a_nested_span_read_back_again_is_the_same_each_time(tmp_path, monkeypatch):
    monkeypatch.setattr(json_stream, "LAZY_BYTES", 1 << 10)
    doc = _nested_spans(5, "ünïcode text 📦 " * 60)
    data = read_trace_json(write(tmp_path, doc), READ_SHAPE)
    first = list(data["spans"])[0]
    assert isinstance(first["child_spans"], LazyArray)
    assert _read_back(first) == _read_back(list(data["spans"])[0]) == doc["spans"][0]


@pytest.mark.skipif(SHARED is None, reason="../shared not present")
def test_the_biggest_trail_trace_is_parsed_once(monkeypatch):
    """4 MB, a whole GAIA run nested under one root span: it was parsed six times over."""
    path = max((SHARED / "eval-data" / "trail" / "traces").glob("*/*.json"), key=lambda p: p.stat().st_size)
    counting = _counted(monkeypatch)
    trace = load_trace(path)
    assert len(trace.runs) > 50 and counting.chars <= path.stat().st_size
