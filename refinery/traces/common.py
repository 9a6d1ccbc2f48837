"""What every trace loader needs: timestamps in any export's format, JSON-ish values, run order.

Pure functions; the loaders stay small by sharing these.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Protocol, TypeVar

from refinery.errors import TraceFormatError

log = logging.getLogger("refinery.traces")


def parse_time(value: Any, *, source: str | None = None, field: str | None = None) -> datetime | None:
    """A UTC datetime from ISO-8601 text, epoch s/ms/µs/ns (number or digit string), or `[s, ns]`."""
    if value is None or value == "":
        return None
    try:
        return _parse_time(value, source, field)
    except (OverflowError, OSError, ValueError) as exc:  # NaN, Infinity, 1e400, year 10^30: not a time
        if isinstance(exc, TraceFormatError):
            raise
        log.warning(
            "%s: %s: %r is no usable time (%s); taken as absent", source or "trace", field or "time", value, exc
        )
        return None


# `datetime.fromtimestamp(t, tz=timezone.utc)` with the zone given by position: the same call, without
# parsing a keyword (half of its 2 µs; a big OTLP trace's load reads two times a span)
_FROM_TIMESTAMP = datetime.fromtimestamp
_UTC = timezone.utc


def nanos_time(value: Any) -> datetime | None:
    """`parse_time(value)` for OTLP's nanoseconds since the epoch — 19 ASCII digits, or an int of
    that size — else None (the caller asks `parse_time`). The same float division and call, without
    the checks other shapes need: a big trace's every span has two."""
    if type(value) is str:
        if len(value) != 19 or value[0] == "0" or not (value.isascii() and value.isdigit()):
            return None
        value = int(value)
    elif type(value) is not int or not 1e17 < value < 10**19:
        return None
    return _FROM_TIMESTAMP(value / 1e9, _UTC)


def _parse_time(value: Any, source: str | None, field: str | None) -> datetime | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return _FROM_TIMESTAMP(value[0] + value[1] / 1e9, _UTC)
    if isinstance(value, bool):
        raise TraceFormatError(f"expected a timestamp, got {value!r}", source=source, field=field)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, (int, float)):
        magnitude = abs(value)
        seconds = (
            value / 1e9
            if magnitude > 1e17
            else value / 1e6
            if magnitude > 1e14
            else value / 1e3
            if magnitude > 1e11
            else value
        )
        return _FROM_TIMESTAMP(seconds, _UTC)
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise TraceFormatError(
                f"expected an ISO-8601 timestamp, got {value!r}", source=source, field=field
            ) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise TraceFormatError(f"expected a timestamp, got {type(value).__name__}", source=source, field=field)


def maybe_json(value: Any) -> Any:
    """Strings that hold JSON objects/arrays (exports often double-encode) become the value."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[", '"') and stripped[-1:] in ("}", "]", '"'):
            try:  # what `json.loads(stripped)` gives, by the C scanner alone (its Python around it was
                # 5 of its 6 µs for a tool span's few bytes of arguments); `strip` left no white space at the end
                parsed, end = _SCAN(stripped, 0)
            except (StopIteration, ValueError, RecursionError):  # nested too deep to parse: kept as the text it is
                return value
            return parsed if end == len(stripped) else value
    return value


_SCAN = json.JSONDecoder().scan_once  # the C scanner, as `json.loads` makes it (its memo emptied after each call)


def content_text(content: Any) -> str:
    """A message's content as text: a string as it is; a list of content blocks (Anthropic's, Inspect's,
    OpenAI's parts) as their texts, one a line; nothing as ""; anything else as JSON."""
    if isinstance(content, list):
        parts = (str(b.get("text", "")) if isinstance(b, dict) else str(b) for b in content)
        return "\n".join(p for p in parts if p)
    if isinstance(content, str):
        return content
    return "" if content is None else json.dumps(content, ensure_ascii=False, default=str)


def as_dict(value: Any, key: str) -> dict[str, Any] | None:
    """Inputs/outputs as the dict `TraceRun` holds: dicts as they are, anything else under `key`."""
    value = maybe_json(value)
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    return {key: value}


class Placed(Protocol):
    """What run order and a trace's bounds read of a run (a `TraceRun`, or a span's `Skeleton`)."""

    @property
    def id(self) -> str: ...
    @property
    def parent_run_id(self) -> str | None: ...
    @property
    def start_time(self) -> datetime | None: ...
    @property
    def end_time(self) -> datetime | None: ...
    @property
    def dotted_order(self) -> str | None: ...


R = TypeVar("R", bound=Placed)


def order_runs(runs: list[R]) -> list[R]:
    """Execution order: by `dotted_order` when every run has one, else parents before children,
    siblings by start time (ties keep the export's order)."""
    if runs and all(r.dotted_order for r in runs):
        return sorted(runs, key=lambda r: r.dotted_order or "")
    ids = {r.id for r in runs}
    position = {id(r): i for i, r in enumerate(runs)}
    children: dict[str | None, list[R]] = {}
    for r in runs:
        parent = r.parent_run_id if r.parent_run_id in ids and r.parent_run_id != r.id else None
        children.setdefault(parent, []).append(r)
    floor = datetime.min.replace(tzinfo=timezone.utc)

    def key(r: R) -> tuple[datetime, int]:
        return (r.start_time or floor, position[id(r)])

    ordered: list[R] = []
    seen: set[int] = set()
    stack = sorted(children.get(None, []), key=key, reverse=True)
    while stack:
        run = stack.pop()
        if id(run) in seen:
            continue
        seen.add(id(run))
        ordered.append(run)
        stack.extend(sorted(children.get(run.id, []), key=key, reverse=True))
    # runs caught in a parent cycle are kept, in export order
    ordered.extend(r for r in runs if id(r) not in seen)
    return ordered


def span_bounds(runs: Iterable[Placed]) -> tuple[datetime | None, datetime | None]:
    """The first start and the last end, in one pass (a big chat log's runs are made as read)."""
    return time_bounds((r.start_time, r.end_time) for r in runs)


def time_bounds(times: Iterable[tuple[datetime | None, datetime | None]]) -> tuple[datetime | None, datetime | None]:
    """The first start and the last end of (start, end) pairs, in one pass (a big log's entries
    give their times without a run being made)."""
    first: datetime | None = None
    last: datetime | None = None
    for start, end in times:
        if start and (first is None or start < first):
            first = start
        if end and (last is None or end > last):
            last = end
    return first, last


def require(obj: Any, key: str, *, source: str | None, field: str) -> Any:
    if not isinstance(obj, dict) or obj.get(key) in (None, ""):
        raise TraceFormatError(f"missing required field {key!r}", source=source, field=field)
    return obj[key]
