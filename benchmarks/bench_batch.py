"""A batch of N analyses under TPM/RPM limits, three ways, against the local server.

1. one at a time (concurrency 1);
2. all at once with plain retries (concurrency N, no client-side budget: the server's 429s
   are retried with its hints, up to the transport's bounds);
3. budgeted (concurrency N, the shared rate budget learning the limits from headers).
Prints wall time, the physical floor (total tokens used ÷ TPM), their ratio, and the 429s the
server sent and those that reached the caller (traces that failed on a rate limit).

`--real K` analyses K real traces from ../shared/eval-data/trail (the first K by name) instead of
the repo's small fixtures; `--repeat R` runs each mode R times, one row a run, so a 429 that
happens one run in five shows.

    python benchmarks/bench_batch.py [--n 20] [--tpm 40000] [--rpm 500] [--latency 2.0]
    python benchmarks/bench_batch.py --real 8 --tpm 60000 --modes budgeted --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import machine, server, stats  # noqa: E402

from refinery.app.batch import BatchItem, analyze_many  # noqa: E402
from refinery.wire.responses_client import ResponsesClient
from refinery.wire.retry import RetryPolicy  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
TRACES = ["langsmith_runs.json", "otlp_trace.json", "langfuse_export.json", "plain_chat.json", "otel_span_list.json"]


def real_items(k: int) -> list[BatchItem]:
    """The first `k` TRAIL traces, each with the task it states as the expectation."""
    from refinery.testing.openapi_spec import find_shared

    shared = find_shared(Path(__file__))
    if shared is None:
        raise SystemExit("--real needs ../shared/eval-data beside the repository")
    paths = sorted((shared / "eval-data" / "trail" / "traces").glob("*/*.json"))[:k]
    return [BatchItem(name=p.stem, trace=str(p)) for p in paths]


def items(n: int, folder: Path) -> list[BatchItem]:
    out = []
    for i in range(n):
        src = FIX / TRACES[i % len(TRACES)]
        dst = folder / f"trace{i:03d}{src.suffix}"
        shutil.copy(src, dst)
        out.append(BatchItem(name=f"trace{i:03d}", trace=str(dst), expect=str(FIX / "expectation.json")))
    return out


async def run_mode(mode: str, args: argparse.Namespace) -> dict:
    server_args = ["--tpm", str(args.tpm), "--rpm", str(args.rpm), "--latency", str(args.latency)]
    async with server(*server_args) as url:
        with tempfile.TemporaryDirectory() as tmp:
            batch = real_items(args.real) if args.real else items(args.n, Path(tmp))
            plain = mode.startswith("all at once, plain") or mode.startswith("all at once, patient")
            # "patient retries": the same plain client with a retry cap it never reaches, so the cap is not why it loses
            retry = (
                RetryPolicy(max_rate_limit_retries=1000, max_rate_limit_wait_s=24 * 3600) if "patient" in mode else None
            )
            client = ResponsesClient(api_key="sk-bench", base_url=url, budget=not plain, retry=retry)
            concurrency = 1 if mode == "one at a time" else len(batch)
            t0 = time.perf_counter()
            async with client:
                summary = await analyze_many(batch, out_dir=Path(tmp) / "out", client=client, concurrency=concurrency)
            wall = time.perf_counter() - t0
        s = stats(url)
    used = s.get("tokens used", 0)
    floor = used / args.tpm * 60
    burst_floor = max(0.0, used - args.tpm) / args.tpm * 60  # the bucket starts full: a minute's tokens at once
    surfaced = sum(1 for o in summary.outcomes.values() if o.status == "failed" and o.error_type == "RateLimitError")
    failed = len(summary.failed)
    return {
        "mode": mode,
        "wall": wall,
        "floor": floor,
        "burst_floor": burst_floor,
        "ratio": wall / floor if floor else float("nan"),
        "received": s.get("429 rate_limit_exceeded", 0),
        "too_large": s.get("429 request too large", 0),
        "surfaced": surfaced,
        "failed": failed,
        "tokens": used,
        "done": len(summary.outcomes) - failed,
    }


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--tpm", type=int, default=40000)
    p.add_argument("--rpm", type=int, default=500)
    p.add_argument("--latency", type=float, default=2.0, help="seconds each /responses call takes on the server")
    p.add_argument("--modes", default="one at a time,all at once, plain retries,budgeted")
    p.add_argument("--real", type=int, default=0, metavar="K", help="K real TRAIL traces instead of fixtures")
    p.add_argument("--repeat", type=int, default=1, metavar="R", help="runs of each mode (default 1)")
    args = p.parse_args()
    modes = (
        ["one at a time", "all at once, plain retries", "budgeted"]
        if args.modes == p.get_default("modes")
        else [m.strip() for m in args.modes.split(";")]
    )
    what = f"{args.real} real TRAIL traces" if args.real else f"N={args.n}"
    print(f"# batch benchmark — {machine()} — {what}, TPM={args.tpm}, RPM={args.rpm}, latency={args.latency}s")
    print(
        "| mode | wall (s) | floor = tokens ÷ TPM (s) | burst-adjusted floor (s) | wall ÷ burst floor | 429s "
        "received (of them: too large for the TPM) | 429s surfaced | traces done | failed | tokens used |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mode in [m for m in modes for _ in range(args.repeat)]:
        r = await run_mode(mode, args)
        burst = r["wall"] / r["burst_floor"] if r["burst_floor"] else float("nan")
        print(
            f"| {r['mode']} | {r['wall']:.1f} | {r['floor']:.1f} | {r['burst_floor']:.1f} | {burst:.2f} | "
            f"{r['received']} ({r['too_large']}) | {r['surfaced']} | {r['done']} | {r['failed']} | {r['tokens']} |",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
