"""Client-side rate budgeting: send a request only when the per-minute budgets allow it.

Why: a batch fired all at once drowns in 429s, and each 429 wastes a round trip and a wait;
run one by one, it wastes the budget. Mirroring the server's token and request buckets on the
client lets every caller of one transport share one budget and run close to the physical floor
(total tokens ÷ TPM) with no 429 reaching the caller.

The model (OpenAI's documented behaviour, and `refinery.testing`'s server):
- a request needs its worst case available (what the caller gives: for `/responses`, the input
  estimate + every `file_search`'s whole `max_num_results` chunks + `max_output_tokens`, plus an
  allowance learned per cost class when usage still exceeds it), taken when it is admitted; the
  server charges retrieved chunks only when the call completes, so a reservation smaller than
  the charge would leave the server's bucket below ours until the answer is read;
- a reservation also holds the top of the bucket while its request may be on its way (up to
  `arrival_s`): the server's full bucket gains nothing until the request arrives, so ours must
  not count that refill either;
- it is charged what it used: the reservation is settled against `usage.total_tokens` and the
  rest given back;
- the limits and the remaining budget are learned from `x-ratelimit-limit-*`,
  `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` headers (or given explicitly); until the
  first answer says whether there are limits, one request probes alone;
- a 429 that still happens blocks admission for the hinted wait and raises that class's
  allowance.
When no limit is near, admission is arithmetic with no await: it costs nothing noticeable.

Callers hold a reservation as `async with budget.reserve(cost, cost_class) as ticket:` and end it
with `ticket.settle(used, headers)` or `ticket.throttled(headers)`; a ticket left open (the
request never got an answer) gives everything back when the block ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from refinery.wire.rate_limit_headers import (
    RateLimitSnapshot,
    retry_after_seconds,
)

log = logging.getLogger("refinery.budget")


class _Bucket:
    """A continuously refilling bucket: `capacity` per minute.

    A request reaches the server some time after we reserved it (later on a loaded machine);
    until it does, the server's bucket stops filling at `capacity` with the request's tokens
    still in it. So a reservation also holds the top of ours — it fills only to `capacity` less
    the reservations that may still be on their way — until its answer, or for `arrival_s` at
    most; otherwise we would count refill the server never had."""

    def __init__(self, capacity: float, clock: Callable[[], float], arrival_s: float = 2.0) -> None:
        self.capacity = capacity
        self.level = capacity
        self.clock = clock
        self.stamp = clock()
        self.arrival_s = arrival_s
        self.holds: dict[int, tuple[float, float]] = {}  # id → (until, amount) of requests maybe on their way
        self._next_hold = 0

    def refill(self) -> None:
        now = self.clock()
        rate = self.capacity / 60.0
        # piecewise: the ceiling rises as each hold runs out
        for until, _ in sorted(self.holds.values()) + [(now, 0.0)]:
            if until <= self.stamp:
                continue
            step = min(until, now)
            ceiling = self.capacity - sum(a for u, a in self.holds.values() if u > self.stamp)
            self.level = max(self.level, min(ceiling, self.level + (step - self.stamp) * rate))
            self.stamp = step
            if step >= now:
                break
        self.stamp = now
        self.holds = {k: v for k, v in self.holds.items() if v[0] > now}

    def take(self, amount: float) -> int:
        """Take `amount` for a request about to be sent; the id of its hold."""
        self.refill()
        self.level -= amount
        self._next_hold += 1
        self.holds[self._next_hold] = (self.stamp + self.arrival_s, amount)
        return self._next_hold

    def give_back(self, hold: int, amount: float) -> None:
        """A request answered (or never sent): its hold ends, and `amount` (< 0: a charge) returns."""
        self.refill()
        self.holds.pop(hold, None)
        ceiling = self.capacity - sum(a for _, a in self.holds.values())
        self.level = self.level + amount if amount <= 0 else max(self.level, min(ceiling, self.level + amount))

    def wait_for(self, amount: float) -> float:
        self.refill()
        need = min(amount, self.capacity)  # a request bigger than the bucket waits for a full one
        deficit = need - self.level
        return 0.0 if deficit <= 1e-6 * max(1.0, need) else deficit * 60.0 / self.capacity


@dataclass
class Reservation:
    tokens: float
    base: float
    cost_class: str | None
    probe: bool = False
    token_hold: int | None = None  # its hold on each bucket there was when it was admitted
    request_hold: int | None = None


class Ticket:
    """One admitted request's hold on the budget, ended once: settled, throttled, or cancelled."""

    def __init__(self, budget: "RateBudget | None", reservation: Reservation | None) -> None:
        self.budget, self.reservation = budget, reservation
        self.closed = budget is None or reservation is None

    def _end(self) -> "tuple[RateBudget, Reservation] | None":
        """The hold, the first time the ticket is ended; None after that (or when unbudgeted)."""
        if self.closed or self.budget is None or self.reservation is None:
            return None
        self.closed = True
        return self.budget, self.reservation

    def settle(self, used_tokens: int | None, headers: Mapping[str, str]) -> None:
        """An answer arrived (any but a 429): charge what it used, learn from its headers."""
        if held := self._end():
            held[0].settle(held[1], used_tokens, headers)

    def throttled(self, headers: Mapping[str, str]) -> None:
        """A 429 arrived despite the budget."""
        if held := self._end():
            held[0].throttled(held[1], headers)

    def cancel(self) -> None:
        """No answer arrived (connection error, timeout, cancellation): give it all back."""
        if held := self._end():
            held[0].cancel(held[1])


