"""Failure patterns: how well the deterministic pass recovers causes planted in a batch.

Builds a batch of the project's own synthetic failing traces (chat logs whose failing tool call
carries one of several planted causes, in uneven numbers, the error text varying its ids, numbers,
quoted values and URLs), analyses it with `refinery batch` against `refinery.testing`'s local server
in this process, and compares the patterns with the planted causes: purity (each pattern's largest
cause ÷ its size, weighted), completeness (each cause's largest pattern ÷ the cause's size,
weighted), and whether every planted cause is one group.

Run: `python benchmarks/bench_patterns.py [--per-cause 12,7,4,2,1] [--seed 5]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from refinery.app.batch import analyze_many, discover  # noqa: E402
from refinery.testing.server import OpenAITestServer  # noqa: E402
from refinery.wire.responses_client import ResponsesClient  # noqa: E402

CAUSES = [
    (
        "lookup_order",
        lambda r: (
            f"Timeout after {r.randint(5, 60)} s calling https://orders.example.com/v2/{r.randint(1, 999)}"
            f" (request req_{r.getrandbits(24):06x})"
        ),
    ),
    ("refund", lambda r: f"PermissionError: user u-{r.randint(1, 99)} may not refund order {r.randint(100, 999)}"),
    ("search_kb", lambda r: f"KeyError: '{r.choice(['sku', 'region', 'tier'])}' in response {r.getrandbits(48):012x}"),
    ("send_email", lambda r: f"SMTP 550 mailbox unavailable for {r.choice(['ann', 'bo', 'cy'])}@example.com"),
    (
        "charge_card",
        lambda r: f"Card declined: code {r.randint(51, 59)}, amount {r.randint(1, 500)}.{r.randint(10, 99)}",
    ),
]


# Causes no run states as an error: the tool answers, and only its output text says what went
# wrong (the run's status is not failed); and one where the agent answers without calling its tool.
SAID = [
    (
        "fetch_orders",
        lambda r: (
            f"ERROR: timeout after {r.randint(20, 60)}s contacting orders-eu-{r.randint(1, 9)}.internal:"
            f"{r.randint(8000, 8999)} (attempt {r.randint(1, 3)} of 3)"
        ),
    ),
    (
        "fetch_orders",
        lambda r: f"HTTP 429 rate limited, retry after {r.choice([30, 60])}s (quota q-{r.randint(1, 99)})",
    ),
]
NO_TOOL = len(CAUSES) + len(SAID)  # the cause index of the traces that never call their tool


def trace(cause: int, rng: random.Random) -> dict:
    order = rng.randint(1, 9999)
    head = [{"role": "user", "content": f"Please sort out order {order}."}]
    if cause == NO_TOOL:
        answer = f"Order {order} shipped {rng.randint(2, 9)} days ago and will arrive {rng.choice(['soon', 'Friday'])}."
        return {
            "task": f"Help customer {rng.randint(1, 9999)} with their order.",
            "messages": [*head, {"role": "assistant", "name": "agent", "content": answer}],
        }
    if cause >= len(CAUSES):
        tool, said = SAID[cause - len(CAUSES)]
        step = {"role": "tool", "name": tool, "content": said(rng)}
    else:
        tool, error = CAUSES[cause]
        step = {"role": "tool", "name": tool, "content": "", "error": error(rng)}
    return {
        "task": f"Help customer {rng.randint(1, 9999)} with their order.",
        "messages": [
            *head,
            {"role": "assistant", "name": "agent", "content": f"Calling {tool}."},
            step,
            {"role": "assistant", "name": "agent", "content": "I could not finish."},
        ],
    }


def scores(planted: dict[str, int], found: dict[str, str]) -> tuple[float, float, bool]:
    n = len(planted)
    by_pattern: dict[str, Counter[int]] = {}
    for name, pattern in found.items():
        by_pattern.setdefault(pattern, Counter())[planted[name]] += 1
    purity = sum(c.most_common(1)[0][1] for c in by_pattern.values()) / n
    by_cause: dict[int, Counter[str]] = {}
    for name, cause in planted.items():
        by_cause.setdefault(cause, Counter())[found[name]] += 1
    completeness = sum(c.most_common(1)[0][1] for c in by_cause.values()) / n
    one_group_each = all(len(c) == 1 for c in by_cause.values()) and len(by_pattern) == len(by_cause)
    return purity, completeness, one_group_each


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--per-cause",
        default="12,7,4,2,1,12,8,4",
        help="traces of each planted cause: the five stated as errors, the two stated only in tool output, "
        "the one with no tool call (default 12,7,4,2,1,12,8,4)",
    )
    ap.add_argument("--no-llm", action="store_true", help="the deterministic groups only (no merge-and-name call)")
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    sizes = [int(x) for x in args.per_cause.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "traces"
        src.mkdir()
        planted: dict[str, int] = {}
        for cause, size in enumerate(sizes):
            for k in range(size):
                name = f"c{cause}-{k:02d}"
                (src / f"{name}.json").write_text(json.dumps(trace(cause, rng)))
                planted[name] = cause
        async with OpenAITestServer() as server:
            os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
            async with ResponsesClient(api_key="sk-bench", base_url=server.base_url) as client:
                summary = await analyze_many(
                    discover(src),
                    out_dir=Path(tmp) / "out",
                    client=client,
                    concurrency=8,
                    name_patterns=not args.no_llm,
                )
    found = {name: p.id for p in summary.patterns for name in p.traces}
    purity, completeness, one_each = scores(planted, found)
    mode = "deterministic groups only (--no-llm)" if args.no_llm else "with the model's merge-and-name pass"
    print(
        f"{len(planted)} traces, {len(sizes)} planted causes ({args.per_cause}); "
        f"{len(summary.patterns)} patterns; {mode}"
    )
    print(f"purity {purity:.2f} (goal ≥ 0.9), completeness {completeness:.2f}; every cause one group: {one_each}")
    for p in summary.patterns:
        print(f"  {p.count:>3}  {p.title}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
