"""How long the host's event loop stands still while refinery plans and analyses a big trace.

A host (a web server, a batch of other analyses, an MCP server) runs refinery inside its own event
loop. A ticker task beside the work asks to wake every 10 ms and records how late it woke: the
longest lateness is the longest time the loop was held. Measured for:
- `load`: `load_trace` through `core.offload.off_loop` (what `batch` and the MCP server do);
- `plan`: rendering and planning every request body, off the loop (what the MCP `plan_trace` does);
- `analyse`: `analyze_into` — rendering, upload, four stages (every Stage 1 group), report — against
  refinery's local OpenAI-compatible server running in a separate process (its CPU is not ours).

Each phase's line also says what the cyclic garbage collector did meanwhile (passes of each
generation, the longest and the thread that ran it), and `idle` lines (before and after) give the
ticker alone: the lateness the machine itself adds (other processes on the same cores); `spin` the
ticker beside a worker thread running pure Python (no long C call): the floor for any work in a
thread on this machine at this moment.

Run: `python benchmarks/bench_loop_stall.py [--megabytes 100] [--kind chat|otlp-distinct] [--where]`.
`--where` is for finding a holder, not for figures: `faulthandler` reads the other threads' frames
without the GIL, which is what shows a long call while it runs, and which can crash the process
(once, after 148 dumps at `--where-after 0.04`).
Target (issue 31): the longest stall while a 100 MB trace is analysed ≤ 50 ms. The figures depend on
the machine and on what else runs on it; docs/benchmarks.md records a run.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import json
import os
import resource
import sys
import tempfile
import threading
import time
from contextlib import AbstractContextManager, nullcontext
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
TARGET_S = 0.050
WHERE_AFTER_S = 0.1


class Ticker:
    """Wakes every 10 ms and keeps the longest lateness (how long the loop was held). With `where`,
    every thread's stack is written whenever the loop has not ticked for 100 ms: what held it. The
    stacks are taken by `faulthandler`'s own C thread, which needs no GIL, so they show the line a
    worker is on *while* it holds the GIL (a Python watchdog only gets to look once it is let go,
    when the long call is over)."""

    def __init__(self, where: bool = False) -> None:
        self.worst = 0.0
        self.over = 0  # ticks later than the target
        self.ticks = 0
        self.last = time.perf_counter()
        self.where = where
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(TICK_S)
            self.last = now = time.perf_counter()
            late = now - asked - TICK_S
            self.worst = max(self.worst, late)
            self.over += late > TARGET_S
            self.ticks += 1
            if self.where:  # re-armed at every tick: it fires only when a tick is 100 ms late
                faulthandler.dump_traceback_later(WHERE_AFTER_S, file=sys.stdout)

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        if self.where:
            faulthandler.cancel_dump_traceback_later()


class Collections:
    """The cyclic garbage collector's passes while a phase runs (a gen-2 pass over millions of
    objects is one C call: the GIL is not let go until it ends, whichever thread runs it): how many
    of each generation, the longest, and the thread that ran it."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}
        self.passes: list[tuple[int, float, str]] = []  # generation, seconds, thread

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        ident = threading.get_ident()
        if phase == "start":
            self.started[ident] = time.perf_counter()
        elif ident in self.started:
            took = time.perf_counter() - self.started.pop(ident)
            who = "loop" if ident == LOOP_THREAD else "worker"
            self.passes.append((info["generation"], took, who))

    def __enter__(self) -> Collections:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)

    def summary(self) -> str:
        if not self.passes:
            return "gc: no passes"
        gen, took, who = max(self.passes, key=lambda p: p[1])
        counts = [sum(1 for p in self.passes if p[0] == g) for g in range(3)]
        longest = f"longest {took * 1000:.1f} ms (gen {gen}, {who})"
        return f"gc passes {counts[0]}/{counts[1]}/{counts[2]} (gen 0/1/2), {longest}"


class LongCalls:
    """Every call into C (a builtin: `re.sub`, `json.dumps`, `str.join`…) that took 20 ms of its
    thread's CPU time or more, in any thread: a C call keeps the GIL until it returns (unless it
    lets go for I/O), so one that long holds the loop however the work is spread over threads. CPU
    time, not wall time: a thread the OS sets aside for other processes is not counted. Costs a hook
    on every call (the phases run slower with it)."""

    LIMIT_S = 0.020

    def __init__(self) -> None:
        self.found: dict[str, tuple[int, float]] = {}  # what and where: count, longest CPU seconds
        self._open: dict[int, list[list[Any]]] = {}

    def hook(self, frame: Any, event: str, arg: Any) -> None:
        stack = self._open.setdefault(threading.get_ident(), [])
        if event == "c_call":
            stack.append([time.thread_time(), True])
        elif event == "call" and stack:
            stack[-1][1] = False  # Python code inside: not one C call (the callee is timed on its own)
        elif event in ("c_return", "c_exception") and stack:
            start, pure = stack.pop()
            if stack and not pure:
                stack[-1][1] = False
            took = time.thread_time() - start
            if pure and took >= self.LIMIT_S:
                where = f"{getattr(arg, '__qualname__', arg)} at {Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
                count, worst = self.found.get(where, (0, 0.0))
                self.found[where] = (count + 1, max(worst, took))

    def __enter__(self) -> LongCalls:
        threading.setprofile(self.hook)
        sys.setprofile(self.hook)
        return self

    def __exit__(self, *exc: object) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]
        sys.setprofile(None)

    def report(self) -> None:
        for where, (count, worst) in sorted(self.found.items(), key=lambda kv: -kv[1][1]):
            print(f"   C call {worst * 1000:7.1f} ms CPU (x{count}): {where}")
        self.found.clear()


