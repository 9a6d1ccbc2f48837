"""Big traces: plan time and peak memory, and a full run against the local server.

For synthetic chat logs, OTLP traces whose LLM spans repeat a sliding window of conversation
(`otlp`) and OTLP traces whose every message is distinct (`otlp-distinct`: nothing to pool), of 1,
10 and 100 MB (and the largest TRAIL trace in ../shared/eval-data when present):
- `plan`: wall time, CPU seconds (per MB, and as a multiple of `json.loads`'s CPU on the same
  file in a fresh process) and peak RSS (MiB, and MiB per MiB of trace) of `refinery plan` in a
  fresh process;
- `run` (1 and 10 MB, and TRAIL): `refinery run` in a fresh process (its peak RSS), and the
  four stages in this process against `refinery.testing`'s server at
  `--latency` seconds a `/responses` call: wall time, calls, the largest request in tokens (as
  the server counted them) against the context budget, and `plan`'s token estimate against the
  tokens the server counted.

Run: `python benchmarks/bench_scale.py [--sizes 1,10,100] [--run-sizes 1,10] [--kinds chat,otlp,otlp-distinct]
[--latency 2] [--no-trail] [--baseline ../main --repeat 2]` (`--baseline`: each plan also run with another
checkout's code, in turn, its CPU and whether its plan is the same printed beside this one's).
Figures go in docs/benchmarks.md; the last lines printed are the summary table.

Bytecode: every plan runs from compiled modules, as an installed refinery does (pip compiles a wheel's
modules at install). A checkout has no `__pycache__` where `PYTHONDONTWRITEBYTECODE` is set (this
machine sets it), and each process then compiled refinery's modules from source: 0.36-0.40 s of CPU a
`plan`, a cost no user pays. So each checkout's `refinery` is compiled first (`compileall`, that variable
unset), into a cache folder of this run's own (`PYTHONPYCACHEPREFIX`: nothing is written into a
checkout), and the plans run with that cache and the variable unset; a plan of a three-step log per
checkout first compiles the rest of what `plan` imports (the standard library's, the dependencies') there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst  # noqa: E402
from refinery.core.context_windows import input_budget  # noqa: E402
from refinery.core.models import DomainExpertExpectation  # noqa: E402
from refinery.testing.openapi_spec import find_shared  # noqa: E402
from refinery.testing.server import OpenAITestServer  # noqa: E402
from refinery.traces import load_trace  # noqa: E402
from refinery.wire.responses_client import ResponsesClient  # noqa: E402

WORDS = (
    "the agent called the search tool and read the page then it wrote a plan about refunds orders and customers".split()
)
EXPECT = {"description": "The agent finds the order and issues the refund."}


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def chat_log(megabytes: float, seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    history, size, i = [], 0, 0
    while size < megabytes * 1e6:
        entry = {
            "role": "assistant" if i % 3 else "user",
            "name": f"agent{i % 4}",
            "content": text(rng, rng.randint(20, 120)),
        }
        history.append(entry)
        size += len(entry["content"]) + 60
        i += 1
    return {"question": "Refund order 42 for the customer.", "history": history}


def otlp_trace(megabytes: float, seed: int = 2, *, distinct: bool = False) -> dict[str, Any]:
    """OTLP/OpenInference spans, LLM and tool in turn. An LLM span carries a sliding window of the
    last 12 messages (what agents resend, and the loader pools), or with `distinct` six messages of
    its own (nothing to pool)."""
    rng = random.Random(seed)
    spans, size, i = [], 0, 0
    conversation = [{"role": "system", "content": "You are a refund agent. " * 20}]
    while size < megabytes * 1e6:
        kind = "LLM" if i % 2 else "TOOL"
        attrs = [{"key": "openinference.span.kind", "value": {"stringValue": kind}}]
        if kind == "LLM":
            if distinct:
                messages = [{"role": "user" if n % 2 else "assistant", "content": text(rng, 40)} for n in range(6)]
            else:
                conversation.append({"role": "user", "content": text(rng, 40)})
                conversation = conversation[-12:]  # a sliding window of history, as agents keep
                messages = conversation
            for n, m in enumerate(messages):
                attrs += [
                    {"key": f"llm.input_messages.{n}.message.role", "value": {"stringValue": m["role"]}},
                    {"key": f"llm.input_messages.{n}.message.content", "value": {"stringValue": m["content"]}},
                ]
            attrs.append({"key": "llm.output_messages.0.message.content", "value": {"stringValue": text(rng, 60)}})
        else:
            attrs += [
                {"key": "input.value", "value": {"stringValue": json.dumps({"q": text(rng, 10)})}},
                {"key": "output.value", "value": {"stringValue": text(rng, 80)}},
            ]
        span = {
            "traceId": ("cd" if distinct else "ab") * 16,
            "spanId": f"{i:016x}",
            "parentSpanId": "0" * 16 if i else "",
            "name": f"{kind.lower()} {i}",
            "startTimeUnixNano": str(1_700_000_000_000_000_000 + i * 1_000_000),
            "endTimeUnixNano": str(1_700_000_000_000_000_000 + i * 1_000_000 + 500_000),
            "attributes": attrs,
            "status": {"code": 2 if i % 97 == 5 else 1},
        }
        spans.append(span)
        size += len(json.dumps(span))
        i += 1
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "bench"}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}


def otlp_distinct(megabytes: float, seed: int = 3) -> dict[str, Any]:
    """OTLP whose every message is new text (what `otlp_trace`'s pooled repeats hide)."""
    return otlp_trace(megabytes, seed, distinct=True)


KINDS = {"chat": chat_log, "otlp": otlp_trace, "otlp-distinct": otlp_distinct}


# the environment `plan` runs in: `compiled` sets it (see the module's docstring)
_PLAN_ENV: dict[str, str] = {}


def compiled(roots: list[Path], cache: Path) -> None:
    """Compile each checkout's `refinery` into `cache`, and run every later plan from that cache with
    `PYTHONDONTWRITEBYTECODE` unset: what an installed refinery pays (see the module's docstring)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    for root in roots:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(root / "refinery")], env=env, check=True)
    _PLAN_ENV.clear()
    _PLAN_ENV.update(env)


def plan_in_a_process(
    path: Path, expect: Path, *, command: list[str] | None = None, root: Path = ROOT
) -> dict[str, Any]:
    """`refinery plan --json` (or `command`) in a fresh process: wall time, CPU time (user + system)
    and its peak RSS; `root`: the checkout whose code runs (another one's: `--baseline`)."""
    args = command or ["plan", str(path), "--expect", str(expect), "--json"]
    probe = (
        "import resource, subprocess, sys, time; t=time.perf_counter(); "
        f"p=subprocess.run([sys.executable, '-m', 'refinery', *{args!r}], capture_output=True, text=True); "
        "w=time.perf_counter()-t; u=resource.getrusage(resource.RUSAGE_CHILDREN); "
        "print(p.returncode, w, u.ru_maxrss, u.ru_utime + u.ru_stime); sys.stderr.write(p.stderr[-500:]); "
        "sys.stdout.write('\\n' + p.stdout)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=root,
        env={**(_PLAN_ENV or os.environ), "PYTHONPATH": str(root)},
    )
    first, _, rest = out.stdout.partition("\n")
    rc, wall, rss_kb, cpu = first.split()
    plan = json.loads(rest) if int(rc) == 0 and command is None else {}
    return {
        "rc": int(rc),
        "plan_s": float(wall),
        "plan_cpu_s": float(cpu),
        "peak_rss_mb": int(rss_kb) / 1024,  # MiB: ru_maxrss is in KiB
        "plan": plan,
        "stderr": out.stderr,
    }


def json_loads_cpu(path: Path) -> float:
    """CPU seconds (user + system) of `json.loads` of the file's text in a fresh process, the
    reading included: the yardstick `plan`'s CPU is given against (issue 37: ≤ 8 ×)."""
    probe = (
        "import json, resource, sys; b=resource.getrusage(resource.RUSAGE_SELF); "
        f"json.loads(open({str(path)!r}, 'rb').read()); a=resource.getrusage(resource.RUSAGE_SELF); "
        "print(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime)"
    )
    return float(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout)


async def full_run(path: Path, latency: float, concurrency: int) -> dict[str, Any]:
    trace = load_trace(path)
    async with OpenAITestServer(latency_s=latency, validate_requests=False) as server:
        async with ResponsesClient(api_key="sk-bench", base_url=server.base_url) as client:
            analyst = StagedFailureAnalyst(
                client=client, stage1_concurrency=concurrency, poll_timeout_s=600, store="hosted"
            )
            t0 = time.perf_counter()
            result = await analyst.analyze(trace, DomainExpertExpectation(**EXPECT))
            wall = time.perf_counter() - t0
            calls = list(client.usage)
        bodies = server.response_bodies
    counted = sum(u.input_tokens for u in result.usage.values())
    largest = max(u.input_tokens for u in calls)  # as the server counted each call: texts and retrieved chunks
    return {
        "run_s": wall,
        "calls": len(bodies),
        "largest_request_tokens": largest,
        "server_input_tokens": counted,
        "budget": input_budget("gpt-4o"),
    }


async def run_rss(path: Path, expect: Path, latency: float, concurrency: int) -> dict[str, Any]:
    """`refinery run` in a fresh process against the local server: its peak RSS and exit code —
    the whole analysis (load, render, upload, four stages, citation checks, report), not just
    the plan."""
    async with OpenAITestServer(latency_s=latency, validate_requests=False) as server:
        with tempfile.TemporaryDirectory() as out:
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_BASE_URL": server.base_url,
            }
            cmd = [
                sys.executable,
                "-m",
                "refinery",
                "run",
                str(path),
                "--expect",
                str(expect),
                "--out",
                out,
                "--concurrency",
                str(concurrency),
                "--timeout",
                "600",
            ]

            # Through a small probe process, as for `plan`: a child forked straight from this big
            # process would count this process's pages in its own peak until it execs.
            probe = (
                "import resource, subprocess, sys; "
                f"p=subprocess.run({cmd!r}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
                "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
            )

            def wait() -> tuple[int, float]:
                out = subprocess.run(
                    [sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True
                ).stdout.split()
                return int(out[0]), int(out[1]) / 1024

            rc, rss = await asyncio.to_thread(wait)
    return {"run_rc": rc, "run_peak_rss_mb": round(rss)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,10,100", help="MB sizes for plan (default 1,10,100)")
    ap.add_argument("--run-sizes", default="1,10", help="MB sizes for full runs (default 1,10)")
    ap.add_argument(
        "--latency", type=float, default=2.0, help="seconds a /responses call takes on the server (default 2)"
    )
    ap.add_argument("--concurrency", type=int, default=8, help="stage 1 groups in flight (default 8)")
    ap.add_argument(
        "--rss-only",
        action="store_true",
        help="for runs, only `refinery run`'s peak RSS (skip the in-process timing run, long at 100 MB)",
    )
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"synthetic traces (default {','.join(KINDS)})")
    ap.add_argument("--no-trail", action="store_true", help="leave out the largest TRAIL trace")
    ap.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (the code before a change): each plan is run with its code too, in turn, "
        "and the CPU of both given (best of --repeat)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="plans a trace (and a baseline) in turn, best kept")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        expect = folder / "expect.json"
        expect.write_text(json.dumps(EXPECT))
        cases: list[tuple[str, float, Path]] = []
        for mb in [float(x) for x in args.sizes.split(",") if x]:
            for kind in [k for k in args.kinds.split(",") if k]:
                make = KINDS[kind]
                path = folder / f"{kind}_{mb:g}mb.json"
                path.write_text(json.dumps(make(mb)))
                cases.append((kind, mb, path))
        shared = find_shared(Path(__file__))
        trail = (
            sorted((shared / "eval-data" / "trail" / "traces").glob("*/*.json"), key=lambda p: p.stat().st_size)
            if shared
            else []
        )
        if trail and not args.no_trail:
            cases.append(("trail-largest", trail[-1].stat().st_size / 1e6, trail[-1]))
        run_sizes = {float(x) for x in args.run_sizes.split(",") if x}
        # What a process needs before the trace counts: `plan` and `run` of a three-step log
        tiny = folder / "tiny.json"
        tiny.write_text(json.dumps(chat_log(0.0002)))
        roots = [ROOT, *([args.baseline.resolve()] if args.baseline else [])]
        compiled(roots, folder / "pycache")
        for root in roots:  # the rest of what `plan` imports compiled too, before anything is measured
            plan_in_a_process(tiny, expect, root=root)
        bare = plan_in_a_process(tiny, expect)["peak_rss_mb"]
        bare_run = asyncio.run(run_rss(tiny, expect, 0.0, args.concurrency))["run_peak_rss_mb"]
        print(json.dumps({"bare_plan_rss_mb": round(bare), "bare_run_rss_mb": bare_run}), flush=True)
        for kind, mb, path in cases:
            size_mb = path.stat().st_size / 1e6
            size_mib = path.stat().st_size / 2**20  # memory is in MiB: its ratios to the size are MiB over MiB
            p, before, loads = None, None, float("inf")
            for _ in range(max(1, args.repeat)):  # in turn, so both see the same load on a shared machine
                if args.baseline:
                    b = plan_in_a_process(path, expect, root=args.baseline.resolve())
                    before = b if before is None or b["plan_cpu_s"] < before["plan_cpu_s"] else before
                a = plan_in_a_process(path, expect)
                p = a if p is None or a["plan_cpu_s"] < p["plan_cpu_s"] else p
                loads = min(loads, json_loads_cpu(path))
            row = {
                "trace": kind,
                "mb": round(size_mb, 1),
                "plan_s": round(p["plan_s"], 2),
                "plan_cpu_s": round(p["plan_cpu_s"], 2),
                "plan_cpu_s_per_mb": round(p["plan_cpu_s"] / size_mb, 3) if size_mb else None,
                "json_loads_cpu_s": round(loads, 3),
                "plan_cpu_vs_json_loads": round(p["plan_cpu_s"] / loads, 1) if loads else None,
                "peak_rss_mb": round(p["peak_rss_mb"]),
                "rss_x": round(p["peak_rss_mb"] / size_mib, 1) if size_mib else None,
                "rss_above_bare_x": round((p["peak_rss_mb"] - bare) / size_mib, 1) if size_mib else None,
                "groups": p["plan"].get("groups"),
                "plan_input_tokens": p["plan"].get("total", {}).get("input_tokens"),
                "plan_expected_input_tokens": p["plan"].get("total", {}).get("expected_input_tokens"),
            }
            if before is not None:
                row["baseline_plan_cpu_s"] = round(before["plan_cpu_s"], 2)
                row["baseline_cpu_vs_json_loads"] = round(before["plan_cpu_s"] / loads, 1) if loads else None
                row["cpu_now_vs_baseline"] = round(p["plan_cpu_s"] / before["plan_cpu_s"], 2)
                row["same_plan_as_baseline"] = before["plan"] == p["plan"]
            if p["rc"] != 0:
                row["error"] = p["stderr"].strip().splitlines()[-1:] or "plan failed"
            if mb in run_sizes or kind == "trail-largest":
                row.update(asyncio.run(run_rss(path, expect, args.latency, args.concurrency)))
                row["run_rss_above_bare_x"] = round((row["run_peak_rss_mb"] - bare_run) / size_mib, 1)
                if args.rss_only:
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    continue
                r = asyncio.run(full_run(path, args.latency, args.concurrency))
                row.update({k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()})
                row["plan_estimate_vs_server"] = (
                    round(row["plan_expected_input_tokens"] / r["server_input_tokens"], 2)
                    if row.get("plan_expected_input_tokens")
                    else None
                )
                row["plan_worst_case_vs_server"] = (
                    round(row["plan_input_tokens"] / r["server_input_tokens"], 2)
                    if row.get("plan_input_tokens")
                    else None
                )
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(f"bare process (a three-step log): plan {bare:.0f} MiB, run {bare_run} MiB")
    print(
        "trace          MB   plan s  CPU s  CPU s/MB  ÷ json.loads CPU  peak RSS MiB  RSS MiB/MiB  above bare MiB/MiB  "
        "groups  run s  calls  largest req  budget  plan/server tokens (expected, worst)  run RSS MiB"
        " (above bare MiB/MiB)"
    )
    for r in rows:
        print(
            f"{r['trace']:<13} {r['mb']:>5} {r['plan_s']:>7} {r['plan_cpu_s']:>6} {r['plan_cpu_s_per_mb']!s:>9} "
            f"{r['plan_cpu_vs_json_loads']!s:>17} {r['peak_rss_mb']:>12} {r['rss_x']!s:>11} "
            f"{r['rss_above_bare_x']!s:>16} {r['groups']!s:>7} "
            f"{r.get('run_s', '—')!s:>6} {r.get('calls', '—')!s:>6} {r.get('largest_request_tokens', '—')!s:>12} "
            f"{r.get('budget', '—')!s:>7} {r.get('plan_estimate_vs_server', '—')!s:>8} "
            f"{r.get('plan_worst_case_vs_server', '—')!s:>6}  {r.get('run_peak_rss_mb', '—')!s:>5} "
            f"({r.get('run_rss_above_bare_x', '—')})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
