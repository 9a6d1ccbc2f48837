"""Uploading K files: one by one vs concurrently, against the local server with upload latency.

python benchmarks/bench_upload.py [--k 24] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import machine, server  # noqa: E402

from refinery.wire.transport import ApiSettings, OpenAITransport  # noqa: E402
from refinery.wire.vector_store_manager import VectorStoreManager  # noqa: E402


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--k", type=int, default=24)
    p.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per upload")
    args = p.parse_args()
    print(f"# upload benchmark — {machine()} — K={args.k} files of 20 KB, {args.latency}s server latency per upload")
    print("| concurrency | wall (s) | speed-up vs one by one |")
    print("|---|---|---|")
    async with server("--upload-latency", str(args.latency)) as url:
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i in range(args.k):
                path = Path(tmp) / f"trace_runs_{i:03d}.md"
                path.write_text(f"# run {i}\n" + "lorem ipsum dolor sit amet " * 750)
                paths.append(path)
            base = None
            for concurrency in (1, 4, 8, 16):
                async with OpenAITransport(ApiSettings(api_key="sk-bench", base_url=url)) as t:
                    vsm = VectorStoreManager(t, upload_concurrency=concurrency)
                    store = await vsm.create_store("bench")
                    t0 = time.perf_counter()
                    await vsm.upload_files(store, paths)
                    await vsm.poll_ready(store, poll_s=0.05)
                    wall = time.perf_counter() - t0
                base = base or wall
                print(f"| {concurrency} | {wall:.2f} | {base / wall:.1f}× |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
