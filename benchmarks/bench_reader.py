"""The streaming reader against `json.loads`: time to read a trace file and pass over its entries.

For synthetic chat logs, OTLP traces with all-distinct messages (`bench_scale`'s generators) and
the largest TRAIL trace in ../shared/eval-data when present: `read_trace_json` with the loaders'
`READ_SHAPE` plus one pass over the entries (as a loader makes), against `json.loads` of the
whole file plus the same pass, in this process, best of `--repeat`. Ratios are what to compare
(the machines are shared and noisy).

`--load-trace MB`: what a user calls instead — `load_trace` and a pass over its runs — against
`json.loads` and a pass over the raw entries, for a chat log and an OTLP trace of MB megabytes,
each in a fresh process: CPU seconds (and per MB) and the peak memory above the process before
the read (MiB, and as a share of `json.loads`'s).

Run: `python benchmarks/bench_reader.py [--sizes 10,100] [--repeat 3]` or
`python benchmarks/bench_reader.py --load-trace 30`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_scale import chat_log, otlp_distinct  # noqa: E402

from refinery.testing.openapi_spec import find_shared  # noqa: E402
from refinery.traces.json_stream import read_trace_json  # noqa: E402
from refinery.traces.loader import READ_SHAPE  # noqa: E402


def entries(data: Any) -> Iterable[Any]:
    """The entries a loader walks: chat history, OTLP spans, or a span tree's top."""
    if isinstance(data, dict) and "history" in data:
        return data["history"]
    if isinstance(data, dict) and "resourceSpans" in data:
        return (s for rs in data["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"])
    if isinstance(data, dict):
        return data.get("spans") or data.get("data") or []
    return data


def timed(read: Any, path: Path, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = sum(1 for _ in entries(read(path)))
        best = min(best, time.perf_counter() - t0)
    assert n >= 0
    return best


_MEASURE = """
import json, resource, sys
from refinery.traces import load_trace
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
how, path = sys.argv[1], sys.argv[2]
base, c0 = rss(), cpu()
if how == "json.loads":
    d = json.loads(open(path, "rb").read())
    if "history" in d:
        n = sum(1 for e in d["history"])
    else:
        n = sum(1 for rs in d["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"])
else:
    n = sum(1 for r in load_trace(path).runs)
used = cpu() - c0
# the high-water mark of this process's memory (ru_maxrss would carry the parent's over the exec)
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"cpu": used, "above": max(0, peak - base) / 2**20, "n": n}))
"""


def measured(how: str, path: Path) -> dict[str, float]:
    """One read of `path` in a fresh process: CPU seconds, MiB above the process, entries."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, how, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def load_trace_table(mb: float, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(
            "| trace | entries | json.loads + pass: CPU s (s/MB) | MiB above | load_trace + pass over runs: CPU s "
            "(s/MB) | MiB above | CPU ratio | memory ratio |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for kind, make in (("chat", chat_log), ("otlp-distinct", otlp_distinct)):
            path = Path(tmp) / f"{kind}.json"
            path.write_text(json.dumps(make(mb)))
            size = path.stat().st_size / 1e6
            theirs = min((measured("json.loads", path) for _ in range(repeat)), key=lambda r: r["cpu"])
            ours = min((measured("load_trace", path) for _ in range(repeat)), key=lambda r: r["cpu"])
            print(
                f"| {kind} {size:.0f} MB | {ours['n']} | {theirs['cpu']:.2f} ({theirs['cpu'] / size:.3f}) | "
                f"{theirs['above']:.0f} | {ours['cpu']:.2f} ({ours['cpu'] / size:.3f}) | {ours['above']:.0f} | "
                f"{ours['cpu'] / theirs['cpu']:.1f} | {ours['above'] / theirs['above']:.2f} |",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100", help="MB sizes of the synthetic traces (default 10,100)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each, the best kept (default 3)")
    ap.add_argument("--load-trace", type=float, default=0, metavar="MB", help="load_trace + a pass, MB megabytes")
    args = ap.parse_args(argv)
    if args.load_trace:
        load_trace_table(args.load_trace, args.repeat)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        cases: list[tuple[str, Path]] = []
        for mb in [float(x) for x in args.sizes.split(",") if x]:
            for kind, make in (("chat", chat_log), ("otlp-distinct", otlp_distinct)):
                path = Path(tmp) / f"{kind}_{mb:g}.json"
                path.write_text(json.dumps(make(mb)))
                cases.append((f"{kind} {mb:g} MB", path))
        shared = find_shared(Path(__file__))
        trail = sorted((shared / "eval-data" / "trail" / "traces").glob("*/*.json"), key=lambda p: p.stat().st_size)
        if shared and trail:
            cases.append((f"TRAIL largest {trail[-1].stat().st_size / 1e6:.1f} MB", trail[-1]))
        print("| trace | read_trace_json + pass (s) | json.loads + pass (s) | ratio |")
        print("|---|---|---|---|")
        for name, path in cases:
            ours = timed(lambda p: read_trace_json(p, READ_SHAPE), path, args.repeat)
            theirs = timed(lambda p: json.loads(p.read_bytes()), path, args.repeat)
            print(f"| {name} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
