"""The load's quick paths give what the general ones give: a chat step that only says who spoke and
what (`role`, `name`, `content`: most big logs) is made into the same run, with the same skeleton,
as any step is."""

from __future__ import annotations

import hashlib
import json
import os
import random

import pytest

from refinery.core.models import LazyRuns, TraceRun, run_fact
from refinery.errors import TraceFormatError
from refinery.traces import json_stream, load_trace, otel, plain
from refinery.traces.json_stream import LazyArray, read_trace_json
from refinery.traces.loader import READ_SHAPE
from refinery.traces.otel_attributes import attributes_of, otlp_value

_VALUES = ["user", "User", "HUMAN", "system", "assistant", "tool", "Planner", "", None, 0, 1.5, True, {"a": 1}, [1]]


def _random_spoken(rng: random.Random) -> dict:
    keys = [k for k in ("content", "name", "role") if rng.random() < 0.7] or ["content"]
    rng.shuffle(keys)
    return {k: rng.choice(_VALUES) for k in keys}


def test_a_spoken_step_is_made_into_the_run_any_step_is_made_into():
    rng = random.Random(7)
    for i in range(3000):
        step = _random_spoken(rng)
        general = TraceRun(**plain._step_fields(i, step, "history", "chat-1", None))
        quick = plain._step_run(i, step, list_key="history", trace_id="chat-1", source=None, checked=True)
        assert quick == general and quick.model_fields_set == general.model_fields_set, step
        assert quick.model_dump_json() == general.model_dump_json(), step


@pytest.mark.parametrize("most", [2, plain._Speakers.MOST])
def test_one_pass_makes_each_spoken_step_into_the_run_any_step_is_made_into(monkeypatch, most):
    """A pass's converter works out each speaker once (`_Speakers`, forgotten when full): the runs it
    makes of steps that repeat speakers, in any order, are those made of each step alone."""
    monkeypatch.setattr(plain._Speakers, "MOST", most)
    rng = random.Random(9)
    convert = plain._checked_runs("history", "chat-1", None)
    for i in range(3000):
        step = _random_spoken(rng)
        general = TraceRun(**plain._step_fields(i, step, "history", "chat-1", None))
        quick = convert(i, step)
        assert quick == general and quick.model_fields_set == general.model_fields_set, step
        assert quick.model_dump_json() == general.model_dump_json(), step


def test_a_spoken_steps_skeleton_is_its_runs_times_and_fact():
    rng = random.Random(8)
    for i in range(3000):
        step = _random_spoken(rng)
        run = TraceRun(**plain._step_fields(i, step, "history", "chat-1", None))
        assert plain._step_skeleton(i, step, "history", None) == (run.start_time, run.end_time, run_fact(run)), step


def test_an_item_broken_behind_the_readers_back_is_named_when_its_block_is_read(tmp_path):
    """A block of items is decoded in place; one that no longer decodes there (the file rewritten
    with its size and time kept) fails the pass, naming the item and its bytes."""
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"history": [{"role": "user", "content": f"step {i}"} for i in range(5)]}))
    items = read_trace_json(path, READ_SHAPE, lazy_bytes=0)["history"]
    assert isinstance(items, LazyArray) and [s["content"] for s in items] == [f"step {i}" for i in range(5)]
    stat = path.stat()
    path.write_bytes(path.read_bytes().replace(b'"step 3"', b"\"step 3'"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(TraceFormatError, match=r"item 3 \(bytes \d+–\d+\) no longer reads as JSON"):
        list(items)


def test_the_scan_reads_on_before_the_windows_edge_and_gives_what_json_loads_gives(tmp_path, monkeypatch):
    """An array's items are scanned a window at a time; near the window's edge the scan reads on
    first, so no item is cut there (a cut item's decode error counted the whole window's lines),
    and every item, ASCII or not, numbers and all, reads back as `json.loads` gives it."""
    monkeypatch.setattr(json_stream, "_CHUNK", 16384)  # a window of 16 KiB: 1 KiB's margin, items under 500 bytes
    rng = random.Random(5)
    words = ["refund", "order", "é", "✓", "日本", "\\n", "ok"]
    steps = [
        {"role": rng.choice(["user", "assistant"]), "content": " ".join(rng.choices(words, k=rng.randint(1, 60)))}
        if i % 5
        else {"name": "tool", "output": rng.random() * 10 ** rng.randint(-5, 20), "n": rng.randint(-(10**12), 10**12)}
        for i in range(3000)
    ]
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"question": "q", "history": steps}, ensure_ascii=rng.random() < 0.5), encoding="utf-8")
    errors: list[int] = []
    real = json.decoder.JSONDecodeError.__init__
    monkeypatch.setattr(json.decoder.JSONDecodeError, "__init__", lambda self, *a: errors.append(1) or real(self, *a))
    data = read_trace_json(path, READ_SHAPE, lazy_bytes=0)
    assert errors == [] and isinstance(data["history"], LazyArray)
    assert list(data["history"]) == json.loads(path.read_bytes())["history"] == steps


