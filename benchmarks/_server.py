"""Start `python -m refinery.testing.server` in a subprocess for a benchmark (its own CPU)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def server(*args: str) -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "refinery.testing.server", *args, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        yield url
    finally:
        proc.terminate()
        await proc.wait()


def stats(base_url: str) -> dict[str, int]:
    req = urllib.request.Request(base_url.replace("/v1", "/_refinery/stats"))
    with urllib.request.urlopen(req) as resp:  # loopback only
        return json.loads(resp.read())


def machine() -> str:
    import os
    import platform

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} "
        f"{platform.release()}"
    )
