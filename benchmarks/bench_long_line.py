"""`refinery plan` on a trace whose one message is a single line of 1 MB and of 50 MB: the time
of each and their ratio (linear: about 50; the target is at most 60). Rendering cuts and wraps
a line by index, so a long line costs what its characters cost.

Run: `python benchmarks/bench_long_line.py [--big-mb 50]`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _server import machine  # noqa: E402

from refinery.app.cli import main as cli_main  # noqa: E402


def planned_seconds(folder: Path, mb: int) -> float:
    """Seconds `refinery plan` takes on a chat whose tool output is one line of `mb` MB."""
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    line = (words * ((mb << 20) // len(words) + 1))[: mb << 20]
    trace = folder / f"line_{mb}mb.json"
    chat = [
        {"role": "user", "content": "Summarise the log and say why the job failed."},
        {"role": "tool", "content": line},
        {"role": "assistant", "content": "The job failed."},
    ]
    trace.write_text(json.dumps(chat))
    expect = folder / "expect.json"
    expect.write_text(json.dumps({"description": "The agent finds why the job failed."}))
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(["plan", str(trace), "--expect", str(expect), "--json"])
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"plan exited {code} on the {mb} MB line")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-mb", type=int, default=50)
    args = parser.parse_args()
    print(f"# long single line — {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        small = planned_seconds(Path(tmp), 1)
        big = planned_seconds(Path(tmp), args.big_mb)
    print(f"plan, 1 MB line: {small:.2f} s; {args.big_mb} MB line: {big:.2f} s; ratio {big / small:.1f} (target ≤ 60)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