class _Mapped(dict):
    pass


def test_otlp_attributes_read_with_their_text_values_inline_are_what_otlp_value_reads():
    """Whatever the pairs hold — keys not text or colliding once made text (3 and "3"), pairs with no
    key or no value, values that are text holding "stringValue", lists, objects of a dict's kind,
    values `otlp_value` refuses — the attributes are `otlp_value` of each pair's value, or the
    same error is raised."""
    rng = random.Random(12)
    values = [
        {"stringValue": "a"},
        {"stringValue": None},
        {"stringValue": {"x": 1}},
        {"intValue": "5"},
        {"intValue": "x"},
        {"doubleValue": 1.5},
        {"doubleValue": "not a number"},
        {"boolValue": True},
        {"arrayValue": {"values": [{"stringValue": "b"}]}},
        {"arrayValue": [1]},
        {"string_value": "c", "int_value": None},
        _Mapped(stringValue="m"),
        "bare",
        "a stringValue in text",
        ["stringValue"],
        None,
        {},
        7,
    ]
    for _ in range(6000):
        raw = [
            {"key": rng.choice(["k", "l", "3", 3]), "value": rng.choice(values)}
            if rng.random() < 0.9
            else rng.choice([1, {}, {"key": "k"}, {"value": {"stringValue": "v"}}, _Mapped(key="k", value="w")])
            for _ in range(rng.randint(0, 6))
        ]
        try:
            expected = {
                str(kv["key"]): otlp_value(kv.get("value")) for kv in raw if isinstance(kv, dict) and "key" in kv
            }
        except Exception as exc:  # noqa: BLE001 - the same error, whichever it is
            with pytest.raises(type(exc)):
                attributes_of(raw)
            continue
        got = attributes_of(raw)
        assert got == expected and list(got) == list(expected), raw


def _random_step(rng: random.Random, i: int) -> dict:
    step = _random_spoken(rng)
    if rng.random() < 0.3:
        step[rng.choice(["timestamp", "start_time", "end_time"])] = rng.choice(
            ["2026-01-02T10:00:05Z", 1767348000 + i, 1767347990123 + i, None, ""]
        )
    if rng.random() < 0.2:
        step[rng.choice(["error", "input", "output", "id", "agent", "tool_calls", "extra"])] = rng.choice(
            ["boom", {"type": "Timeout"}, '{"a": 1}', "", None, [1], 0]
        )
    return step


