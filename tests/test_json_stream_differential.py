"""The streaming reader never disagrees with `json.loads`: random documents of every shape the
loaders take, read at window sizes down to a few bytes (so numbers, strings and escapes are cut at
every position), with big arrays left lazy or not."""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest

from refinery.errors import TraceFormatError
from refinery.traces import json_stream
from refinery.traces.json_stream import LazyArray, read_trace_json
from refinery.traces.loader import READ_SHAPE

NUMBERS = [
    "0",
    "-0",
    "1700003482.25",
    "1e-300",
    "-1.5E+20",
    "3.0e2",
    "123456789012345678901234567890",
    "0.000001",
    "-7",
]
STRINGS = [
    "plain",
    'quote " inside',
    "back\\slash",
    "line\nbreak",
    "tab\tcharacter",
    "é accents ü",
    "emoji 🦊 here",
    "\u2028sep",
    "",
]


def scalar(rng: random.Random) -> Any:
    kind = rng.randrange(5)
    if kind == 0:
        return json.loads(rng.choice(NUMBERS))
    if kind == 1:
        return rng.choice(STRINGS) * rng.randint(1, 3)
    return rng.choice([True, False, None, rng.randint(-(10**6), 10**6), rng.random() * 10 ** rng.randint(-30, 30)])


def value(rng: random.Random, depth: int = 0) -> Any:
    if depth > 2 or rng.random() < 0.5:
        return scalar(rng)
    if rng.random() < 0.5:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {f"k{i}{rng.choice(STRINGS)[:3]}": value(rng, depth + 1) for i in range(rng.randint(0, 4))}


def span(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    s = {
        "span_id": f"{rng.getrandbits(64):016x}",
        "start_time": json.loads(rng.choice(NUMBERS)),
        "attributes": value(rng),
    }
    if depth < 2 and rng.random() < 0.4:
        s["child_spans"] = [span(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return s


def document(rng: random.Random) -> Any:
    shape = rng.randrange(5)
    if shape == 0:
        return {"trace_id": "t", "spans": [span(rng) for _ in range(rng.randint(0, 6))]}
    if shape == 1:
        return {
            "question": rng.choice(STRINGS),
            "history": [{"role": "user", "content": scalar(rng)} for _ in range(rng.randint(0, 6))],
        }
    if shape == 2:
        return [span(rng) for _ in range(rng.randint(1, 5))]
    if shape == 3:
        return {"resourceSpans": [{"resource": value(rng), "scopeSpans": [{"spans": [span(rng) for _ in range(3)]}]}]}
    return {
        "runs": [{"id": str(i), "inputs": value(rng), "outputs": value(rng)} for i in range(rng.randint(0, 5))],
        "extra": value(rng),
    }


def plain(data: Any) -> Any:
    """A read document with every lazy array read into a list."""
    if isinstance(data, (list, LazyArray)):
        return [plain(x) for x in data]
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items()}
    return data


@pytest.mark.parametrize("window", [3, 5, 17, 64, 4096])
def test_random_documents_read_as_json_loads_reads_them(tmp_path, monkeypatch, window):
    monkeypatch.setattr(json_stream, "_CHUNK", window)
    rng = random.Random(window)
    path = tmp_path / "doc.json"
    for n in range(60):
        doc = document(rng)
        text = json.dumps(doc, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1]))
        path.write_text(text, encoding="utf-8")
        expected = json.loads(text)
        for lazy in (0, 48, 1 << 20):  # every item walked; small ones decoded in one call, big ones walked; none lazy
            assert plain(read_trace_json(path, READ_SHAPE, lazy_bytes=lazy)) == expected, (window, n, lazy, text[:200])


