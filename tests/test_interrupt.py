"""Ctrl-C and SIGTERM on a real `refinery run` process: one line, exit 130, nothing half-written,
and the same command resumes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from refinery.testing.server import OpenAITestServer

FIX = Path(__file__).parent / "fixtures"


async def start_run(
    server: OpenAITestServer, out: Path, trace: Path = FIX / "clickhouse_snake_nested.json"
) -> asyncio.subprocess.Process:
    env = {**os.environ, "OPENAI_API_KEY": "sk-local", "OPENAI_BASE_URL": server.base_url}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "refinery",
        "run",
        str(trace),
        "--expect",
        str(FIX / "expectation.json"),
        "--out",
        str(out),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def wait_for(path: Path, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if path.exists():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_an_interrupted_run_says_one_line_exits_130_and_resumes(tmp_path, sig):
    out = tmp_path / "out"
    async with OpenAITestServer(latency_s=0.4) as server:
        proc = await start_run(server, out)
        await wait_for(out / "stage1_trace_analysis.json")  # interrupted in the middle of stage 2
        proc.send_signal(sig)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        lines = err.decode().strip().splitlines()
        assert proc.returncode == 130
        assert lines[-1] == "refinery: interrupted; rerun the same command to resume"
        assert not any("Traceback" in ln or "CancelledError" in ln or "Unclosed" in ln for ln in lines), lines
        assert not list(out.rglob("*.tmp"))
        assert not (out / "stage2_gap_analysis.json").exists()
        stage1 = (out / "stage1_trace_analysis.json").read_bytes()

        rerun = await start_run(server, out)
        _, err = await asyncio.wait_for(rerun.communicate(), 60)
        assert rerun.returncode == 0, err.decode()
        assert (out / "stage1_trace_analysis.json").read_bytes() == stage1  # resumed, not redone
        assert (out / "stage4_synthesis.json").exists() and (out / "report.html").exists()


async def test_a_trace_changed_during_the_run_stops_it_before_the_next_stage_even_with_size_and_time_kept(tmp_path):
    trace = tmp_path / "trace.json"
    original = (FIX / "clickhouse_snake_nested.json").read_bytes()
    trace.write_bytes(original)
    out = tmp_path / "out"
    async with OpenAITestServer(latency_s=0.4) as server:
        proc = await start_run(server, out, trace)
        await wait_for(out / "stage1_trace_analysis.json")
        stamp = trace.stat()
        changed = original.replace(b"answer_question", b"ANSWER_QUESTION", 1)
        assert len(changed) == len(original) and changed != original
        trace.write_bytes(changed)
        os.utime(trace, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # the same size and modification time
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "the trace file changed during the run" in err.decode()
    assert not (out / "stage3_diagnosis.json").exists() and not (out / "stage4_synthesis.json").exists()
