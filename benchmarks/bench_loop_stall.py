"""How long the host's event loop stands still while refinery plans and analyses a big trace.

A host (a web server, a batch of other analyses, an MCP server) runs refinery inside its own event
loop. A ticker task beside the work asks to wake every 10 ms and records how late it woke: the
longest lateness is the longest time the loop was held. Measured for:
- `load`: `load_trace` through `core.offload.off_loop` (what `batch` and the MCP server do);
- `plan`: rendering and planning every request body, off the loop (what the MCP `plan_trace` does);
- `analyse`: `analyze_into` — rendering, upload, four stages (every Stage 1 group), report — against
  refinery's local OpenAI-compatible server running in a separate process (its CPU is not ours).

Run: `python benchmarks/bench_loop_stall.py [--megabytes 100] [--kind chat|otlp-distinct]`.
Target (issue 31): the longest stall while a 100 MB trace is analysed ≤ 50 ms. The figures depend on
the machine and on what else runs on it; docs/benchmarks.md records a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _server import machine, server  # noqa: E402
from bench_scale import EXPECT, chat_log, otlp_distinct  # noqa: E402

from refinery.analysis.plan import measure, planned_requests  # noqa: E402
from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst  # noqa: E402
from refinery.app import analyze_into  # noqa: E402
from refinery.core.models import DomainExpertExpectation  # noqa: E402
from refinery.core.offload import off_loop  # noqa: E402
from refinery.traces import load_trace  # noqa: E402
from refinery.wire.responses_client import ResponsesClient  # noqa: E402

TICK_S = 0.010


class Ticker:
    """Wakes every 10 ms and keeps the longest lateness (how long the loop was held). With `where`,
    a watchdog thread prints the loop thread's stack whenever the loop has not ticked for 100 ms:
    what held it."""

    def __init__(self, where: bool = False) -> None:
        self.worst = 0.0
        self.ticks = 0
        self.last = time.perf_counter()
        self.where = where
        self._task: asyncio.Task[None] | None = None
        self._stop = threading.Event()

    async def _run(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(TICK_S)
            self.last = now = time.perf_counter()
            self.worst = max(self.worst, now - asked - TICK_S)
            self.ticks += 1

    def _watch(self, loop_thread: int) -> None:
        reported = 0.0
        while not self._stop.wait(0.02):
            if time.perf_counter() - self.last > 0.1 and self.last != reported:
                reported = self.last
                frames = sys._current_frames()
                for ident, frame in frames.items():  # the loop's thread and every worker: who holds what
                    if ident == threading.get_ident():
                        continue
                    who = "the loop" if ident == loop_thread else f"thread {ident}"
                    print(f"--- {who}, while the loop is held:", "".join(traceback.format_stack(frame, limit=8)))

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        if self.where:
            threading.Thread(target=self._watch, args=(threading.get_ident(),), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self._stop.set()


WHERE = False


async def measured(label: str, work: Any) -> dict[str, Any]:
    with Ticker(WHERE) as ticker:
        t0 = time.perf_counter()
        value = await work
        wall = time.perf_counter() - t0
    print(f"{label:<8} wall {wall:7.1f} s   longest stall {ticker.worst * 1000:7.1f} ms   ticks {ticker.ticks}")
    return {"wall_s": wall, "longest_stall_ms": ticker.worst * 1000, "ticks": ticker.ticks, "value": value}


async def main_async(args: argparse.Namespace) -> int:
    build = chat_log if args.kind == "chat" else otlp_distinct
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"trace-{args.kind}.json"
        path.write_text(json.dumps(build(args.megabytes)))
        size = path.stat().st_size / 1e6
        print(f"{machine()}; trace {args.kind} {size:.0f} MB; ticker every {TICK_S * 1000:.0f} ms")
        expectation = DomainExpertExpectation(**EXPECT)
        loaded = await measured("load", off_loop(lambda _s: load_trace(path)))
        trace = loaded["value"]

        def plan(_stop: object) -> int:
            analyst = StagedFailureAnalyst()
            files = analyst.render(trace, expectation)
            try:
                return len(measure(planned_requests(analyst, trace, files, expectation)))
            finally:
                files.close()

        planned = await measured("plan", off_loop(plan))
        if args.only_plan:
            return 0
        async with server("--latency", str(args.latency), "--no-validate") as url:
            async with ResponsesClient(api_key="sk-bench", base_url=url) as client:
                analyst = StagedFailureAnalyst(
                    client=client, stage1_concurrency=args.concurrency, poll_timeout_s=3600, store="hosted"
                )
                run = await measured(
                    "analyse",
                    analyze_into(Path(tmp) / "out", trace, expectation, analyst=analyst, trace_file=path),
                )
        worst = max(loaded["longest_stall_ms"], planned["longest_stall_ms"], run["longest_stall_ms"])
        print(f"requests planned {planned['value']}; longest stall overall {worst:.1f} ms (target ≤ 50 ms)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=100)
    parser.add_argument("--kind", choices=("chat", "otlp-distinct"), default="chat")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--only-plan", action="store_true", help="stop after the plan")
    parser.add_argument("--where", action="store_true", help="print the loop's stack at each stall over 100 ms")
    args = parser.parse_args(argv)
    global WHERE
    WHERE = args.where
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
