"""The client-side rate budget, with an injected clock: admission, learning, surprises."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from refinery.wire.rate_budget import RateBudget
from refinery.wire.responses_client import ResponsesClient
from refinery.wire.responses_request_builder import (
    build_responses_body_no_tools,
)
from tests.helpers import BASE, FakeClock, SimClock, response_json, sent

HEADERS = {
    "x-ratelimit-limit-tokens": "6000",
    "x-ratelimit-remaining-tokens": "6000",
    "x-ratelimit-reset-tokens": "0s",
    "x-ratelimit-limit-requests": "100",
    "x-ratelimit-remaining-requests": "99",
    "x-ratelimit-reset-requests": "600ms",
}


def budget(clock: FakeClock, **kw) -> RateBudget:
    kw.setdefault("safety_margin", 0.0)  # exact arithmetic in these tests; the margin has its own
    return RateBudget(clock=clock, sleep=clock.sleep, **kw)


async def test_admits_while_the_budget_holds_then_waits_for_refill(clock):
    b = budget(clock, tpm=6000)
    r = [await b.acquire(2000) for _ in range(3)]
    assert clock.sleeps == []  # 6000 tokens: three 2000-token requests go at once
    t0 = clock.now
    fourth = asyncio.ensure_future(b.acquire(2000))
    await asyncio.sleep(0)
    assert not fourth.done()
    b.settle(r[0], 2000, {})  # one finishes, having used all it reserved
    await fourth
    assert clock.now - t0 == pytest.approx(20.0, abs=0.3)  # 2000 tokens at 100 tokens/s
    assert b.stats.waited == 1 and b.stats.admitted == 4


async def test_settling_below_the_reservation_gives_tokens_back(clock):
    b = budget(clock, tpm=6000)
    res = [await b.acquire(3000) for _ in range(2)]
    b.settle(res[0], 1000, {})  # used 1000 of its 3000: 2000 come back at once
    t0 = clock.now
    await b.acquire(2000)
    assert clock.now == t0 and clock.sleeps == []


async def test_requests_per_minute_are_budgeted_too(clock):
    b = budget(clock, rpm=2)
    for _ in range(2):
        b.settle(await b.acquire(10), 10, {})  # answered at once
    t0 = clock.now
    await b.acquire(10)
    assert clock.now - t0 == pytest.approx(30.0, abs=0.3)  # one request every 30 s


async def test_a_reservation_holds_the_top_of_the_bucket_while_its_request_may_be_on_its_way(clock):
    """Until a request reaches the server, the server's full bucket gains nothing: so ours may
    not count refill above the capacity less what is on its way (here, for the 2 s it may take)."""
    from refinery.testing.faults import RateLimiter

    b, server = budget(clock, tpm=6000, arrival_s=2.0), RateLimiter(tpm=6000, clock=clock)
    await b.acquire(3000)
    clock.now += 1.5  # the request reaches the server only now, on a loaded machine
    assert server.admit(3000)[0]
    assert not server.admit(3150)[0]  # 3,000 left: the 150 refilled in 1.5 s were lost at the top
    assert b.tokens.wait_for(3150) > 0  # and the budget does not count them either


async def test_a_hold_ends_when_the_time_to_arrive_has_passed(clock):
    b = budget(clock, tpm=6000, arrival_s=2.0)
    await b.acquire(3000)  # in flight for long: the server took it long ago and refills to the top
    clock.now += 40.0
    assert b.tokens.wait_for(6000) == 0 and b.tokens.level == pytest.approx(6000)


async def test_no_limit_costs_no_wait(clock):
    b = budget(clock)
    first = await b.acquire(10**6)
    b.settle(first, 10, {})  # the first answer carried no rate-limit headers: no limits
    for _ in range(1000):
        b.settle(await b.acquire(10**6), 10, {})
    assert clock.sleeps == [] and b.stats.waited == 0


async def test_unknown_limits_probe_with_one_request_then_learn_from_headers(clock):
    b = budget(clock)
    probe = await b.acquire(1000)
    second = asyncio.ensure_future(b.acquire(1000))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not second.done()  # waits for the probe's answer
    b.settle(probe, 500, {**HEADERS, "x-ratelimit-remaining-tokens": "1500"})
    await second
    assert b.tokens.capacity == 6000 and b.requests.capacity == 100
    assert b.tokens.level == pytest.approx(500, abs=5)  # 1500 remaining - the 1000 just reserved
    t0 = clock.now
    await b.acquire(1000)
    assert clock.now - t0 == pytest.approx(5.0, abs=0.3)  # 500 more tokens at 100/s


async def test_headers_only_ever_tighten_the_local_view(clock):
    b = budget(clock, tpm=6000)
    held = await b.acquire(4000)
    b.observe({**HEADERS, "x-ratelimit-remaining-tokens": "6000"})  # a stale snapshot
    assert b.tokens.level == pytest.approx(2000)
    b.observe({**HEADERS, "x-ratelimit-remaining-tokens": "500"})  # someone else spends too
    assert b.tokens.level == pytest.approx(500)
    assert held.tokens == 4000


async def test_a_surprise_429_blocks_admission_and_raises_the_allowance(clock):
    b = budget(clock, tpm=60000)
    res = await b.acquire(1000, "stage1")
    b.throttled(res, {"retry-after-ms": "2500"})
    t0 = clock.now
    nxt = await b.acquire(1000, "stage1")
    assert clock.now - t0 == pytest.approx(2.5, abs=0.01)
    assert nxt.tokens == pytest.approx(1250)  # tightened estimate for that class
    assert b.stats.throttled == 1


async def test_allowance_is_learned_from_usage_per_class(clock):
    b = budget(clock, tpm=10**6)
    b.settle(await b.acquire(1000, "stage1"), 3000, {})  # retrieval added 2000 tokens
    assert b.estimate(1000, "stage1") == pytest.approx(3000)
    assert b.estimate(1000, "stage4") == pytest.approx(1000)


async def test_the_safety_margin_reserves_a_little_more_than_the_estimate(clock):
    b = budget(clock, tpm=6000, safety_margin=0.05)
    res = await b.acquire(2000)
    assert res.tokens == pytest.approx(2100)
    assert b.tokens.level == pytest.approx(3900)


async def test_connection_errors_give_the_reservation_back(clock):
    b = budget(clock, tpm=6000, rpm=10)
    res = await b.acquire(6000)
    b.cancel(res)
    t0 = clock.now
    await b.acquire(6000)
    assert clock.now == t0


async def test_client_shares_one_budget_and_surfaces_no_429(make_transport, mocked, clock):
    """Eight concurrent calls under a 6000-TPM budget learned from the first answer's headers."""
    url = f"{BASE}/responses"
    reply = response_json('{"a": "b"}')
    reply["usage"].update(input_tokens=100, output_tokens=1800, total_tokens=1900)
    for _ in range(8):
        mocked.post(url, payload=reply, headers=HEADERS)
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    body = build_responses_body_no_tools("gpt-4o", "s", "u", schema, max_output_tokens=1900)
    async with ResponsesClient(transport=make_transport()) as client:
        results = await asyncio.gather(*(client.create(body, label=f"t{i}:stage4") for i in range(8)))
    assert all(r["status"] == "completed" for r in results)
    assert len(sent(mocked, "POST", url)) == 8
    budget_stats = client.transport.budget.stats
    assert budget_stats.throttled == 0 and budget_stats.waited >= 1
    # After the probe (whose use these static headers never show), 7 x 1900 tokens go through a
    # 6000-token bucket refilling at 100 tokens/s: at least ~73 s of (fake) waiting.
    assert clock.now - 1000.0 >= (7 * 1900 - 6000) / 100 - 1


