"""What refinery sends against the naive one-prompt baseline, on the real TRAIL traces.

For each TRAIL trace in ../shared/eval-data/trail/traces: `refinery plan --json` (offline, no key)
with the store a run would use (`--store hosted`, the default against OpenAI; `--store none` with
`--store none`), and its `naive_prompt`: the whole rendered trace and the instructions (system
prompt and expectation) in one prompt. Printed: each trace's naive tokens, the plan's input tokens
worst case (every `file_search` filling its result count, each earlier stage's JSON at its ceiling
in the later stage's prompt) and expected (that JSON at half its output budget, within the same
ceilings), their ratios to the naive prompt, and the medians (issue 37: median planned ≤ 1.6 ×).

Run: `python benchmarks/bench_naive_prompt.py [--store hosted|none] [--limit N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from refinery.app.cli import amain  # noqa: E402
from refinery.testing.openapi_spec import find_shared  # noqa: E402


def plan_of(path: Path, store: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = asyncio.run(amain(["plan", str(path), "--store", store, "--json"]))
    if rc != 0:
        raise SystemExit(f"{path}: plan exited {rc}")
    return json.loads(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="hosted", choices=["hosted", "none"])
    ap.add_argument("--limit", type=int, default=0, help="only the first N traces (by name)")
    args = ap.parse_args(argv)
    shared = find_shared(Path(__file__))
    if shared is None:
        raise SystemExit("../shared not found")
    paths = sorted((shared / "eval-data" / "trail" / "traces").glob("*/*.json"))
    paths = paths[: args.limit] if args.limit else paths
    rows = []
    print("trace                                   file tokens   naive  planned (×)        expected (×)")
    for path in paths:
        plan = plan_of(path, args.store)
        naive = plan["naive_prompt"]
        row = {
            "trace": f"{path.parent.name}/{path.stem[:12]}",
            "file_tokens": plan["file_tokens"],
            "naive": naive["input_tokens"],
            "planned": plan["total"]["input_tokens"],
            "expected": plan["total"]["expected_input_tokens"],
            "planned_x": naive["planned_vs_naive"],
            "expected_x": naive["expected_vs_naive"],
            "calls": plan["total"]["calls"],
        }
        rows.append(row)
        print(
            f"{row['trace']:<38} {row['file_tokens']:>11} {row['naive']:>7} {row['planned']:>8} "
            f"({row['planned_x']:>5}) "
            f"{row['expected']:>9} ({row['expected_x']:>5})",
            flush=True,
        )
    total_naive = sum(r["naive"] for r in rows)
    summary = {
        "store": args.store,
        "traces": len(rows),
        "median_planned_vs_naive": round(statistics.median(r["planned_x"] for r in rows), 3),
        "median_expected_vs_naive": round(statistics.median(r["expected_x"] for r in rows), 3),
        "sum_planned_vs_naive": round(sum(r["planned"] for r in rows) / total_naive, 2),
        "sum_expected_vs_naive": round(sum(r["expected"] for r in rows) / total_naive, 2),
        "min_max_planned_vs_naive": [min(r["planned_x"] for r in rows), max(r["planned_x"] for r in rows)],
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
