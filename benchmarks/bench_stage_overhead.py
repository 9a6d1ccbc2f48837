"""The library's own cost per stage: client CPU time against the server's latency.

The server runs in a subprocess (its CPU is not counted). Each stage's wall time is mostly the
server's latency; the client's CPU time (rendering, body building, JSON validation, retries
bookkeeping, the rate budget) is what refinery itself adds.

    python benchmarks/bench_stage_overhead.py [--runs 5] [--latency 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import machine, server  # noqa: E402

from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst  # noqa: E402
from refinery.app.inputs import load_expectation  # noqa: E402
from refinery.traces import load_trace  # noqa: E402
from refinery.wire.responses_client import ResponsesClient  # noqa: E402

FIX = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--latency", type=float, default=0.5)
    args = p.parse_args()
    trace = load_trace(FIX / "otlp_trace.json")
    expectation = load_expectation(FIX / "expectation.json")
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    async with server("--latency", str(args.latency)) as url:
        for _ in range(args.runs):
            marks: dict[str, tuple[float, float]] = {}

            def progress(stage: str, status: str, info: dict) -> None:
                now = (time.perf_counter(), time.process_time())
                if status == "start":
                    marks[stage] = now
                elif status == "end" and stage in marks:
                    w0, c0 = marks[stage]
                    wall.setdefault(stage, []).append(now[0] - w0)
                    cpu.setdefault(stage, []).append(now[1] - c0)

            with tempfile.TemporaryDirectory() as tmp:
                async with ResponsesClient(api_key="sk-bench", base_url=url) as client:
                    analyst = StagedFailureAnalyst(
                        client=client, artifacts_dir=Path(tmp), progress_callback=progress, store="hosted"
                    )
                    await analyst.analyze(trace, expectation)
    print(f"# stage overhead — {machine()} — {args.runs} runs, server latency {args.latency}s per /responses call")
    print("| stage | wall (s, median) | client CPU (ms, median) | client CPU ÷ wall |")
    print("|---|---|---|---|")
    for stage in ("prepare", "stage1", "stage2", "stage3", "stage4"):
        if stage in wall:
            w, c = statistics.median(wall[stage]), statistics.median(cpu[stage])
            print(f"| {stage} | {w:.3f} | {c * 1000:.1f} | {c / w:.1%} |")


if __name__ == "__main__":
    asyncio.run(main())
