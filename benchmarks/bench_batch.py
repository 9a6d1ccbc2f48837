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

`--cli` runs the budgeted batch as a user does, `refinery batch <folder> --concurrency C` in its
own process (`--concurrency`, default: every trace at once); `--load B` starts B CPU burners
beside it for each run (a loaded machine: requests leave later than reserved, answers are read
later than sent). Each row also gives the fewest tokens any admission left in the server's
bucket (how near the run came to a 429).

    python benchmarks/bench_batch.py [--n 20] [--tpm 40000] [--rpm 500] [--latency 2.0]
    python benchmarks/bench_batch.py --real 8 --tpm 60000 --modes budgeted --repeat 5
    python benchmarks/bench_batch.py --real 8 --tpm 60000 --rpm 1000 --latency 0.2 --modes budgeted \
        --cli --concurrency 8 --load 2 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import machine, server, stats  # noqa: E402

from refinery.app.batch import BatchItem, analyze_many  # noqa: E402
from refinery.testing.server import LOWEST_LEFT  # noqa: E402
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


@contextmanager
def burners(n: int):
    """`n` processes spinning on the CPU for as long as the block lasts."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()


async def run_cli(batch: list[BatchItem], url: str, tmp: Path, concurrency: int) -> tuple[float, int, int]:
    """`refinery batch` over the traces in a folder, as a user runs it: (wall, failed, surfaced 429s)."""
    folder = tmp / "traces"
    folder.mkdir()
    for item in batch:
        (folder / Path(item.trace).name).symlink_to(Path(item.trace).resolve())
        if item.expect:
            shutil.copy(item.expect, folder / f"{Path(item.trace).stem}.expect.json")
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": url}
    cmd = [sys.executable, "-m", "refinery", "batch", str(folder), "--concurrency", str(concurrency)]
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *cmd, "--out", str(tmp / "out"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    await proc.wait()
    wall = time.perf_counter() - t0
    outcomes = json.loads((tmp / "out" / "summary.json").read_text())["outcomes"]
    failed = [o for o in outcomes.values() if o.get("status") == "failed"]
    return wall, len(failed), sum(1 for o in failed if o.get("error_type") == "RateLimitError")


async def run_mode(mode: str, args: argparse.Namespace) -> dict:
    server_args = ["--tpm", str(args.tpm), "--rpm", str(args.rpm), "--latency", str(args.latency)]
    async with server(*server_args) as url:
        with tempfile.TemporaryDirectory() as tmp, burners(args.load):
            batch = real_items(args.real) if args.real else items(args.n, Path(tmp))
            plain = mode.startswith("all at once, plain") or mode.startswith("all at once, patient")
            # "patient retries": the same plain client with a retry cap it never reaches, so the cap is not why it loses
            retry = (
                RetryPolicy(max_rate_limit_retries=1000, max_rate_limit_wait_s=24 * 3600) if "patient" in mode else None
            )
            concurrency = 1 if mode == "one at a time" else (args.concurrency or len(batch))
            if args.cli and mode == "budgeted":
                wall, failed, surfaced = await run_cli(batch, url, Path(tmp), concurrency)
            else:
                client = ResponsesClient(api_key="sk-bench", base_url=url, budget=not plain, retry=retry)
                t0 = time.perf_counter()
                async with client:
                    summary = await analyze_many(
                        batch, out_dir=Path(tmp) / "out", client=client, concurrency=concurrency
                    )
                wall = time.perf_counter() - t0
                failed = len(summary.failed)
                surfaced = sum(
                    1 for o in summary.outcomes.values() if o.status == "failed" and o.error_type == "RateLimitError"
                )
        s = stats(url)
    used = s.get("tokens used", 0)
    floor = used / args.tpm * 60
    burst_floor = max(0.0, used - args.tpm) / args.tpm * 60  # the bucket starts full: a minute's tokens at once
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
        "done": len(batch) - failed,
        "lowest_left": s.get(LOWEST_LEFT),
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
    p.add_argument("--cli", action="store_true", help="the budgeted mode as `refinery batch` in its own process")
    p.add_argument("--concurrency", type=int, default=0, help="analyses at once (default: every trace)")
    p.add_argument("--load", type=int, default=0, metavar="B", help="CPU burners beside each run (default none)")
    args = p.parse_args()
    modes = (
        ["one at a time", "all at once, plain retries", "budgeted"]
        if args.modes == p.get_default("modes")
        else [m.strip() for m in args.modes.split(";")]
    )
    what = f"{args.real} real TRAIL traces" if args.real else f"N={args.n}"
    how = "refinery batch" if args.cli else "in process"
    how += f", concurrency {args.concurrency or 'all'}, {args.load} burners"
    print(f"# batch benchmark — {machine()} — {what}, TPM={args.tpm}, RPM={args.rpm}, latency={args.latency}s, {how}")
    print(
        "| mode | wall (s) | floor = tokens ÷ TPM (s) | burst-adjusted floor (s) | wall ÷ burst floor | 429s "
        "received (of them: too large for the TPM) | 429s surfaced | traces done | failed | tokens used | "
        "fewest tokens left at an admission |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for mode in [m for m in modes for _ in range(args.repeat)]:
        r = await run_mode(mode, args)
        burst = r["wall"] / r["burst_floor"] if r["burst_floor"] else float("nan")
        print(
            f"| {r['mode']} | {r['wall']:.1f} | {r['floor']:.1f} | {r['burst_floor']:.1f} | {burst:.2f} | "
            f"{r['received']} ({r['too_large']}) | {r['surfaced']} | {r['done']} | {r['failed']} | {r['tokens']} | "
            f"{r['lowest_left']} |",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