def _passes_over(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Passes made over a big array's items after the reader's own (each a parse of the file)."""
    passes: list[int] = []
    real = LazyArray.__iter__
    monkeypatch.setattr(LazyArray, "__iter__", lambda self: passes.append(1) or real(self))
    return passes


def _read_three_ways(path, monkeypatch: pytest.MonkeyPatch, unwatch: tuple[object, str, object]):
    """The file read whole, lazily, and lazily with its watches set aside (`unwatch`: the object,
    attribute and stand-in that turn them off), with the passes over the file each lazy read made."""
    whole = load_trace(json.loads(path.read_text()))
    monkeypatch.setattr(json_stream, "LAZY_BYTES", 0)
    passes = _passes_over(monkeypatch)
    lazy = load_trace(path)
    with_watch = len(passes)
    with monkeypatch.context() as m:
        m.setattr(*unwatch)
        unwatched = load_trace(path)
    return whole, lazy, unwatched, with_watch, len(passes) - with_watch


@pytest.mark.parametrize("seed", range(40))
def test_a_big_logs_load_reads_its_steps_once_and_gives_the_trace_a_whole_read_gives(tmp_path, monkeypatch, seed):
    """What the load needs of each step (times, fact, the id's hash) is taken during the reader's
    scan — unless the id is a hash of fields that follow the steps: then the load reads the steps
    again itself. Either way the trace is the one `json.loads` of the file gives."""
    rng = random.Random(seed)
    head = {k: v for k, v in [("question", "Refund 42"), ("question_ID", "q-7"), ("level", 1)] if rng.random() < 0.6}
    steps = [_random_step(rng, i) for i in range(rng.randint(1, 40))]
    after = rng.random() < 0.3
    log = {**({} if after else head), "history": steps, **(head if after else {})}
    path = tmp_path / "log.json"
    path.write_text(json.dumps(log))
    whole, lazy, unwatched, with_watch, without_watch = _read_three_ways(
        path, monkeypatch, (plain._StepWatch, "fits", lambda *a: False)
    )
    hashed_after = after and head and "question_ID" not in head  # the id a hash of fields that follow the steps
    assert with_watch == without_watch - (0 if hashed_after else 1)  # one pass fewer, or none
    assert isinstance(lazy.runs, LazyRuns) and unwatched.model_dump() == lazy.model_dump()
    assert lazy.runs._entries.watched == ()  # what the watch took is not held as long as the trace
    assert (lazy.trace_id, lazy.start_time, lazy.end_time) == (whole.trace_id, whole.start_time, whole.end_time)
    assert [r.id for r in lazy.get_failed_runs()] == [r.id for r in whole.runs if r.is_failed]
    assert lazy.model_dump() == whole.model_dump()


def _random_span(rng: random.Random, i: int, *, odd_times: bool = False) -> dict:
    attrs = [{"key": "openinference.span.kind", "value": {"stringValue": rng.choice(["LLM", "TOOL", "CHAIN"])}}]
    if rng.random() < 0.9:
        attrs.append({"key": "project", "value": {"stringValue": "shop"}})
    if rng.random() < 0.5:
        attrs.append({"key": "turn", "value": {"intValue": str(rng.randrange(2))}})
    if rng.random() < 0.5:
        attrs.append({"key": "llm.input_messages.0.message.content", "value": {"stringValue": f"step {i} ✓"}})
    span = {
        "traceId": "ab" * 16,
        "parentSpanId": f"{rng.randrange(i):016x}" if i and rng.random() < 0.8 else "",
        "name": f"span {i}",
        "startTimeUnixNano": str(1_700_000_000_000_000_000 + rng.randrange(10**9)),
        "attributes": attrs,
        "status": rng.choice([{"code": 2, "message": "failed"}, {"code": 1}, {}]),
    }
    if odd_times and rng.random() < 0.5:  # ISO text, seconds, a time no `datetime` holds (a warning), none
        span["startTimeUnixNano"] = rng.choice(["2026-01-02T10:00:05.5Z", 1_700_000_000.25, "9" * 25, "", 0])
    if rng.random() < 0.97:
        span["spanId"] = f"{i:016x}"
    if rng.random() < 0.7:
        span["endTimeUnixNano"] = str(1_700_000_001_000_000_000 + rng.randrange(10**9))
    if rng.random() < 0.1:
        span["events"] = [
            {"name": "exception", "attributes": [{"key": "exception.type", "value": {"stringValue": "E"}}]}
        ]
    return span


@pytest.mark.parametrize("seed", range(60))
def test_a_big_otlp_traces_skeletons_are_taken_as_it_is_read_and_give_the_trace_a_whole_read_gives(
    tmp_path, monkeypatch, seed
):
    """Each span's skeleton, fact and repeated attributes are taken during the reader's scan (a pass
    over the file fewer), an array's at a time — the load reads an array's spans itself only where
    one of them needs its number in the trace (an id made from it). Either way the trace is the one
    `json.loads` of the file gives."""
    rng = random.Random(seed)
    spans = [_random_span(rng, i) for i in range(rng.choice([1, rng.randint(2, 30)]))]  # one: no resource hoisted
    cuts = sorted(rng.sample(range(len(spans) + 1), rng.choice([0, 0, 1, 2])))
    parts = [spans[a:b] for a, b in zip([0, *cuts], [*cuts, len(spans)])]  # one array, or several (some empty)
    services = [[{"key": "service.name", "value": {"stringValue": name}}] for name in ("svc", "svc", "other")] + [[]]
    resources = [{"attributes": rng.choice(services)} for _ in parts]  # the same resource, or not
    data = {"resourceSpans": [{"resource": r, "scopeSpans": [{"spans": p}]} for r, p in zip(resources, parts)]}
    path = tmp_path / "otlp.json"
    path.write_text(json.dumps(data, ensure_ascii=False))
    whole, lazy, unwatched, with_watch, without_watch = _read_three_ways(
        path, monkeypatch, (otel, "_watched", lambda items, offset: None)
    )
    # an array after the first is served by its watch unless a span's id is made from its number
    offsets = [sum(map(len, parts[:i])) for i in range(len(parts))]
    saved = sum(bool(part) and (at == 0 or all("spanId" in span for span in part)) for part, at in zip(parts, offsets))
    assert with_watch == without_watch - saved
    assert isinstance(lazy.runs, LazyRuns) and lazy.model_dump() == unwatched.model_dump() == whole.model_dump()
    assert all(getattr(items, "watched", ()) == () for items, _ in lazy.runs._entries._parts)  # not held on
    assert [r.id for r in lazy.get_failed_runs()] == [r.id for r in whole.runs if r.is_failed]


def test_a_big_otlp_traces_pass_takes_each_spans_ids_and_times_from_its_skeleton(tmp_path, monkeypatch):
    """The load reads each span's ids and times for its skeleton (run order, the trace's times); a
    pass over the runs takes them from there instead of reading them again, and makes the runs a
    whole read makes."""
    rng = random.Random(21)
    spans = [_random_span(rng, i, odd_times=True) for i in range(60)]
    path = tmp_path / "otlp.json"
    path.write_text(json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": spans}]}]}))
    whole = load_trace(path)
    monkeypatch.setattr(json_stream, "LAZY_BYTES", 0)
    lazy = load_trace(path)
    read: list[int] = []
    real = otel.span_ids
    monkeypatch.setattr(otel, "span_ids", lambda span: read.append(1) or real(span))
    assert isinstance(lazy.runs, LazyRuns) and [r.model_dump() for r in lazy.runs] == [
        r.model_dump() for r in whole.runs
    ]
    assert read == []


def _random_text(rng: random.Random) -> str:
    return "".join(
        rng.choice(["a", "é", "🦊", '"', "\\", "\n", "\x00", "\u2028", "}, {", " "]) for _ in range(rng.randint(0, 9))
    )


def test_a_spoken_steps_dump_written_out_hashes_as_json_dumps_does():
    """The chat id hashes `json.dumps(step, sort_keys=True, default=str)` of every step (the id names
    folders): a spoken step's dump written out is that text, whatever its text, and a step whose values
    are not all text goes through `json.dumps`' own encoder; hashed one by one or as a block, the
    digest is the same."""
    rng = random.Random(12)
    steps = []
    for _ in range(2000):
        step = {"role": _random_text(rng), "name": _random_text(rng), "content": _random_text(rng)}
        if rng.random() < 0.3:
            step[rng.choice(list(step))] = rng.choice(_VALUES)
        keys = list(step)
        rng.shuffle(keys)
        steps.append({k: step[k] for k in keys})
    one, block = plain._Digest({"q": 1}), plain._Digest({"q": 1})
    expected = hashlib.sha256(json.dumps({"q": 1}, sort_keys=True, default=str).encode())
    for step in steps:
        assert one.dump(step) == json.dumps(step, sort_keys=True, default=str), step
        one.add(step)
        expected.update(json.dumps(step, sort_keys=True, default=str).encode())
    block.add_dumps([block.dump(step) for step in steps])
    assert one.hexdigest() == block.hexdigest() == expected.hexdigest()[:12]


@pytest.mark.parametrize("most", [2, plain._Speakers.MOST])
def test_a_block_of_steps_shown_to_the_watch_at_once_is_seen_as_one_at_a_time(monkeypatch, most):
    monkeypatch.setattr(plain._Speakers, "MOST", most)
    rng = random.Random(13)
    extra = [{"role": "user", "content": "x", "timestamp": 1767347990 + k} for k in range(3)]
    for _ in range(200):
        steps = [_random_spoken(rng) for _ in range(rng.randint(0, 30))] + rng.sample(extra, rng.randint(0, 3))
        rng.shuffle(steps)
        one, block = (
            plain._StepWatch("history", {"q": 1}, "log.json"),
            plain._StepWatch("history", {"q": 1}, "log.json"),
        )
        for step in steps:
            one.add(step)
        block.add_all(steps)
        assert (block.facts, block.first, block.last) == (one.facts, one.first, one.last)
        assert block.digest.hexdigest() == one.digest.hexdigest()
