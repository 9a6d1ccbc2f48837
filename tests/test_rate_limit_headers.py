"""Reading the server's hints about when to come back."""

from __future__ import annotations

import pytest

from refinery.wire.rate_limit_headers import (
    RateLimitSnapshot,
    parse_duration,
    retry_after_seconds,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6m0s", 360.0), ("1.5s", 1.5), ("20ms", 0.02), ("1h2m3s", 3723.0), ("0s", 0.0), ("12", 12.0), ("2m", 120.0)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5x", "-3", "1s junk"])
def test_bad_durations_are_none(text):
    assert parse_duration(text) is None


def test_retry_after_ms_wins():
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5


def test_retry_after_seconds():
    assert retry_after_seconds({"Retry-After": "7"}) == 7.0


def test_reset_of_the_exhausted_budget_is_used():
    headers = {
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-reset-tokens": "6m0s",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "5000",
    }
    assert retry_after_seconds(headers) == 1.0


def test_later_reset_when_nothing_says_which_budget():
    assert retry_after_seconds({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "2.5s"}) == 2.5


def test_no_hint():
    assert retry_after_seconds({"content-type": "application/json"}) is None


def test_snapshot_reads_every_figure():
    snap = RateLimitSnapshot.from_headers(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-remaining-tokens": "29000",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-reset-tokens": "2s",
        }
    )
    assert (snap.limit_requests, snap.limit_tokens, snap.remaining_requests, snap.remaining_tokens) == (
        500,
        30000,
        499,
        29000,
    )
    assert snap.reset_requests_s == pytest.approx(0.12) and snap.reset_tokens_s == 2.0
    assert RateLimitSnapshot.from_headers({}).empty