def rendered_bodies() -> list[dict]:
    """Every `/responses` body of a few real analyses (the repo's fixtures, and TRAIL traces when
    ../shared is present), Stage 1 reading its groups inline as it does by default."""
    from pathlib import Path

    from refinery.analysis.plan import planned_requests
    from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
    from refinery.app.inputs import expectation_for
    from refinery.traces import load_trace
    from tests.helpers import SHARED

    fixtures = Path(__file__).parent / "fixtures"
    paths = [fixtures / n for n in ("otlp_trace.json", "langsmith_runs.json", "plain_chat.json")]
    paths += sorted((SHARED / "eval-data" / "trail" / "traces").glob("*/*.json"))[:4]
    bodies = []
    for path in paths:
        trace = load_trace(path)
        analyst = StagedFailureAnalyst()
        expectation = expectation_for(str(fixtures / "expectation.json"), trace)
        bodies += [b for _, b in planned_requests(analyst, trace, analyst.render(trace, expectation), expectation)]
    return bodies


def worst_case(body: dict) -> int:
    from refinery.core.tokens import worst_case_tokens

    return worst_case_tokens(body)  # what `ResponsesClient.create` reserves


def test_the_budgets_reservation_covers_what_the_server_takes_at_admission():
    """The cause of the 429s at the floor: the client's estimate skipped line breaks and
    indentation, which tokenizers (and the test server) count, so for rendered traces the server
    took up to 7 % more than the client had reserved for each request in flight."""
    from refinery.testing.request_text import admission_cost  # the server's own rule

    budget = RateBudget(tpm=10**9)
    short = [
        (admission_cost(b), budget.estimate(worst_case(b), None))
        for b in rendered_bodies()
        if admission_cost(b) > budget.estimate(worst_case(b), None)
    ]
    assert short == []