WHERE = False
LOOP_THREAD = 0
C_CALLS = False


async def measured(label: str, work: Any) -> dict[str, Any]:
    calls: AbstractContextManager[Any] = LongCalls() if C_CALLS else nullcontext()
    with Ticker(WHERE) as ticker, Collections() as collections, calls:
        t0, cpu0 = time.perf_counter(), time.process_time()
        value = await work
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(
        f"{label:<8} wall {wall:7.1f} s  cpu {cpu:7.1f} s   longest stall {ticker.worst * 1000:7.1f} ms   "
        f"ticks {ticker.ticks:6} ({ticker.over} over {TARGET_S * 1000:.0f} ms)   {collections.summary()}   "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    if isinstance(calls, LongCalls):
        calls.report()
    return {"wall_s": wall, "longest_stall_ms": ticker.worst * 1000, "ticks": ticker.ticks, "value": value}


def spin(seconds: float) -> int:
    """Pure Python for `seconds` (short bytecodes, no long C call): what any work in a worker thread
    costs the loop here and now — the GIL handed back and forth every 5 ms, and the OS's own delays
    when other processes want the cores (a thread set aside while it holds the GIL holds the loop)."""
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += sum(i * i for i in range(200))
    return n


async def idle(seconds: float) -> None:
    """The ticker alone: how late a 10 ms sleep wakes on this machine right now, with nothing of
    refinery's running (other processes share the cores): the floor under every figure."""
    await asyncio.sleep(seconds)


async def main_async(args: argparse.Namespace) -> int:
    build = chat_log if args.kind == "chat" else otlp_distinct
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"trace-{args.kind}.json"
        path.write_text(json.dumps(build(args.megabytes)))
        size = path.stat().st_size / 1e6
        print(f"{machine()}; trace {args.kind} {size:.0f} MB; ticker every {TICK_S * 1000:.0f} ms", flush=True)
        expectation = DomainExpertExpectation(**EXPECT)
        await measured("idle", idle(args.idle))
        await measured("spin", off_loop(lambda _s: spin(args.idle)))
        loaded = await measured("load", off_loop(lambda _s: load_trace(path)))
        trace = loaded["value"]

        def plan(_stop: object) -> int:
            analyst = StagedFailureAnalyst()
            files = analyst.render(trace, expectation)
            try:
                return len(measure(planned_requests(analyst, trace, files, expectation)))
            finally:
                files.close()

        planned = (
            {"longest_stall_ms": 0.0, "value": "not planned"}
            if args.no_plan
            else await measured("plan", off_loop(plan))
        )
        if args.only_plan:
            await measured("idle", idle(args.idle))
            return 0
        async with server("--latency", str(args.latency), "--no-validate") as url:
            async with ResponsesClient(api_key="sk-bench", base_url=url) as client:
                analyst = StagedFailureAnalyst(
                    client=client,
                    stage1_concurrency=args.concurrency,
                    poll_timeout_s=3600,
                    store=args.store,
                    model=args.model,
                    group_tokens=args.group_tokens,
                    files_per_group=args.files_per_group,
                )
                run = await measured(
                    "analyse",
                    analyze_into(Path(tmp) / "out", trace, expectation, analyst=analyst, trace_file=path),
                )
        server_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)  # the server, ended and waited for
        print(f"server   cpu {server_cpu.ru_utime + server_cpu.ru_stime:7.1f} s (its own process)", flush=True)
        await measured("idle", idle(args.idle))
        worst = max(loaded["longest_stall_ms"], planned["longest_stall_ms"], run["longest_stall_ms"])
        print(f"requests planned {planned['value']}; longest stall overall {worst:.1f} ms (target ≤ 50 ms)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=100)
    parser.add_argument("--kind", choices=("chat", "otlp-distinct"), default="chat")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--store",
        choices=("hosted", "none"),
        default="hosted",
        help="hosted: files uploaded, Stage 1 groups inline beside file_search; none: every stage inline, "
        "no upload (what `--store auto` chooses for a local server)",
    )
    parser.add_argument("--idle", type=float, default=10, help="seconds of the ticker alone, before and after")
    parser.add_argument("--model", default="gpt-4o", help="the analyst's model (its context window sizes the groups)")
    parser.add_argument("--group-tokens", type=int, default=24_000, help="Stage 1 group size, as `--group-tokens`")
    parser.add_argument("--files-per-group", type=int, default=64, help="Stage 1 files a group at most")
    parser.add_argument("--only-plan", action="store_true", help="stop after the plan")
    parser.add_argument("--no-plan", action="store_true", help="go from the load to the analysis (its own rendering)")
    parser.add_argument("--where", action="store_true", help="print the loop's stack at each stall over 100 ms")
    parser.add_argument("--where-after", type=float, default=0.1, help="seconds of stall before --where prints")
    parser.add_argument("--c-calls", action="store_true", help="list each C call of 20 ms CPU or more (slower)")
    args = parser.parse_args(argv)
    global WHERE, WHERE_AFTER_S, LOOP_THREAD, C_CALLS
    WHERE, WHERE_AFTER_S = args.where, args.where_after
    LOOP_THREAD = threading.get_ident()
    C_CALLS = args.c_calls
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
