"""Inputs that must not hang or crash refinery: each gives one line and the documented exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from refinery.app.cli import amain
from refinery.traces import load_trace

FIX = Path(__file__).parent / "fixtures"


def nested(depth: int) -> dict:
    span: dict = {
        "span_id": f"s{depth}",
        "span_name": "leaf",
        "timestamp": "2025-01-01T00:00:00Z",
        "span_attributes": {},
    }
    for d in range(depth - 1, -1, -1):
        span = {
            "span_id": f"s{d}",
            "span_name": "n",
            "timestamp": "2025-01-01T00:00:00Z",
            "span_attributes": {},
            "child_spans": [span],
        }
    return {"trace_id": "t", "spans": [span]}


def deep_spans_text(depth: int) -> str:
    """Spans nested `depth` deep, written by hand (json.dumps itself stops near 1,000 levels)."""
    head = (
        '{"span_id": "s%d", "span_name": "n", "timestamp": "2025-01-01T00:00:00Z", "span_attributes": {}, '
        '"child_spans": ['
    )
    return '{"trace_id": "t", "spans": [' + "".join(head % d for d in range(depth)) + "]}" * depth + "]}"


async def test_spans_nested_hundreds_deep_load_and_thousands_deep_give_one_line_and_exit_2(tmp_path, capsys):
    ok = tmp_path / "deep.json"
    ok.write_text(json.dumps(nested(300)))
    assert len(load_trace(ok).runs) == 301
    for text in (deep_spans_text(5_000), "[" * 100_000 + "]" * 100_000):
        path = tmp_path / "deeper.json"
        path.write_text(text)
        assert await amain(["plan", str(path), "--expect", str(FIX / "expectation.json")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "nested too deeply" in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1e400", "1e30"])
def test_absurd_timestamps_and_durations_are_taken_as_absent(value):
    span = {
        "span_id": "a",
        "span_name": "x",
        "timestamp": json.loads(value) if value != "1e30" else 10**30,
        "duration": json.loads(value) if value != "1e30" else 10**30,
        "span_attributes": {},
    }
    trace = load_trace({"trace_id": "t", "spans": [span]})
    assert trace.runs[0].start_time is None and trace.runs[0].end_time is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("where", ["trace", "expect"])
def test_a_fifo_is_refused_not_waited_on(tmp_path, where):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    trace, expect = (fifo, FIX / "expectation.json") if where == "trace" else (FIX / "plain_chat.json", fifo)
    # in a process of its own, with a timeout: reading a FIFO that nobody writes would wait forever
    out = subprocess.run(
        [sys.executable, "-m", "refinery", "plan", str(trace), "--expect", str(expect)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "not a regular file" in out.stderr and out.stderr.count("\n") == 1


def test_a_broken_pipe_ends_quietly():
    plan = f"{sys.executable} -m refinery plan {FIX / 'plain_chat.json'} --expect {FIX / 'expectation.json'}"
    cmd = f"{plan} --show-bodies | head -1"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert out.stdout.count("\n") == 1 and "Broken pipe" not in out.stderr and "Traceback" not in out.stderr
