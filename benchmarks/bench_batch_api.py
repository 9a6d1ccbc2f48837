"""`refinery batch --batch-api` over N small traces against the local server's `/v1/batches`.

What a round costs the client: every waiting trace is analysed again up to its next missing
answer (rendering, resuming its checkpoints, building its next request), so a run of S stages
renders each trace S times. Prints, per round, the seconds spent collecting requests (the
client's own work) and waiting on the batch (the server's), then the totals, the client's CPU
seconds and the number of batches made. The server answers at once (`--delay` to slow it).

    python benchmarks/bench_batch_api.py [--n 100] [--turns 2] [--delay 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from refinery.app.cli import amain  # noqa: E402
from refinery.testing.server import OpenAITestServer  # noqa: E402

EXPECT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "expectation.json"


def chat_trace(path: Path, turns: int, words: int = 8) -> None:
    messages = [{"role": "user", "content": f"Reconcile ledger {path.stem}"}]
    for i in range(turns):
        messages.append({"role": "assistant", "name": "agent", "content": f"step {i}: calling fetch_page"})
        error = "TimeoutError: upstream took too long" if i == turns - 1 else None
        messages.append(
            {"role": "tool", "name": "fetch_page", "content": f"page {i} " + "entry " * words, "error": error}
        )
    path.write_text(json.dumps({"messages": messages}))


async def main(n: int, turns: int, delay: float) -> None:
    server = OpenAITestServer(batch_delay_s=delay)
    await server.start()
    os.environ.update(OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=server.base_url)
    import refinery.app.batch_api_command as command

    marks: list[tuple[float, str]] = []
    command._say = lambda line: marks.append((time.perf_counter(), line))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "traces"
        src.mkdir()
        for i in range(n):
            chat_trace(src / f"t{i:04d}.json", turns)
        cpu0, t0 = time.process_time(), time.perf_counter()
        argv = ["batch", str(src), "--batch-api", "--out", str(Path(tmp) / "out"), "--expect", str(EXPECT)]
        rc = await amain([*argv, "--no-llm", "--poll-every", "0.05"])
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await server.stop()
    last, collect, wait = t0, 0.0, 0.0
    print(f"{n} traces of {2 * turns + 1} messages; exit {rc}")
    for at, line in marks:
        if re.search(r"go into round \d+$", line):
            collect += at - last
            print(f"  collected in {at - last:6.2f}s: {line}")
        elif "requests done" in line and "next look" not in line:
            wait += at - last
            print(f"  batch done in {at - last:6.2f}s")
        else:
            continue
        last = at
    print(
        f"wall {wall:.1f}s (collecting {collect:.1f}s, waiting on batches {wait:.1f}s); client CPU {cpu:.1f}s; "
        f"batches made {len(server.batches)}; POST /v1/batches {server.stats['POST /v1/batches']}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.turns, args.delay))
