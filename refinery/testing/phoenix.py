"""A real Arize Phoenix (`phoenix serve`: SQLite, no account) started on free loopback ports for
the time of a test or a benchmark, and stopped after.

Why here: `refinery run phoenix:<id>` is only proven against the real server, and both the tests
and the round-trip benchmark need one; Phoenix lives in a virtualenv of its own (its dependencies
never mix with refinery's), so it is found as an executable — `REFINERY_PHOENIX` (the `phoenix`
executable or the bin folder holding it), else `phoenix` on PATH — and spans are sent to it by a
script run with the Python beside that executable.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PhoenixServer", "phoenix_executable", "running_phoenix"]

PHOENIX_ENV = "REFINERY_PHOENIX"


def phoenix_executable() -> Path | None:
    """Phoenix's `phoenix` executable: `$REFINERY_PHOENIX` (or `phoenix` in that folder), else PATH."""
    given = os.environ.get(PHOENIX_ENV)
    if given:
        path = Path(given)
        return path / "phoenix" if path.is_dir() else path
    found = shutil.which("phoenix")
    return Path(found) if found else None


@dataclass(frozen=True)
class PhoenixServer:
    url: str  # http://127.0.0.1:<port>
    python: Path  # the interpreter Phoenix is installed in (it has the OpenTelemetry SDK and exporter)

    def run_script(self, script: Path, *args: str, env: Mapping[str, str] | None = None, timeout_s: float = 300) -> str:
        """Run `script` with Phoenix's Python (`env` added to this process's); its stdout. A failure
        raises with its stderr."""
        done = subprocess.run(
            [str(self.python), str(script), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, **(env or {})},
        )
        if done.returncode != 0:
            raise RuntimeError(f"{script.name} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def span_count(self, project: str, trace_id: str, *, key: str | None = None) -> int:
        """How many spans of `trace_id` Phoenix has stored in `project` so far (0 while it has none)."""
        count, cursor = 0, None
        while True:
            query = {"trace_id": trace_id, "limit": "1000", **({"cursor": cursor} if cursor else {})}
            url = f"{self.url}/v1/projects/{urllib.parse.quote(project, safe='')}/spans?{urllib.parse.urlencode(query)}"
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:
                    page = json.load(resp)
            except OSError:
                return count
            count += len(page.get("data") or [])
            cursor = page.get("next_cursor")
            if not cursor:
                return count

    def wait_for_spans(
        self, project: str, trace_id: str, expected: int, *, key: str | None = None, timeout_s: float = 120
    ) -> None:
        """Phoenix stores what it receives in the background: wait until all `expected` spans are in."""
        deadline = time.monotonic() + timeout_s
        while (found := self.span_count(project, trace_id, key=key)) < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Phoenix stored {found} of the {expected} spans of {trace_id} in {timeout_s:.0f} s")
            time.sleep(0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_phoenix(
    executable: Path, work: Path, *, settings: Mapping[str, str] | None = None, start_timeout_s: float = 300
) -> Iterator[PhoenixServer]:
    """`phoenix serve` with its database in `work`, on free ports of 127.0.0.1, until the block ends;
    `settings` are more of Phoenix's own variables (`PHOENIX_ENABLE_AUTH`, …)."""
    port = _free_port()
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_WORKING_DIR": str(work),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        **(settings or {}),
    }
    log_path = work / "phoenix.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([str(executable), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(proc, url, log_path, start_timeout_s)
            yield PhoenixServer(url, executable.parent / "python")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until_up(proc: subprocess.Popen[bytes], url: str, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"phoenix serve exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"phoenix serve did not answer {url}/healthz within {timeout_s:.0f} s")
        time.sleep(0.5)
