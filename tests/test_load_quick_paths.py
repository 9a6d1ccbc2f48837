"""The load's quick paths give what the general ones give: a chat step that only says who spoke and
what (`role`, `name`, `content`: most big logs) is made into the same run, with the same skeleton,
as any step is."""

from __future__ import annotations

import json
import os
import random

import pytest

from refinery.core.models import TraceRun, run_fact
from refinery.errors import TraceFormatError
from refinery.traces import plain
from refinery.traces.json_stream import LazyArray, read_trace_json
from refinery.traces.loader import READ_SHAPE

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
