"""Spans left in the trace file, read back in run order: what lets a big OTLP trace be `LazyRuns`.

Why: a span with distinct text costs about 2.5× its JSON as a `TraceRun` (strings, dicts, the
model), so a 100 MB OTLP trace held as runs took 4.6× the file. Run order is a tree walk over
every span (parents first, siblings by start time), so the loader makes each span's run once to
learn its place (`Skeleton`: ids and times only), keeps that order as a packed array, and drops
the run; the runs are made again, one at a time, whenever they are read.

Pure bookkeeping: what a span means stays in `otel.py`.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, overload

from refinery.core.models import RunType, TraceRun
from refinery.traces.json_stream import LazyArray

__all__ = ["Hoisted", "Skeleton", "SpanEntries", "SpanEntry"]

SpanEntry = tuple[Any, "dict[str, Any] | None", int]  # the span, its resource, its index among the spans


@dataclass(slots=True)
class Skeleton:
    """What run order and the trace's own fields need of a run, without its text."""

    id: str
    parent_run_id: str | None
    start_time: datetime | None
    end_time: datetime | None
    trace_id: str
    index: int  # among the spans, in file order
    service: str | None  # its resource's `service.name`
    dotted_order: str | None = None  # spans have none: order is the tree's
    # what the run's making would find again from the same span (kept so that a pass need not)
    run_type: RunType | None = None
    error: str | None = None
    status: str | None = None

    @classmethod
    def of(cls, run: TraceRun, index: int) -> Skeleton:
        resource = run.metadata.get("resource")
        service = resource.get("service.name") if isinstance(resource, dict) else None
        return cls(
            run.id,
            run.parent_run_id,
            run.start_time,
            run.end_time,
            run.trace_id,
            index,
            service,
            None,
            run.run_type,
            run.error,
            run.status,
        )


class SpanEntries(Sequence[SpanEntry]):
    """The spans of several arrays (lists or `LazyArray`s, each with its resource) as one
    sequence, in run order once `order` is set.

    `positions` holds each span's position among the arrays' items; `order` the span index of
    each run.
    """

    def __init__(self, parts: Sequence[tuple[Sequence[Any], dict[str, Any] | None]]) -> None:
        self._parts = list(parts)
        self._starts = array("q", [0])
        for items, _ in self._parts:
            self._starts.append(self._starts[-1] + len(items))
        self.positions: array[int] = array("q")
        self.order: array[int] = array("q")

    def __len__(self) -> int:
        return len(self.order)

    @overload
    def __getitem__(self, i: int) -> SpanEntry: ...
    @overload
    def __getitem__(self, i: slice) -> list[SpanEntry]: ...
    def __getitem__(self, i: int | slice) -> SpanEntry | list[SpanEntry]:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step == 1:  # (the renderer reads its runs a file's few at a time: as a pass reads them)
                return list(self._between(start, max(start, stop)))
            with self._reading() as read:
                return [read(self.order[k]) for k in range(start, stop, step)]
        with self._reading() as read:
            return read(self.order[i])

    def __iter__(self) -> Iterator[SpanEntry]:
        return self._between(0, len(self.order))

    def _between(self, i: int, n: int) -> Iterator[SpanEntry]:
        """Runs `i` to `n - 1`, in run order, each stretch of spans that the file holds one after the
        other read as a block (run order is mostly file order: one seek and parse a span cost about a
        third more)."""
        order, positions, starts = self.order, self.positions, self._starts
        with ExitStack() as stack:
            readers: dict[int, Callable[[int, int], Iterator[Any]]] = {}
            while i < n:
                at = positions[order[i]]
                part = bisect_right(starts, at) - 1
                j, end = i + 1, starts[part + 1]
                while j < n and positions[order[j]] == at + (j - i) < end:
                    j += 1
                items, resource = self._parts[part]
                if part not in readers:
                    readers[part] = (
                        stack.enter_context(items.reading_between())
                        if isinstance(items, LazyArray)
                        else lambda start, stop, items=items: iter(items[start:stop])
                    )
                first = at - starts[part]
                for k, item in zip(order[i:j], readers[part](first, first + j - i)):
                    yield item, resource, k
                i = j

    @contextmanager
    def reading(self) -> Iterator[Callable[[int], SpanEntry]]:
        """Entries by their place in run order, in any order, each array's file opened once for all
        (`LazyArray.reading`'s: `LazyRuns` reads the failed runs so)."""
        with self._reading() as read:
            order = self.order
            yield lambda i: read(order[range(len(order))[i]])

    @contextmanager
    def _reading(self) -> Iterator[Callable[[int], SpanEntry]]:
        """Spans by index, in any order; each array's file opened once for the whole pass."""
        with ExitStack() as stack:
            readers: dict[int, Callable[[int], Any]] = {}

            def read(k: int) -> SpanEntry:
                at = self.positions[k]
                part = bisect_right(self._starts, at) - 1
                items, resource = self._parts[part]
                if part not in readers:
                    readers[part] = (
                        stack.enter_context(items.reading()) if isinstance(items, LazyArray) else items.__getitem__
                    )
                return readers[part](at - self._starts[part]), resource, k

            yield read


