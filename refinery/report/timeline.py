"""Where each run's bar sits in the waterfall: its start and length as shares of the whole run.
Pure. Runs without times get equal slots in trace order, so the tree still reads in order."""

from __future__ import annotations

from dataclasses import dataclass

from refinery.report.view import RunRow

MIN_WIDTH = 0.6  # percent: a 1 ms span stays visible beside a 10 minute one


@dataclass(frozen=True)
class Bar:
    row: RunRow
    left: float  # percent of the waterfall's width
    width: float
    timed: bool


def bars(rows: list[RunRow]) -> list[Bar]:
    timed = [r for r in rows if r.start_ms is not None and r.duration_ms is not None]
    if rows and len(timed) == len(rows):
        span = max((r.start_ms or 0) + (r.duration_ms or 0) for r in rows) or 1.0
        out = []
        for r in rows:
            left = 100 * (r.start_ms or 0) / span
            width = max(MIN_WIDTH, 100 * (r.duration_ms or 0) / span)
            out.append(Bar(r, round(min(left, 100 - MIN_WIDTH), 2), round(min(width, 100 - min(left, 100 - MIN_WIDTH)), 2), True))
        return out
    n = len(rows) or 1
    return [Bar(r, round(100 * i / n, 2), round(max(MIN_WIDTH, 100 / n), 2), False) for i, r in enumerate(rows)]


def duration_text(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"
