"""`--max-cost`: stop before a call could take the spending past a ceiling, keeping what was done.

Why before, not after: a call's cost is known only once it returns, so the check charges each
request — a stage call's retries and re-asks too, through the client's `guard` — its worst case
first (input estimate plus the chunk allowance at the input price, its whole output budget at
the output price) and stops if that could cross the ceiling. One ceiling may be
shared by every analysis of a batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from refinery.core.pricing import estimate_cost_usd, price_for
from refinery.core.tokens import estimate_body_tokens
from refinery.errors import ConfigurationError, CostLimitError
from refinery.wire.response_output import CallUsage


class CostCeiling:
    """A spending limit for one analysis (`max_cost_usd`, `--max-cost`): each call is admitted only
    when its worst case fits what is left, so a run stops before it could spend more."""

    def __init__(self, limit_usd: float, model: str) -> None:
        if limit_usd <= 0:
            raise ConfigurationError(f"--max-cost must be more than 0, got {limit_usd}")
        if price_for(model) is None:
            raise ConfigurationError(
                f"--max-cost needs a known price, and there is none for model {model!r} (see refinery/core/pricing.py)"
            )
        self.limit_usd = limit_usd
        self.model = model
        self.spent_usd = 0.0
        self.reserved_usd = 0.0  # worst cases of calls in flight (a batch runs several at once)
        self._lock = asyncio.Lock()

    def worst_case(self, input_tokens: int, max_output_tokens: int) -> float:
        return estimate_cost_usd({"input_tokens": input_tokens, "output_tokens": max_output_tokens}, self.model) or 0.0

    async def admit(self, input_tokens: int, max_output_tokens: int) -> float:
        """Reserve a call's worst case, or raise `CostLimitError` if it could cross the ceiling."""
        worst = self.worst_case(input_tokens, max_output_tokens)
        async with self._lock:
            if self.spent_usd + self.reserved_usd + worst > self.limit_usd:
                raise CostLimitError(
                    f"stopped before exceeding --max-cost ${self.limit_usd:.2f}: ${self.spent_usd:.4f} spent, and "
                    f"the next call could cost "
                    f"up to ${worst:.4f}; what was done is kept — rerun with a higher --max-cost to continue"
                )
            self.reserved_usd += worst
        return worst

    async def settle(self, reserved: float, usage: CallUsage | None) -> None:
        async with self._lock:
            self.reserved_usd -= reserved
            if usage is not None:
                # a call whose usage the server stated as no count costs its worst case, never nothing
                cost = reserved if usage.unknown else estimate_cost_usd(usage.model_dump(), self.model) or 0.0
                self.spent_usd += max(cost, 0.0)

    def guard(self, chunk_allowance: int) -> "_Guard":
        """A `SpendGuard` for one stage's requests (each may add `chunk_allowance` retrieved tokens)."""
        return _Guard(self, chunk_allowance)


class _Guard:
    def __init__(self, ceiling: CostCeiling, chunk_allowance: int) -> None:
        self.ceiling, self.chunk_allowance = ceiling, chunk_allowance

    async def admit(self, body: Mapping[str, Any]) -> float:
        return await self.ceiling.admit(
            estimate_body_tokens(dict(body)) + self.chunk_allowance, int(body.get("max_output_tokens") or 4096)
        )

    async def settle(self, ticket: Any, usage: CallUsage | None) -> None:
        await self.ceiling.settle(float(ticket), usage)
