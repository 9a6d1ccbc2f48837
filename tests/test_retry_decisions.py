"""`next_wait`: the retry decision as a table — failure, status, headers, attempts → wait or give up."""

from __future__ import annotations

import pytest

from refinery.errors import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    ConfigurationError,
    NotFoundError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from refinery.wire.rate_budget import RateBudget
from refinery.wire.retry import Attempts, Retry, RetryPolicy, next_wait
from refinery.wire.transport import ApiSettings, OpenAITransport

POLICY = RetryPolicy(
    max_retries=3, backoff_initial_s=0.5, backoff_max_s=8.0, max_rate_limit_retries=4, max_rate_limit_wait_s=600.0
)
HALF = lambda: 0.5  # noqa: E731  jitter at its midpoint: backoff = ceiling * 0.75


def rate_limit():
    return RateLimitError("slow down", status=429)


CASES = [
    # (name, failure, status, headers, attempts, expected)
    ("quota never", QuotaExceededError("quota", status=429), 429, {"retry-after": "1"}, Attempts(), None),
    ("429 waits retry-after-ms", rate_limit(), 429, {"retry-after-ms": "1500"}, Attempts(), Retry(1.5, "rate_limit")),
    ("429 waits retry-after", rate_limit(), 429, {"retry-after": "7"}, Attempts(), Retry(7.0, "rate_limit")),
    (
        "429 waits the exhausted reset",
        rate_limit(),
        429,
        {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"},
        Attempts(),
        Retry(360.0, "rate_limit"),
    ),
    ("429 with no hint: 60-120 s", rate_limit(), 429, {}, Attempts(), Retry(90.0, "rate_limit")),
    ("429 past the count", rate_limit(), 429, {"retry-after": "1"}, Attempts(rate_limited=4), None),
    (
        "429 past the total wait",
        rate_limit(),
        429,
        {"retry-after": "100"},
        Attempts(rate_limited=1, rate_limit_waited_s=550.0),
        None,
    ),
    (
        "429 with x-should-retry false",
        rate_limit(),
        429,
        {"retry-after": "1", "x-should-retry": "false"},
        Attempts(),
        None,
    ),
    ("500 backs off", ServerError("boom", status=500), 500, {}, Attempts(), Retry(0.375, "transient")),
    ("503 third retry", ServerError("busy", status=503), 503, {}, Attempts(transient=2), Retry(1.5, "transient")),
    ("503 out of retries", ServerError("busy", status=503), 503, {}, Attempts(transient=3), None),
    (
        "503 short hint wins",
        ServerError("busy", status=503),
        503,
        {"retry-after": "2"},
        Attempts(),
        Retry(2.0, "transient"),
    ),
    (
        "503 long hint ignored",
        ServerError("busy", status=503),
        503,
        {"retry-after": "3600"},
        Attempts(),
        Retry(0.375, "transient"),
    ),
    ("timeout backs off", APITimeoutError("slow"), 0, {}, Attempts(), Retry(0.375, "transient")),
    ("connection error backs off", APIConnectionError("reset"), 0, {}, Attempts(), Retry(0.375, "transient")),
    ("400 never", BadRequestError("bad", status=400), 400, {}, Attempts(), None),
    ("404 never", NotFoundError("gone", status=404), 404, {}, Attempts(), None),
    (
        "400 with x-should-retry true",
        BadRequestError("flaky", status=400),
        400,
        {"x-should-retry": "true"},
        Attempts(),
        Retry(0.375, "transient"),
    ),
    (
        "500 with x-should-retry false",
        ServerError("boom", status=500),
        500,
        {"x-should-retry": "false"},
        Attempts(),
        None,
    ),
    ("200 not JSON never", APIConnectionError("not JSON"), 200, {}, Attempts(), None),
]


@pytest.mark.parametrize(
    ("failure", "status", "headers", "attempts", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_next_wait(failure, status, headers, attempts, expected):
    assert next_wait(failure, status, headers, attempts, POLICY, HALF) == expected


def test_backoff_grows_and_is_capped():
    waits = [POLICY.backoff(n, lambda: 1.0) for n in range(1, 8)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_attempts_count_each_kind_apart():
    a = Attempts()
    a.record(Retry(2.0, "rate_limit"))
    a.record(Retry(0.5, "transient"))
    a.record(Retry(3.0, "rate_limit"))
    assert (a.rate_limited, a.transient, a.rate_limit_waited_s) == (2, 1, 5.0)


async def test_a_reservation_left_open_is_given_back():
    budget = RateBudget(tpm=10_000)
    async with budget.reserve(4000) as ticket:
        assert budget.tokens.level < 10_000 - 4000
    assert ticket.closed and budget.stats.in_flight == 0
    assert budget.tokens.level == pytest.approx(10_000, rel=1e-3)


async def test_a_settled_reservation_is_charged_what_it_used():
    budget = RateBudget(tpm=10_000)
    async with budget.reserve(4000) as ticket:
        ticket.settle(1000, {})
    assert budget.tokens.level == pytest.approx(9000, rel=1e-3)


def test_the_transport_builds_its_budget_on_its_own_clock_with_the_limits_given():
    def clock():
        return 42.0

    t = OpenAITransport(ApiSettings(api_key="sk-x"), clock=clock, tpm=30_000, rpm=100)
    assert t.budget.clock is clock and t.budget.tokens.capacity == 30_000 and t.budget.requests.capacity == 100


def test_limits_and_a_budget_object_together_are_refused():
    with pytest.raises(ConfigurationError, match="not both"):
        OpenAITransport(ApiSettings(api_key="sk-x"), budget=RateBudget(tpm=1000), tpm=2000)


def test_a_404_without_an_api_error_body_points_at_the_base_url():
    from refinery.wire.transport import error_from_response

    wrong_path = error_from_response(404, {}, "404: Not Found")
    assert "check OPENAI_BASE_URL (it usually ends in /v1)" in str(wrong_path)
    unknown_model = error_from_response(
        404, {}, {"error": {"message": "The model `gpt-9` does not exist", "code": "model_not_found"}}
    )
    assert "OPENAI_BASE_URL" not in str(unknown_model)