def test_every_cut_of_numbers_strings_and_escapes(tmp_path, monkeypatch):
    doc = {
        "spans": [
            {"span_id": "a", "t": 1700003482.25, "e": 1e-300, "big": -1.5e20, "s": 'q"\\\n\u00e9🦊', "u": "\u2028"}
        ]
        * 3
    }
    text = json.dumps(doc, ensure_ascii=False)
    path = tmp_path / "doc.json"
    path.write_text(text, encoding="utf-8")
    for window in range(1, 48):
        monkeypatch.setattr(json_stream, "_CHUNK", window)
        for lazy in (0, 40, 1 << 20):
            assert plain(read_trace_json(path, READ_SHAPE, lazy_bytes=lazy)) == doc, (window, lazy)


def test_a_broken_document_is_a_trace_format_error_naming_the_byte(tmp_path, monkeypatch):
    monkeypatch.setattr(json_stream, "_CHUNK", 7)
    path = tmp_path / "doc.json"
    path.write_text('{"spans": [{"span_id": "a", "t": 12.5x}]}')
    with pytest.raises(TraceFormatError, match=r"not JSON: .*\(byte \d+\)"):
        read_trace_json(path, READ_SHAPE)


def test_a_lazy_item_that_changed_shape_is_reported_not_leaked(tmp_path, monkeypatch):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps({"spans": [{"span_id": "a", "child_spans": [{"span_id": "b"}]}, {"span_id": "c"}]}))
    data = read_trace_json(path, READ_SHAPE, lazy_bytes=0)
    spans = data["spans"]
    assert isinstance(spans, LazyArray)
    spans._bounds[1] -= 1  # the recorded end of item 0 no longer where the item ends
    with pytest.raises(TraceFormatError, match="item 0"):
        spans[0]


def test_a_span_list_whose_first_window_ends_inside_a_number_loads(tmp_path):
    """The reported case: a valid 1.8 MB span list whose first 1 MiB window ends in
    `"start_time": 1700003482.` failed with "expected ',' or '}' (byte 1048575)"."""
    spans = [{"span_id": f"s{i}", "name": "x" * 50, "start_time": 1700003482.25} for i in range(20_000)]
    text = json.dumps({"spans": spans})
    cut = text.find("1700003482.", (1 << 20) - 200) + len("1700003482.")
    text = text[:1] + " " * ((1 << 20) - cut) + text[1:]  # the '.' is now the window's last character
    assert text[(1 << 20) - 1] == "."
    path = tmp_path / "spans.json"
    path.write_text(text)
    data = read_trace_json(path, READ_SHAPE)
    assert len(data["spans"]) == 20_000 and data["spans"][-1] == spans[-1]


@pytest.mark.parametrize("window", [1, 2, 3, 5, 7, 4096])
def test_a_byte_that_is_no_utf8_is_named_where_it_stands(tmp_path, monkeypatch, window):
    monkeypatch.setattr(json_stream, "_CHUNK", window)
    data = '{"history": [{"role": "user", "content": "é🦊'.encode() + b"\xff" + b'cd"}]}'
    path = tmp_path / "doc.json"
    path.write_bytes(data)
    bad = data.index(b"\xff")
    with pytest.raises(TraceFormatError, match=rf"not UTF-8 text \(invalid start byte at byte {bad}\)"):
        read_trace_json(path, READ_SHAPE)


def test_a_pass_over_a_lazy_array_reads_items_by_block_and_names_a_broken_one(tmp_path):
    path = tmp_path / "doc.json"
    history = [{"role": "user", "content": f"message {i} é"} for i in range(200)]
    path.write_text(json.dumps({"history": history}, ensure_ascii=False), encoding="utf-8")
    data = read_trace_json(path, READ_SHAPE, lazy_bytes=0)
    items = data["history"]
    assert isinstance(items, LazyArray) and list(items) == history
    stat = path.stat()  # item 7 broken behind the reader's back: the file's size and time kept
    path.write_bytes(path.read_bytes().replace(b'"message 7 ', b"'message 7 "))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(TraceFormatError, match=r"item 7 \(bytes \d+–\d+\) no longer reads as JSON"):
        list(items)
    with pytest.raises(TraceFormatError, match=r"item 7 \(bytes \d+–\d+\) no longer reads as JSON"):
        items[7]
