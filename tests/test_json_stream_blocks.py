"""A big array's items parsed a block at a time (`json_cursor.items_block`): one `json.loads` of a
stretch up to a guessed item boundary. The guess may be wrong — a look-alike inside a string, or
deeper in an item — but what it parses never is: the same values as `json.loads`, the same items
read back by index or in a pass, the same errors naming the same entry."""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest

from refinery.errors import TraceFormatError
from refinery.traces import json_stream, lazy_array, load_trace
from refinery.traces.json_cursor import items_block
from refinery.traces.json_stream import LazyArray, read_trace_json
from refinery.traces.loader import READ_SHAPE

# what makes a guess go wrong: an item's ends and starts inside strings, brackets, escapes, unicode
TRICKS = [
    '}, {"role',
    "}, {",
    '{"role": "x"}',
    "]}",
    "[{",
    '\\"}, {\\"role',
    "\\\\",
    '"',
    "é",
    "🦊",
    "\u2028",
    "}]",
    " ",
]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice([*TRICKS, "word ", "x"]) for _ in range(rng.randint(0, 12)))


def _step(rng: random.Random) -> Any:
    """A step, or now and then an item that nests look-alike steps deeper down."""
    roll = rng.random()
    if roll < 0.1:
        return {"role": "tool", "content": [{"role": "user", "content": _text(rng)}, {"role": _text(rng)}]}
    if roll < 0.15:
        return {"role": "x", "content": {"nested": [[{"role": "a"}], {"b": [_text(rng), 1.5e-7, None, True]}]}}
    if roll < 0.2:
        return {"name": _text(rng), "content": _text(rng), "n": rng.randint(-(10**15), 10**15)}
    return {"role": rng.choice(["user", "assistant"]), "name": f"agent{rng.randint(0, 3)}", "content": _text(rng)}


def _dumped(steps: list[Any], rng: random.Random) -> str:
    separators = rng.choice([(", ", ": "), (",", ":"), (",\n  ", ": ")])
    return json.dumps({"question": "q", "history": steps}, ensure_ascii=rng.random() < 0.5, separators=separators)


def test_a_block_is_the_items_up_to_an_item_boundary_or_no_block_at_all():
    """At every item's start and every reach, `items_block` gives the next items exactly as
    `json.loads` gives them, ending at an item's end and resuming at the next one's start — or
    a position before which no guess is tried again, never before the item it was asked at."""
    rng = random.Random(11)
    blocks = 0
    for _ in range(150):
        steps = [_step(rng) for _ in range(rng.randint(2, 40))]
        sep = rng.choice([", ", ",", ",\n  "])
        texts = [json.dumps(s, ensure_ascii=rng.random() < 0.5) for s in steps]
        buf = "[" + sep.join(texts) + "]"
        starts, at = [], 1
        for t in texts:
            starts.append(at)
            at += len(t) + len(sep)
        ends = [s + len(t) for s, t in zip(starts, texts)]
        for i, pos in enumerate(starts):
            for most in (1, 8, 50, 200, 1000, len(buf)):
                found = items_block(buf, pos, min(most, len(buf) - pos))
                if isinstance(found, int):
                    assert found > pos
                    continue
                values, cut, nxt = found
                assert cut in ends and cut - pos <= most, (buf, pos, most)
                j = ends.index(cut)
                assert values == steps[i : j + 1] and nxt == starts[j + 1]
                blocks += 1
    assert blocks > 1000  # the guesses are mostly right


@pytest.mark.parametrize("window", [16, 64, 200, 1000, 4096, 1 << 16, 1 << 20])
def test_a_big_array_read_a_block_at_a_time_gives_what_json_loads_gives(tmp_path, monkeypatch, window):
    """Windows of every size, so blocks are cut everywhere: the items, in a pass, a slice and by
    index in any order, are `json.loads`'s; and for windows big enough, most items came in blocks."""
    monkeypatch.setattr(json_stream, "_CHUNK", window)
    rng = random.Random(window)
    for _ in range(6):
        steps = [_step(rng) for _ in range(rng.randint(1, 400))]
        path = tmp_path / "log.json"
        path.write_text(_dumped(steps, rng), encoding="utf-8")
        items = read_trace_json(path, READ_SHAPE, lazy_bytes=0)["history"]
        assert list(items) == steps and items[3:77:2] == steps[3:77:2]
        order = list(range(len(steps)))
        rng.shuffle(order)
        with items.reading() as read:
            assert [read(i) for i in order] == [steps[i] for i in order]
        assert [items[i] for i in order] == [steps[i] for i in order]
        if isinstance(items, LazyArray):
            with items.reading_between() as between:
                for i in order:
                    stop = min(len(steps), i + rng.choice([0, 1, 2, 5, 50]))
                    assert list(between(i, stop)) == steps[i:stop]
        if isinstance(items, LazyArray) and window >= 4096 and len(steps) > 100:
            assert len(items._firsts) < len(steps) / 4  # blocks, not an item a stretch


def test_an_item_read_by_index_is_its_own_object_each_time(tmp_path):
    """An item read by index is parsed from the file each time: a change to what one read gave
    never shows in another read."""
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"history": [{"role": "user", "content": f"step {i}"} for i in range(300)]}))
    items = read_trace_json(path, READ_SHAPE, lazy_bytes=0)["history"]
    assert isinstance(items, LazyArray) and len(items._firsts) < 10
    first = items[150]
    first["content"] = "changed"
    assert items[150] == {"role": "user", "content": "step 150"} and items[151]["content"] == "step 151"