@dataclass
class Hoisted:
    """The resource and the attributes every span repeats, moved to the trace once.

    Exporters stamp the same resource (and often the same project attributes) on every span; left
    per span they would fill each rendered run with identical noise. Learnt one run at a time
    (`see`), so no pass needs every run at once.
    """

    resource: dict[str, Any] | None = None
    common: dict[str, Any] | None = None
    _runs: int = 0
    _same_resource: bool = True

    def see(self, run: TraceRun) -> None:
        self.see_values(run.metadata.get("resource"), run.metadata.get("attributes") or {})

    @property
    def reads_attributes(self) -> bool:
        """Whether `see_values` still reads a run's attributes: not once no attribute is common."""
        return self._runs == 0 or bool(self.common)

    def see_values(self, res: dict[str, Any] | None, attrs: dict[str, Any]) -> None:
        """`see` a run from the resource and the attributes it keeps (a span's skeleton gives them)."""
        if self._runs == 0:
            self.resource, self.common = res, dict(attrs)
        else:
            self._same_resource = self._same_resource and res == self.resource
            if self.common:
                self.common = {k: v for k, v in self.common.items() if k in attrs and attrs[k] == v}
        self._runs += 1

    def merge(self, other: Hoisted, resource: dict[str, Any] | None) -> None:
        """`see_values` of every run `other` saw (with no resource), as if each were seen here with
        `resource`: what every one of them repeats is what `other` kept."""
        if other._runs == 0:
            return
        if self._runs == 0:
            self.resource, self.common = resource, dict(other.common or {})
        else:
            self._same_resource = self._same_resource and resource == self.resource
            if self.common:
                kept = other.common or {}
                self.common = {k: v for k, v in self.common.items() if k in kept and kept[k] == v}
        self._runs += other._runs

    def settle(self, first: TraceRun | None) -> dict[str, Any]:
        """What goes on the trace, its keys in the order of the first run's (in run order)."""
        if self._runs < 2:
            self.resource = self.common = None
            return {}
        if not (self.resource and self._same_resource):
            self.resource = None
        if self.common and first is not None:
            order = list(first.metadata.get("attributes") or {})
            self.common = {k: self.common[k] for k in sorted(self.common, key=order.index)}
        out: dict[str, Any] = {}
        if self.resource:
            out["resource"] = self.resource
        if self.common:
            out["common_attributes"] = self.common
        return out

    def apply(self, run: TraceRun) -> TraceRun:
        """The run without what the trace now holds once."""
        if self.resource:
            run.metadata.pop("resource", None)
        if self.common:
            rest = {k: v for k, v in (run.metadata.get("attributes") or {}).items() if k not in self.common}
            if rest:
                run.metadata["attributes"] = rest
            else:
                run.metadata.pop("attributes", None)
        return run
