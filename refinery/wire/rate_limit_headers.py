"""Reading the rate-limit hints OpenAI puts on its responses. Pure functions.

A 429 `rate_limit_exceeded` says when to come back: `retry-after-ms` (milliseconds),
`retry-after` (seconds, or an HTTP date), or the `x-ratelimit-reset-requests` /
`x-ratelimit-reset-tokens` durations written like `"6m0s"`, `"1.5s"` or `"20ms"`. Waiting exactly
that long beats a blind 60–120 s sleep, which wastes minutes of budget on every hit.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text: str | None) -> float | None:
    """Seconds in a Go-style duration (`"6m0s"`, `"1.5s"`, `"20ms"`, `"1h2m3.5s"`); a bare number is seconds."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
        return value if value >= 0 else None
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    return total if pos == len(text) and pos > 0 else None


def _get(headers: Mapping[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def _int(headers: Mapping[str, str], name: str) -> int | None:
    raw = _get(headers, name)
    try:
        return int(float(raw)) if raw is not None else None
    except ValueError:
        return None


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """How long the server asks us to wait, or None when it gives no hint.

    Order: `retry-after-ms`, `retry-after` (seconds or HTTP date), then the reset of whichever
    budget is exhausted (`x-ratelimit-remaining-* == 0`), else the later of the two resets.
    """
    ms = _get(headers, "retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
            if value >= 0:
                return value
        except ValueError:
            pass
    ra = _get(headers, "retry-after")
    if ra is not None:
        try:
            value = float(ra)
            if value >= 0:
                return value
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(ra) if ra.strip() else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - (time.time() if now is None else now))
    resets: dict[str, float] = {}
    for kind in ("requests", "tokens"):
        d = parse_duration(_get(headers, f"x-ratelimit-reset-{kind}"))
        if d is not None:
            resets[kind] = d
    if not resets:
        return None
    exhausted = [resets[k] for k in resets if _int(headers, f"x-ratelimit-remaining-{k}") == 0]
    return max(exhausted) if exhausted else max(resets.values())


@dataclass(frozen=True)
class RateLimitSnapshot:
    """The `x-ratelimit-*` figures of one response (None where a header is absent)."""

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> "RateLimitSnapshot":
        return cls(
            limit_requests=_int(headers, "x-ratelimit-limit-requests"),
            limit_tokens=_int(headers, "x-ratelimit-limit-tokens"),
            remaining_requests=_int(headers, "x-ratelimit-remaining-requests"),
            remaining_tokens=_int(headers, "x-ratelimit-remaining-tokens"),
            reset_requests_s=parse_duration(_get(headers, "x-ratelimit-reset-requests")),
            reset_tokens_s=parse_duration(_get(headers, "x-ratelimit-reset-tokens")),
        )

    @property
    def empty(self) -> bool:
        return all(v is None for v in vars(self).values())
