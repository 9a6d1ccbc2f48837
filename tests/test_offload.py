"""Offloaded work runs in refinery's one worker thread, never the event loop's, one piece at a time
(`core.offload`: several busy threads kept the loop waiting for the GIL far longer than one)."""

from __future__ import annotations

import asyncio
import threading

from refinery.core.offload import in_worker, off_loop, worker_thread


async def test_work_handed_off_runs_in_refinerys_worker_thread_not_the_loops():
    loop_thread = threading.get_ident()
    ran_in = await in_worker(threading.get_ident)
    assert ran_in != loop_thread
    assert await in_worker(worker_thread)
    assert await off_loop(lambda _stop: worker_thread())
    assert not worker_thread()


async def test_pieces_of_work_run_one_after_another_not_at_once():
    running, most = 0, 0
    lock = threading.Lock()

    def piece(_stop: object = None) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        threading.Event().wait(0.01)  # holds the worker a moment: a second thread would overlap
        with lock:
            running -= 1

    await asyncio.gather(*[in_worker(piece) for _ in range(4)], *[off_loop(piece) for _ in range(4)])
    assert most == 1


async def test_a_piece_sees_the_callers_context_variables():
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("the caller's")
    assert await in_worker(var.get) == "the caller's"
