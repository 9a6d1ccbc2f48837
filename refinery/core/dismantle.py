"""Big containers emptied a piece at a time, so that letting them go never holds the GIL long. Pure.

Why: when the last reference to a container goes, everything only it holds is freed in one C call
(reference counting's cascade), and the GIL is not let go until that ends — whichever thread runs
it. At the end of a 100 MB chat log's analysis, its citation index (200,000 run ids) freed with the
analysis, and the spool's tens of thousands of file layouts freed with the result's files, each held
the host's event loop for 50–250 ms (`benchmarks/bench_loop_stall.py --where`). Emptied a piece at a
time, in refinery's worker, each piece is a short call and the interpreter hands the GIL to the loop
between them; what is left to free at the end is an empty container.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PIECE_ITEMS", "emptied"]

PIECE_ITEMS = 4096  # items freed in one call: a few hundred microseconds of small objects


def emptied(*containers: Any) -> None:
    """Each list or dict given emptied in place, a piece at a time (anything else is left as it is).
    Whoever else holds one of them sees it empty: only for what the caller alone still uses."""
    for container in containers:
        if isinstance(container, list):
            while container:
                del container[-PIECE_ITEMS:]
        elif isinstance(container, dict):
            while container:
                for _ in range(min(len(container), PIECE_ITEMS)):
                    container.popitem()