async def test_requests_admitted_by_the_budget_are_admitted_by_the_server_at_the_floor():
    """Rendered bodies eight at a time through the budget and the server's limiter on one clock,
    the TPM binding throughout: the server turns none away."""
    from refinery.testing.faults import RateLimiter
    from refinery.testing.request_text import admission_cost

    clock = FakeClock()
    bodies = rendered_bodies()
    tpm = 2 * max(admission_cost(b) for b in bodies)
    budget = RateBudget(tpm=tpm, clock=clock, sleep=clock.sleep)
    limiter = RateLimiter(tpm=tpm, clock=clock)
    queue = list(bodies) * 2
    rejected = []

    async def worker() -> None:
        while queue:
            body = queue.pop()
            cost = admission_cost(body)
            async with budget.reserve(worst_case(body)) as ticket:
                admitted, headers, _ = limiter.admit(cost)
                if not admitted:
                    rejected.append(cost)
                    ticket.throttled(headers)
                    continue
                await clock.sleep(2.0)
                used = cost - int(body.get("max_output_tokens") or 4096) + 300  # its input and a short answer
                limiter.charge(used, cost)
                ticket.settle(used, limiter.headers())

    await asyncio.gather(*(worker() for _ in range(8)))
    assert rejected == [] and budget.stats.waited > 0  # the budget bound, and no request was turned away


async def test_the_server_admits_what_the_budget_admits_on_a_loaded_machine():
    """Rendered bodies eight at a time through the budget and the server's limiter on one clock
    that lets them overlap, with a loaded machine's delays: a request reaches the server up to
    0.6 s after its reservation, an answer reaches the client up to 0.4 s after the server
    charged it, and every `file_search` returns its `max_num_results` whole chunks, charged when
    the call completes. The budget binds, and the server turns none away."""
    from refinery.testing.faults import RateLimiter
    from refinery.testing.request_text import admission_cost, request_texts
    from refinery.testing.retrieval import count_tokens

    clock = SimClock()
    bodies = rendered_bodies()
    assert any(t.get("type") == "file_search" for b in bodies for t in b.get("tools") or [])
    tpm = 2 * max(admission_cost(b) for b in bodies)
    budget = RateBudget(tpm=tpm, rpm=1000, clock=clock, sleep=clock.sleep)
    limiter = RateLimiter(tpm=tpm, rpm=1000, clock=clock)
    queue = list(bodies) * 2
    arrival, answer = itertools.cycle([0.6, 0.0, 0.25, 0.05, 0.4]), itertools.cycle([0.0, 0.4, 0.1, 0.3])
    rejected = []

    def charged(body: dict) -> int:  # the server's count: input, whole chunks, a short answer
        chunks = sum(800 * int(t["max_num_results"]) for t in body.get("tools") or [] if t["type"] == "file_search")
        return count_tokens("\n".join(request_texts(body))) + chunks + 300

    async def worker() -> None:
        while queue:
            body = queue.pop()
            async with budget.reserve(worst_case(body)) as ticket:
                await clock.sleep(next(arrival))
                cost = admission_cost(body)
                admitted, headers, _ = limiter.admit(cost)
                if not admitted:
                    rejected.append(cost)
                    ticket.throttled(headers)
                    continue
                await clock.sleep(0.2)  # the server's latency
                limiter.charge(charged(body), cost)
                headers = limiter.headers()
                await clock.sleep(next(answer))
                ticket.settle(charged(body), headers)

    await clock.run(*(worker() for _ in range(8)))
    assert rejected == [] and budget.stats.waited > 0 and budget.stats.admitted == len(bodies) * 2


def test_the_worst_case_holds_every_searchs_whole_chunks_and_the_whole_output():
    from refinery.core.tokens import estimate_body_tokens, worst_case_tokens
    from refinery.wire.responses_request_builder import build_responses_body

    schema = {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
    searching = build_responses_body("gpt-4o", "vs_1", "s", "u", schema, max_num_results=5, max_output_tokens=700)
    plain = build_responses_body_no_tools("gpt-4o", "s", "u", schema, max_output_tokens=700)
    assert worst_case_tokens(searching) == estimate_body_tokens(searching) + 5 * 800 + 700
    assert worst_case_tokens(plain) == estimate_body_tokens(plain) + 700


async def test_a_searching_call_reserves_its_whole_retrieval_before_it_is_sent(make_transport, mocked, clock):
    """The server charges retrieved chunks when the call completes: the budget holds them from the start."""
    from refinery.core.tokens import worst_case_tokens
    from refinery.wire.responses_request_builder import build_responses_body

    mocked.post(f"{BASE}/responses", payload=response_json('{"a": "b"}'), headers=HEADERS)
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    body = build_responses_body("gpt-4o", "vs_1", "s", "u", schema, max_num_results=8, max_output_tokens=500)
    budget = RateBudget(tpm=10**6, clock=clock, sleep=clock.sleep, safety_margin=0.0)
    reserved = []
    acquire = budget.acquire

    async def recording(base_tokens: int, cost_class: str | None = None):
        reserved.append(base_tokens)
        return await acquire(base_tokens, cost_class)

    budget.acquire = recording  # type: ignore[method-assign]
    transport = make_transport()
    transport.budget = budget
    async with ResponsesClient(transport=transport) as client:
        await client.create(body, label="t:stage2")
    assert reserved == [worst_case_tokens(body)] and reserved[0] >= 8 * 800 + 500
