"""Estimated cost of token usage. An estimate, labelled as such everywhere it is shown.

Prices are USD per million tokens (input, cached input, output) from OpenAI's public price list;
they change, so `usage.json` records the table it used and callers can pass their own. A model
not in the table gets no cost rather than a wrong one. Snapshot names (`gpt-4o-2024-08-06`)
use their family's price.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PRICES_AS_OF = "2026-11"
PRICES_PER_MTOK: dict[str, tuple[float, float, float]] = {
    "gpt-4o": (2.50, 1.25, 10.00),
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "gpt-4.1": (2.00, 0.50, 8.00),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
    "gpt-5": (1.25, 0.125, 10.00),
    "gpt-5-mini": (0.25, 0.025, 2.00),
    "gpt-5-nano": (0.05, 0.005, 0.40),
    "o3": (2.00, 0.50, 8.00),
    "o4-mini": (1.10, 0.275, 4.40),
}


# OpenAI's Batch API (and Azure's Global Batch) bill input and output tokens at half the listed price
BATCH_PRICE_FACTOR = 0.5


def batch_prices(
    prices: Mapping[str, tuple[float, float, float]] | None = None,
) -> dict[str, tuple[float, float, float]]:
    """The price table at the Batch API's rate: what a request run through a batch costs."""
    return {
        name: (p_in * BATCH_PRICE_FACTOR, p_cached * BATCH_PRICE_FACTOR, p_out * BATCH_PRICE_FACTOR)
        for name, (p_in, p_cached, p_out) in (prices or PRICES_PER_MTOK).items()
    }


def price_for(
    model: str | None, prices: Mapping[str, tuple[float, float, float]] | None = None
) -> tuple[float, float, float] | None:
    table = prices or PRICES_PER_MTOK
    if not model:
        return None
    name = model.rsplit("/", 1)[-1]
    best = None
    for family in table:
        if name == family or name.startswith(family + "-"):
            if best is None or len(family) > len(best):
                best = family
    if best is None:
        return None
    # "gpt-4o-mini-2024-07-18" must not price as "gpt-4o": the longest family prefix wins, and a
    # snapshot suffix is digits, so "gpt-4o-mini" is not a snapshot of "gpt-4o".
    return table[best]


def estimate_cost_usd(
    usage: Mapping[str, Any], model: str | None, prices: Mapping[str, tuple[float, float, float]] | None = None
) -> float | None:
    price = price_for(model, prices)
    if price is None:
        return None
    p_in, p_cached, p_out = price
    inp = int(usage.get("input_tokens") or 0)
    cached = min(inp, int(usage.get("cached_tokens") or 0))
    out = int(usage.get("output_tokens") or 0)
    return round(((inp - cached) * p_in + cached * p_cached + out * p_out) / 1_000_000, 10)