UNBUDGETED = Ticket(None, None)


@dataclass
class BudgetStats:
    admitted: int = 0
    waited: int = 0
    wait_s: float = 0.0
    throttled: int = 0  # 429s received
    waiting_now: int = 0
    in_flight: int = 0


@dataclass
class RateBudget:
    """Shared admission control for one API key/project. Limits may be given or learned."""

    tpm: int | None = None
    rpm: int | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    allowance_smoothing: float = 0.3
    max_sleep_s: float = 0.25  # re-check often: settled reservations give tokens back early
    safety_margin: float = 0.05  # the server counts tokens its own way; reserve a little more
    arrival_s: float = 2.0  # the longest a request may take to reach the server after its reservation
    stats: BudgetStats = field(default_factory=BudgetStats)

    def __post_init__(self) -> None:
        self.tokens = _Bucket(float(self.tpm), self.clock, self.arrival_s) if self.tpm else None
        self.requests = _Bucket(float(self.rpm), self.clock, self.arrival_s) if self.rpm else None
        self.known = bool(self.tpm or self.rpm)
        self.allowance: dict[str, float] = {}
        self.blocked_until = 0.0
        self._probe_busy = False

    @asynccontextmanager
    async def reserve(self, base_tokens: int, cost_class: str | None = None) -> AsyncIterator[Ticket]:
        """Admit one request's worst case for the length of the block (see the module docstring)."""
        ticket = Ticket(self, await self.acquire(base_tokens, cost_class))
        try:
            yield ticket
        finally:
            ticket.cancel()  # a no-op when the block settled or throttled it

    def estimate(self, base_tokens: int, cost_class: str | None) -> float:
        return (base_tokens + self.allowance.get(cost_class or "", 0.0)) * (1.0 + self.safety_margin)

    async def acquire(self, base_tokens: int, cost_class: str | None = None) -> Reservation:
        """Wait until the budgets hold this request's worst case; reserve it."""
        need = self.estimate(base_tokens, cost_class)
        waited = False
        while True:
            if not self.known:
                if not self._probe_busy:
                    self._probe_busy = True
                    return self._admit(need, base_tokens, cost_class, probe=True, waited=waited)
                wait = 0.05
            else:
                wait = max(0.0, self.blocked_until - self.clock())
                if self.tokens:
                    wait = max(wait, self.tokens.wait_for(need))
                if self.requests:
                    wait = max(wait, self.requests.wait_for(1))
                if wait <= 0:
                    return self._admit(need, base_tokens, cost_class, probe=False, waited=waited)
            if not waited:
                self.stats.waited += 1
                waited = True
            self.stats.waiting_now += 1
            try:
                step = max(0.001, min(wait, self.max_sleep_s))  # float refill never quite lands
                await self.sleep(step)
            finally:
                self.stats.waiting_now -= 1
            self.stats.wait_s += step

    def _admit(self, need: float, base: float, cost_class: str | None, *, probe: bool, waited: bool) -> Reservation:
        token_hold = self.tokens.take(need) if self.tokens else None
        request_hold = self.requests.take(1) if self.requests else None
        self.stats.admitted += 1
        self.stats.in_flight += 1
        return Reservation(need, base, cost_class, probe, token_hold, request_hold)

    def settle(self, res: Reservation, used_tokens: int | None, headers: Mapping[str, str]) -> None:
        """A request finished (any answer but a 429): charge what it used, learn from headers."""
        self._release(res)
        used = res.tokens if used_tokens is None else float(used_tokens)
        self._give_back(res, res.tokens - used, 0)
        if res.cost_class is not None and used_tokens is not None:
            extra = max(0.0, used - res.base)
            old = self.allowance.get(res.cost_class, 0.0)
            a = self.allowance_smoothing
            self.allowance[res.cost_class] = (
                extra if res.cost_class not in self.allowance else (1 - a) * old + a * extra
            )
        self.observe(headers)

    def throttled(self, res: Reservation, headers: Mapping[str, str]) -> None:
        """A 429 reached us despite the budget: give the reservation back, block, tighten."""
        self._release(res)
        self.stats.throttled += 1
        self._give_back(res, res.tokens, 0)  # a refused request still counts against the RPM
        wait = retry_after_seconds(headers)
        if wait is not None:
            self.blocked_until = max(self.blocked_until, self.clock() + wait)
        if res.cost_class is not None:
            self.allowance[res.cost_class] = self.allowance.get(res.cost_class, 0.0) + 0.25 * res.base
        self.observe(headers)
        log.info("429 despite the budget; blocked for %s s, allowance now %s", wait, self.allowance)

    def cancel(self, res: Reservation) -> None:
        """The request never reached the server (connection error): give everything back."""
        self._release(res)
        self._give_back(res, res.tokens, 1)

    def _give_back(self, res: Reservation, tokens: float, requests: int) -> None:
        """End `res`'s holds on the buckets it was taken from, returning `tokens` and `requests`."""
        if self.tokens and res.token_hold is not None:
            self.tokens.give_back(res.token_hold, tokens)
        if self.requests and res.request_hold is not None:
            self.requests.give_back(res.request_hold, requests)

    def _release(self, res: Reservation) -> None:
        self.stats.in_flight -= 1
        if res.probe:
            self._probe_busy = False
            self.known = True  # after the first answer: limits learned below, or none to respect

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn the limits and tighten to the server's remaining budget."""
        snap = RateLimitSnapshot.from_headers(headers)
        if snap.empty:
            return
        if snap.limit_tokens:
            if self.tokens is None:
                self.tokens = _Bucket(float(snap.limit_tokens), self.clock, self.arrival_s)
            self.tokens.refill()
            self.tokens.capacity = float(snap.limit_tokens)
            if snap.remaining_tokens is not None:
                # The server took our in-flight requests' worst cases when it admitted them, as
                # we did: its remaining budget is directly comparable with ours.
                self.tokens.level = min(self.tokens.level, float(snap.remaining_tokens))
        if snap.limit_requests:
            if self.requests is None:
                self.requests = _Bucket(float(snap.limit_requests), self.clock, self.arrival_s)
            self.requests.refill()
            self.requests.capacity = float(snap.limit_requests)
            if snap.remaining_requests is not None:
                self.requests.level = min(self.requests.level, snap.remaining_requests)
