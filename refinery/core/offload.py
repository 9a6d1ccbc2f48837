"""Blocking work run off the event loop, stoppable when the awaiting task is cancelled.

Why: loading, parsing, rendering, redacting and spooling a trace are CPU and disk work (seconds for
a big trace); run inside `async def`, they stop a host's event loop — its web server, the other
items of a batch, MCP requests — for all that time. They run in a worker thread instead. A thread
cannot be killed, so the work is handed a `threading.Event` it checks between pieces (a rendered
file, a run): cancelling the awaiting task sets it, waits for the thread to stop at its next check
(so nothing is left writing a spool or a folder), and lets the cancellation go on.

All of refinery's offloaded work runs in one thread of its own, one piece after another. Why: a
thread holding the GIL is made to give it up every 5 ms, but not necessarily to the event loop:
with six worker threads busy (eight Stage 1 groups at once, each sizing its request), the loop
waited 635 ms for its turn on a shared 2-core machine where one busy worker cost it 127 ms. The
GIL lets only one thread run Python at a time anyway, so one worker costs little speed; and the
host's default executor is left to the host.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["Stopped", "in_worker", "off_loop", "worker_thread"]

T = TypeVar("T")
P = ParamSpec("P")

_worker: ThreadPoolExecutor | None = None
_worker_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """refinery's one worker thread (made on first use; the process's, shared by every loop)."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refinery-worker")
        return _worker


def worker_thread() -> bool:
    """Whether this code runs in refinery's worker thread (the offloaded work's)."""
    return threading.current_thread().name.startswith("refinery-worker")


async def in_worker(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`asyncio.to_thread`, in refinery's one worker thread (see the module's docstring)."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await loop.run_in_executor(_executor(), call)


class Stopped(Exception):
    """Raised inside offloaded work at a check after its task was cancelled (never seen by callers:
    the task's own `CancelledError` is what goes on)."""


async def off_loop(work: Callable[[threading.Event], T]) -> T:
    """`work(stop)` in a worker thread, with the caller's context variables; `stop` is set when the
    awaiting task is cancelled, and the cancellation waits for `work` to return or raise."""
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, work, stop)
    future = loop.run_in_executor(_executor(), call)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        try:
            await asyncio.wait([future])  # the thread ends at its next check; nothing runs on after us
        finally:
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: a `Stopped` (or any error) of a cancelled run is not reported
        raise
