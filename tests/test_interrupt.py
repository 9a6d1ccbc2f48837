"""Ctrl-C and SIGTERM on a real `refinery run` process: one line, exit 130 (Ctrl-C) or 143
(SIGTERM, also in a background job that began with SIGINT ignored, and during rendering), nothing
half-written, and the same command resumes and leaves nothing on the server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from refinery.testing.server import OpenAITestServer

FIX = Path(__file__).parent / "fixtures"


def ignore_sigint() -> None:
    """What a non-interactive shell does to a job it starts in the background (cron, CI, `nohup … &`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


async def start_run(
    server: OpenAITestServer,
    out: Path,
    trace: Path = FIX / "clickhouse_snake_nested.json",
    *,
    background: bool = False,
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
        "--store",
        "hosted",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=ignore_sigint if background else None,
    )


async def wait_for(path: Path, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if path.exists():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.parametrize(
    ("sig", "background", "code"),
    [(signal.SIGINT, False, 130), (signal.SIGTERM, False, 143), (signal.SIGTERM, True, 143)],
    ids=["SIGINT", "SIGTERM", "SIGTERM-with-SIGINT-ignored"],
)
async def test_an_interrupted_run_says_one_line_exits_with_its_code_and_resumes(tmp_path, sig, background, code):
    out = tmp_path / "out"
    async with OpenAITestServer(latency_s=0.4) as server:
        proc = await start_run(server, out, background=background)
        await wait_for(out / "stage1_trace_analysis.json")  # interrupted in the middle of stage 2
        proc.send_signal(sig)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        lines = err.decode().strip().splitlines()
        assert proc.returncode == code
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
        assert not server.stores and not server.files  # the kept store went with the resumed run


def big_trace(path: Path, runs: int = 3000, chars: int = 4000) -> Path:
    """A chat log whose rendering takes seconds (thousands of long messages)."""
    messages = [{"role": "user", "content": "Find the bug"}]
    messages += [{"role": "tool", "content": f"step {i} " + "word " * (chars // 5)} for i in range(runs)]
    path.write_text(json.dumps({"messages": messages}))
    return path


@pytest.mark.parametrize("background", [False, True], ids=["default", "SIGINT-ignored"])
async def test_sigterm_during_rendering_stops_the_run_before_anything_is_uploaded(tmp_path, background):
    out = tmp_path / "out"
    trace = big_trace(tmp_path / "big.json")
    async with OpenAITestServer() as server:
        proc = await start_run(server, out, trace, background=background)
        await wait_for(out / "inputs.json")  # the folder is claimed: rendering begins
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        lines = err.decode().strip().splitlines()
        assert proc.returncode == 143, lines
        assert lines[-1] == "refinery: interrupted; rerun the same command to resume"
        assert not any("Traceback" in ln for ln in lines), lines
        assert not any("prepare start" in ln for ln in lines), lines  # stopped inside rendering, not after it
        assert server.stats["POST /v1/files"] == 0 and server.stats["POST /v1/vector_stores"] == 0
        assert not list(out.rglob("*.tmp")) and not (out / ".refinery.lock").exists()


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


async def test_a_signal_while_the_commands_code_runs_cancels_it_and_raises_nothing_into_that_code():
    """The signal may come while asyncio's or aiohttp's own code runs (a socket's `send`), which logs
    and swallows what is raised there: the command is cancelled at its next `await` instead."""
    from refinery.app.cli import _Stop

    stop = _Stop()
    reached_await = False

    async def command() -> None:
        nonlocal reached_await
        stop.task, stop.loop = asyncio.current_task(), asyncio.get_running_loop()
        stop(signal.SIGTERM, sys._getframe())  # as the handler is called in this coroutine's frame
        reached_await = True
        await asyncio.sleep(30)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.create_task(command()), 10)
    assert reached_await and stop.exit_code == 143


def test_a_signal_after_the_command_has_returned_is_ignored_and_its_exit_code_kept(monkeypatch):
    """Once `main` returned, the run is over: a late SIGINT or SIGTERM during the interpreter's teardown
    stops nothing, and must not raise into it (a traceback after a finished run)."""
    from refinery.app import cli

    monkeypatch.setattr(cli, "main", lambda: 0)
    kept = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as ended:
            cli.entry()
        assert ended.value.code == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        for signum, handler in kept.items():
            signal.signal(signum, handler)
