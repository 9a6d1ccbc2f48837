"""What the rate budget costs when no limit is near: admission + settlement per request.

python benchmarks/bench_budget.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import machine  # noqa: E402

from refinery.wire.rate_budget import RateBudget  # noqa: E402

# Limits a tight loop of 2500-token requests (hundreds of millions of tokens a second) never nears.
HEADERS = {
    "x-ratelimit-limit-tokens": "1000000000000",
    "x-ratelimit-remaining-tokens": "999999990000",
    "x-ratelimit-reset-tokens": "1ms",
    "x-ratelimit-limit-requests": "10000000000",
    "x-ratelimit-remaining-requests": "9999999999",
    "x-ratelimit-reset-requests": "6ms",
}


async def per_call(budget: RateBudget, n: int, headers: dict[str, str]) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        res = await budget.acquire(3000, "stage1")
        budget.settle(res, 2500, headers)
    return (time.perf_counter() - t0) / n


async def main() -> None:
    n = 100_000
    unlimited = RateBudget()
    unlimited.settle(await unlimited.acquire(1, None), 1, {})  # first answer had no limits
    print(f"# rate budget cost — {machine()} — {n} admissions")
    print("| budget | µs per request (admit + settle) | vs a 0.5 s API call |")
    print("|---|---|---|")
    for name, budget, headers in (
        ("no limits", unlimited, {}),
        ("limits far away (learned from headers)", RateBudget(tpm=10**12, rpm=10**10), HEADERS),
    ):
        us = await per_call(budget, n, headers) * 1e6
        print(f"| {name} | {us:.1f} | {us / 5e5:.5%} |")


if __name__ == "__main__":
    asyncio.run(main())
