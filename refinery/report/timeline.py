"""Where each run's bar sits in the waterfall: its start and length as shares of the whole run.
Pure. Runs without times get equal slots in trace order, so the tree still reads in order.

A trace of more than `SHOW_ALL` runs shows the runs that matter — failed, cited, the decisive
step, each with its neighbours, and the first and last few — and counts the rest in gap rows.
Why: a timeline of 23,000 chat steps was a 10 MB report nobody could read, built in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from refinery.report.view import RunRow

MIN_WIDTH = 0.6  # percent: a 1 ms span stays visible beside a 10 minute one
SHOW_ALL = 400  # runs; a bigger trace's timeline shows the runs that matter
EDGE = 10  # runs shown at each end of a big trace's timeline


@dataclass(frozen=True)
class Bar:
    row: RunRow
    left: float  # percent of the waterfall's width
    width: float
    timed: bool


@dataclass(frozen=True)
class Gap:
    """Consecutive runs the timeline leaves out (none failed, none cited)."""

    first_seq: int
    last_seq: int

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1

    @property
    def text(self) -> str:
        return f"… {self.count} runs (#{self.first_seq}–#{self.last_seq}) not shown: none failed, none cited"


def shown(rows: list[RunRow]) -> list[int | Gap]:
    """The indexes of `rows` the timeline shows, in order, with gaps for the runs it leaves out."""
    if len(rows) <= SHOW_ALL:
        return list(range(len(rows)))
    keep = set(range(EDGE)) | set(range(len(rows) - EDGE, len(rows)))
    for i, r in enumerate(rows):
        if r.status == "error" or r.cited or r.decisive:
            keep.update((i - 1, i, i + 1))
    out: list[int | Gap] = []
    gap_from: int | None = None
    for i in range(len(rows)):
        if i not in keep:
            gap_from = i if gap_from is None else gap_from
            continue
        if gap_from is not None:
            out.append(Gap(rows[gap_from].seq, rows[i - 1].seq))
            gap_from = None
        out.append(i)
    return out


def bars(rows: list[RunRow]) -> list[Bar | Gap]:
    """The waterfall: a bar for each run shown (placed against the whole run), a gap for the rest."""
    timed = all(r.start_ms is not None and r.duration_ms is not None for r in rows)
    span = (max((r.start_ms or 0) + (r.duration_ms or 0) for r in rows) or 1.0) if rows else 1.0
    n = len(rows) or 1
    out: list[Bar | Gap] = []
    for i in shown(rows):
        if isinstance(i, Gap):
            out.append(i)
        elif timed:
            r = rows[i]
            left = 100 * (r.start_ms or 0) / span
            width = max(MIN_WIDTH, 100 * (r.duration_ms or 0) / span)
            out.append(
                Bar(
                    r,
                    round(min(left, 100 - MIN_WIDTH), 2),
                    round(min(width, 100 - min(left, 100 - MIN_WIDTH)), 2),
                    True,
                )
            )
        else:
            out.append(Bar(rows[i], round(100 * i / n, 2), round(max(MIN_WIDTH, 100 / n), 2), False))
    return out


def duration_text(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"
