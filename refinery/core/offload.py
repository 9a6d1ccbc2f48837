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

One worker is not enough on its own: a thread waiting for the GIL asks its holder to let go only
after waiting 5 ms, and every blocking call of the holder (a `pread` of one spooled file, a `pwrite`)
lets the GIL go and signals the waiter, which wakes, finds the GIL taken again and starts another
5 ms wait — so a worker that does such I/O more often than every 5 ms is never asked, and keeps the
GIL. A worker reading a spooled file every 70 µs kept the loop from running 160–490 ms at a time (a
test script doing a `pread` every 2 ms: 23 s). So while refinery's work runs, the loop that handed it
over keeps a pulse (every 5 ms it notes the time and sets an event), and the worker calls `breathe()`
where it does such I/O: if the pulse is late, the worker waits on the event, GIL let go, until the
loop has run.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from refinery.core.gc_freeze import survivors_frozen

__all__ = ["Stopped", "breathe", "in_worker", "off_loop", "worker_thread"]

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


BEAT_S = 0.005  # how often the loop refreshes its pulse while work it handed over runs
LATE_S = 0.015  # a pulse older than this: the loop is kept from running (or busy); the worker lets go
MOST_S = 0.1  # the longest one `breathe` waits (a loop busy with its own work does not stop ours)


class _Pulse:
    """A loop's pulse while work it handed over is in flight: `beat` is the loop's last turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # the map's value must not keep its key alive
        self.beat = time.monotonic()
        self.ran = threading.Event()  # set at each of the loop's beats: what a late worker waits on
        self.pending = 0
        self._handle: asyncio.TimerHandle | None = None

    def hold(self) -> None:
        self.pending += 1
        if self._handle is None:
            self.beat = time.monotonic()
            self._handle = self._later()

    def release(self) -> None:
        self.pending -= 1
        if self.pending == 0 and self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        self.beat = time.monotonic()
        self.ran.set()
        self._handle = self._later()

    def _later(self) -> asyncio.TimerHandle | None:
        loop = self._loop()
        return None if loop is None or loop.is_closed() else loop.call_later(BEAT_S, self._tick)


_pulses: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pulse] = weakref.WeakKeyDictionary()
_PULSE: contextvars.ContextVar[_Pulse | None] = contextvars.ContextVar("refinery_pulse", default=None)


def _pulse(loop: asyncio.AbstractEventLoop) -> _Pulse:
    pulse = _pulses.get(loop)
    if pulse is None:
        pulse = _pulses[loop] = _Pulse(loop)
    return pulse


def breathe() -> None:
    """Where offloaded work does blocking I/O: if the loop that handed it over has not run for
    `LATE_S`, let the GIL go until it has (at most `MOST_S`). A no-op outside offloaded work."""
    pulse = _PULSE.get()
    if pulse is None or time.monotonic() - pulse.beat < LATE_S:
        return
    # the loop's next beat sets the event: waiting on it lets the GIL go until the loop has run (a
    # short sleep did not: on a busy machine the loop's thread woke too late and the worker took
    # the GIL back first)
    pulse.ran.clear()
    if time.monotonic() - pulse.beat >= LATE_S:  # no beat between the check and the clear
        pulse.ran.wait(MOST_S)


def _handed_over(loop: asyncio.AbstractEventLoop, func: Callable[[], T]) -> asyncio.Future[T]:
    """`func` queued for the worker, run in a copy of the caller's context that knows the loop's pulse."""
    pulse = _pulse(loop)
    context = contextvars.copy_context()
    context.run(_PULSE.set, pulse)
    pulse.hold()
    future = loop.run_in_executor(_executor(), functools.partial(context.run, _a_step, func))
    future.add_done_callback(lambda _f: pulse.release())
    return future


def _a_step(func: Callable[[], T]) -> T:
    """One piece of offloaded work, and after it what big work keeps frozen (`core.gc_freeze`)."""
    try:
        return func()
    finally:
        survivors_frozen()


def worker_thread() -> bool:
    """Whether this code runs in refinery's worker thread (the offloaded work's)."""
    return threading.current_thread().name.startswith("refinery-worker")


async def in_worker(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`asyncio.to_thread`, in refinery's one worker thread (see the module's docstring)."""
    loop = asyncio.get_running_loop()
    return await _handed_over(loop, functools.partial(func, *args, **kwargs))


class Stopped(Exception):
    """Raised inside offloaded work at a check after its task was cancelled (never seen by callers:
    the task's own `CancelledError` is what goes on)."""


async def off_loop(work: Callable[[threading.Event], T]) -> T:
    """`work(stop)` in a worker thread, with the caller's context variables; `stop` is set when the
    awaiting task is cancelled, and the cancellation waits for `work` to return or raise."""
    stop = threading.Event()
    loop = asyncio.get_running_loop()
    future = _handed_over(loop, functools.partial(work, stop))
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