class _CountedFile:
    """A file that counts the bytes read from it."""

    def __init__(self, path, read: list[int]) -> None:
        self.f, self.counted = path.open("rb"), read

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()

    def seek(self, at: int) -> int:
        return self.f.seek(at)

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.counted.append(len(data))
        return data


def test_a_few_items_of_a_block_read_in_any_order_read_little_more_than_themselves(tmp_path):
    """Spans read in run order (children before parents in an export, so short runs of items in any
    order) and items read by index: each block is read whole once for its items' byte spans, then
    only the items asked for — not a whole block for each item."""
    path = tmp_path / "log.json"
    rng = random.Random(9)
    steps = [{"role": "user", "content": _text(rng) + "x" * rng.randint(100, 400)} for _ in range(4000)]
    path.write_text(json.dumps({"history": steps}))
    items = read_trace_json(path, READ_SHAPE, lazy_bytes=0)["history"]
    assert isinstance(items, LazyArray) and len(items._firsts) < 100
    size = path.stat().st_size
    order = list(range(len(steps)))
    rng.shuffle(order)
    read: list[int] = []
    items._open = lambda: _CountedFile(path, read)  # type: ignore[method-assign]
    assert [items[i] for i in order] == [steps[i] for i in order]
    with items.reading_between() as between:
        assert [s for i in order[::3] for s in between(i, min(i + 3, len(steps)))] == [
            s for i in order[::3] for s in steps[i : i + 3]
        ]
    assert sum(read) < 3 * size


def test_a_few_items_at_a_time_in_file_order_parse_each_block_in_one_call(tmp_path, monkeypatch):
    """A renderer's reads (a file's few runs at a time, mostly in file order): each block parsed in
    one call when its first item is read, the rest handed out from it; never item by item."""
    path = tmp_path / "log.json"
    rng = random.Random(12)
    steps = [_step(rng) for _ in range(3000)]
    path.write_text(_dumped(steps, rng), encoding="utf-8")
    items = read_trace_json(path, READ_SHAPE, lazy_bytes=0)["history"]
    assert isinstance(items, LazyArray) and len(items._firsts) < len(steps) / 4

    def item_by_item(*args):
        raise AssertionError("a block read item by item")

    monkeypatch.setattr(lazy_array, "item_spans", item_by_item)
    for width in (1, 6, 7):
        got = []
        with items.reading_between() as between:
            for start in range(0, len(steps), width):
                got += between(start, min(start + width, len(steps)))
        assert got == steps
        items._whole.clear()
        assert [s for start in range(0, len(steps), width) for s in items[start : start + width]] == steps
        items._whole.clear()  # (the next width reads every block afresh)


def test_an_item_handed_out_from_a_block_read_whole_is_its_own_object(tmp_path):
    """What a read of a block's first items left over is handed out once: a change to an item read
    never shows in another read of it."""
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"history": [{"role": "user", "content": f"step {i}"} for i in range(3000)]}))
    items = read_trace_json(path, READ_SHAPE, lazy_bytes=0)["history"]
    assert isinstance(items, LazyArray) and len(items._firsts) < 100
    lo = items._firsts[-2]
    for step in items[lo : lo + 3]:
        step["content"] = "changed"
    assert items[lo + 1] == {"role": "user", "content": f"step {lo + 1}"}
    assert [s["content"] for s in items[lo : lo + 4]] == [f"step {i}" for i in range(lo, lo + 4)]


def test_broken_json_inside_a_block_is_named_where_it_stands_as_item_by_item(tmp_path):
    """A broken item where a block would be parsed: the block's parse fails, the items go one by
    one, and the error names the same byte as a read that keeps every item (no block)."""
    rng = random.Random(3)
    steps = [_step(rng) for _ in range(500)]
    text = json.dumps({"history": steps})
    at = text.index('"role"', len(text) // 2)
    path = tmp_path / "log.json"
    path.write_text(text[:at] + "01" + text[at:])
    messages = []
    for lazy in (0, 1 << 30):
        with pytest.raises(TraceFormatError) as caught:
            read_trace_json(path, READ_SHAPE, lazy_bytes=lazy)
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "not JSON" in messages[0]


@pytest.mark.parametrize(
    ("bad", "names"),
    [({"foo": 1}, "expected 'role'"), (["a list"], "expected an object"), ({"role": "user", "timestamp": "x"}, "")],
)
def test_a_bad_step_in_a_block_names_the_same_entry_as_a_whole_read(tmp_path, monkeypatch, bad, names):
    rng = random.Random(4)
    steps = [{"role": "user", "name": "a", "content": _text(rng)} for _ in range(3000)]
    steps[2222] = bad
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"history": steps}))
    messages = []
    for lazy in (json_stream.LAZY_BYTES, 0):  # the file read whole, then its steps left in it
        monkeypatch.setattr(json_stream, "LAZY_BYTES", lazy)
        with pytest.raises(TraceFormatError) as caught:
            load_trace(path)
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "history[2222]" in messages[0] and names in messages[0]


def test_a_stretch_broken_behind_the_readers_back_names_its_item_read_by_index_or_in_a_pass(tmp_path):
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"history": [{"role": "user", "content": f"step {i}"} for i in range(400)]}))
    items = read_trace_json(path, READ_SHAPE, lazy_bytes=0)["history"]
    stat = path.stat()
    path.write_bytes(path.read_bytes().replace(b'"step 300"', b'[step 300"'))  # same size, no longer JSON
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    for read in (lambda: list(items), lambda: items[300], lambda: items[299:301]):
        with pytest.raises(TraceFormatError, match=r"item 300 \(bytes \d+–\d+\) no longer reads as JSON"):
            read()
