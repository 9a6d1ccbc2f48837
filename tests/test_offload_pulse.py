"""Offloaded work lets the host's loop run at its I/O (`core.offload.breathe`).

Why: CPython asks the GIL's holder to give it up only when a waiting thread has waited 5 ms with
no switch meanwhile, and each blocking call of the worker (a spooled file's `pread`) is a switch:
a worker reading small files kept the loop from running for seconds. These tests hold the loop
(a callback that sleeps, as a loop starved of the GIL would stand) and check the order of what
happens, not how long anything takes: the worker's next step at an I/O point comes only after the
loop has run again.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from refinery.core.offload import LATE_S, MOST_S, breathe, off_loop
from refinery.traces.json_stream import read_trace_json
from refinery.traces.loader import READ_SHAPE
from refinery.traces.spool import SpooledFiles

HELD_S = 0.08  # the loop held this long: past LATE_S, within what one `breathe` waits
assert LATE_S < HELD_S < MOST_S


async def order_of(step: Callable[[], object]) -> list[str]:
    """Holds the loop for HELD_S while the worker, once the pulse is late, takes `step`: the order
    in which the loop came free and the step ended."""
    events: list[str] = []
    held = threading.Event()

    def hold_the_loop() -> None:
        held.set()
        time.sleep(HELD_S)
        events.append("loop ran again")

    def work(_stop: threading.Event) -> None:
        held.wait()
        time.sleep(LATE_S + 0.005)  # the loop's pulse is now late
        step()
        events.append("worker's step done")

    asyncio.get_running_loop().call_soon(hold_the_loop)
    await off_loop(work)
    return events


async def test_breathe_in_offloaded_work_waits_for_a_loop_kept_from_running() -> None:
    assert await order_of(breathe) == ["loop ran again", "worker's step done"]


async def test_without_breathe_the_worker_goes_on_while_the_loop_is_held() -> None:
    """The check above can fail: a step that does not breathe ends while the loop is still held."""
    assert await order_of(lambda: None) == ["worker's step done", "loop ran again"]


def test_breathe_outside_offloaded_work_returns_at_once() -> None:
    start = time.monotonic()
    breathe()
    assert time.monotonic() - start < MOST_S  # no loop to wait for: no wait up to the bound


@pytest.fixture()
def spool() -> SpooledFiles:
    files = SpooledFiles([("a.md", "alpha " * 100), ("b.md", "beta " * 100)])
    yield files
    files.close()


async def test_a_spooled_file_read_in_the_worker_waits_for_the_held_loop(spool: SpooledFiles) -> None:
    assert await order_of(lambda: spool.text(1)) == ["loop ran again", "worker's step done"]


async def test_a_spooled_file_written_in_the_worker_waits_for_the_held_loop(spool: SpooledFiles) -> None:
    assert await order_of(lambda: spool.append("c.md", "gamma " * 100)) == ["loop ran again", "worker's step done"]
    assert spool[2] == ("c.md", "gamma " * 100)


async def test_a_big_trace_read_in_the_worker_waits_for_the_held_loop(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"history": [{"role": "user", "content": f"step {i}"} for i in range(50)]}))
    data = read_trace_json(path, READ_SHAPE, lazy_bytes=0)  # entries left in the file, read when walked
    entries = data["history"]
    assert await order_of(lambda: list(entries)) == ["loop ran again", "worker's step done"]
