"""Blocking work run off the event loop, stoppable when the awaiting task is cancelled.

Why: loading, parsing, rendering, redacting and spooling a trace are CPU and disk work (seconds for
a big trace); run inside `async def`, they stop a host's event loop — its web server, the other
items of a batch, MCP requests — for all that time. They run in a worker thread instead. A thread
cannot be killed, so the work is handed a `threading.Event` it checks between pieces (a rendered
file, a run): cancelling the awaiting task sets it, waits for the thread to stop at its next check
(so nothing is left writing a spool or a folder), and lets the cancellation go on.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["Stopped", "off_loop"]

T = TypeVar("T")


class Stopped(Exception):
    """Raised inside offloaded work at a check after its task was cancelled (never seen by callers:
    the task's own `CancelledError` is what goes on)."""


async def off_loop(work: Callable[[threading.Event], T]) -> T:
    """`work(stop)` in a worker thread, with the caller's context variables; `stop` is set when the
    awaiting task is cancelled, and the cancellation waits for `work` to return or raise."""
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, work, stop)
    future = loop.run_in_executor(None, call)
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
