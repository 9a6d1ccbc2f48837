"""The objects that already exist kept out of the cyclic garbage collector's passes while a big
piece of work runs, and given back to it after.

Why: a pass over the oldest generation looks at every object that generation holds (the modules,
classes and functions of every imported library, the host's own objects, a loaded trace) in one C
call. Whichever thread runs it, the GIL is not let go until it ends: measured at 200 ms on a shared
2-core machine while a 10 MB trace was rendered in a worker thread, the host's event loop held all
that time. Rendering and analysing make enough long-lived objects to start such passes. Objects
frozen with `gc.freeze()` are left out of every pass (they are still freed by reference counting),
so a pass looks only at what was made since.

What the work makes and keeps is frozen too, at its next step (`survivors_frozen`, called between
rendered files, planned bodies, report rows and each piece of offloaded work). Why: the work makes
long-lived objects of its own (a 100 MB chat log's runs, as they are read; the rendering's file
layouts; a report's rows), and a full pass walks all that were made since the freeze: 100 of them
while a 100 MB trace was planned, the longest 89 ms in the worker thread; one over the 46,000 file
layouts of a 30 MB analysis 21 ms of CPU; one over a 100 MB report's rows 216 ms — the host's loop
held as long. Waiting for a full pass to say what is alive was not enough: that first pass is the
long one. So once two passes of the younger generations have moved objects to the oldest since the
last freeze (or a full pass has run), the step runs one pass of the younger generations (which finds
their garbage cycles, a fraction of a millisecond) and freezes what is left: a full pass then walks
only what two younger passes promoted. A cycle that becomes garbage after it was frozen waits, as
the objects frozen on entry do, for the first full pass after the block. Not a collector callback:
a signal handler can run inside one, and what it raises there (the CLI's `Terminated`) is lost.

The collector's settings are the host's, process-wide: nothing here turns it off or changes its
thresholds, and the objects are unfrozen (`gc.unfreeze()`) when the last piece of work that froze
them ends, so the freeze count is what it was. A host that froze objects itself (a server that
freezes before it forks) is left alone: its frozen objects are its own, and `gc.unfreeze()` would
give them back too, so nothing is frozen then.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["objects_frozen", "survivors_frozen"]

_lock = threading.Lock()
_holders = 0  # pieces of work inside `objects_frozen` now, in any thread
_froze = False  # whether the first of them froze (the host had frozen nothing)
_seen = [(0, 0)]  # passes of generations 1 and 2 counted at the last freeze
YOUNG_PASSES = 2  # generation-1 passes since the last freeze that make a step freeze again


@contextmanager
def objects_frozen() -> Iterator[None]:
    """Within this block (any number at once, in any thread), the objects that existed when it was
    entered are left out of the collector's passes; after the last one ends they are back in the
    oldest generation, and `gc.get_freeze_count()` is 0 again."""
    global _holders, _froze
    with _lock:
        if _holders == 0:
            _froze = gc.get_freeze_count() == 0
        if _froze:
            gc.freeze()  # a list moved, not walked: as quick for millions of objects as for ten
            _seen[0] = _passes()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _froze:
                _froze = False
                gc.unfreeze()


def survivors_frozen() -> None:
    """Between two steps of big work inside `objects_frozen`: when the collector has moved objects to
    the oldest generation since the last freeze (`YOUNG_PASSES` younger passes, or a full pass), the
    younger generations are collected once and what is left is frozen too (see the module's
    docstring); else nothing (a few comparisons: cheap enough for every step)."""
    if not _froze:
        return
    with _lock:
        if not (_froze and _holders > 0):
            return
        young, full = _passes()
        if full == _seen[0][1] and young - _seen[0][0] < YOUNG_PASSES:
            return
        gc.collect(1)  # the younger generations' garbage cycles found first: what is frozen was alive
        gc.freeze()
        _seen[0] = _passes()


def _passes() -> tuple[int, int]:
    stats = gc.get_stats()
    return int(stats[1]["collections"]), int(stats[2]["collections"])
