"""`refinery mcp` driven by the official MCP SDK's own client over stdio: it lists the tools, plans
and analyses a trace against the local OpenAI-compatible server, and refuses a path outside
`--root`."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

mcp = pytest.importorskip("mcp", reason="the mcp extra is not installed (pip install '.[mcp]'; .ci/run installs it)")
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

from refinery.testing.server import OpenAITestServer  # noqa: E402

FIX = Path(__file__).parent / "fixtures"


def payload(result) -> object:
    """A tool result's structured content, else its JSON text (SDK 2.x names fields in snake case)."""
    content = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
    if content:
        return content.get("result", content) if isinstance(content, dict) else content
    return json.loads(result.content[0].text)


def is_error(result) -> bool:
    return bool(getattr(result, "is_error", None) or getattr(result, "isError", None))


async def test_an_agent_lists_the_tools_gets_a_verdict_and_cannot_leave_the_root(tmp_path):
    root = tmp_path / "work"
    root.mkdir()
    shutil.copy(FIX / "otlp_trace.json", root / "trace.json")
    shutil.copy(FIX / "expectation.json", root / "expect.json")
    (tmp_path / "secret.json").write_text("{}")
    async with OpenAITestServer() as server:
        env = {**os.environ, "OPENAI_API_KEY": "sk-local", "OPENAI_BASE_URL": server.base_url}
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "refinery", "mcp", "--root", str(root)], env=env
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            assert names == {"plan_trace", "analyze_trace", "read_report", "list_runs", "find_patterns"}

            plan = payload(await session.call_tool("plan_trace", {"trace": "trace.json", "expect": "expect.json"}))
            assert plan["runs"] > 0 and plan["total"]["calls"] >= 4

            heard: list[tuple[float, float | None, str | None]] = []

            async def progress(done: float, total: float | None, message: str | None) -> None:
                heard.append((done, total, message))

            arguments = {"trace": "trace.json", "expect": "expect.json", "out": "out"}
            verdict = payload(await session.call_tool("analyze_trace", arguments, progress_callback=progress))
            assert heard and heard[-1] == (5, 5, "stage4 done")  # reported stage by stage
            assert (
                verdict["failure_type"]
                and verdict["decisive_step"]["run_id"]
                and verdict["report"].endswith("report.md")
            )
            assert verdict["stand_in_model"] is True  # the test server's answers are labelled as the stand-in's
            assert (root / "out" / "report.md").is_file()
            report = await session.call_tool("read_report", {"out": "out"})
            assert "# Why the run failed" in report.content[0].text
            [listed] = payload(await session.call_tool("list_runs", {"folder": "."}))
            assert listed["folder"] == str(root / "out") and listed["failure_type"] == verdict["failure_type"]
            assert payload(await session.call_tool("find_patterns", {"folders": ["out"]})) == []  # no batch there

            refused = await session.call_tool("read_report", {"out": str(tmp_path)})
            assert is_error(refused) and "outside the folders this server was started with" in refused.content[0].text
            refused = await session.call_tool("plan_trace", {"trace": "../secret.json"})
            assert is_error(refused)


async def test_the_tools_are_served_over_streamable_http_on_the_loopback(tmp_path):
    import asyncio
    import socket

    from mcp.client.streamable_http import streamable_http_client

    root = tmp_path / "work"
    root.mkdir()
    shutil.copy(FIX / "otlp_trace.json", root / "trace.json")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OPENAI_API_KEY": "sk-local"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "refinery",
        "mcp",
        "--root",
        str(root),
        "--http",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = asyncio.get_running_loop().time() + 120  # until it listens (a loaded machine starts slowly)
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                assert proc.returncode is None, f"refinery mcp exited with {proc.returncode}"
                assert asyncio.get_running_loop().time() < deadline, "refinery mcp --http never listened"
                await asyncio.sleep(0.1)
        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await session.initialize()
                names = {t.name for t in (await session.list_tools()).tools}
                assert "analyze_trace" in names
                plan = payload(await session.call_tool("plan_trace", {"trace": "trace.json", "expect": None}))
                assert isinstance(plan, dict) and plan["runs"] > 0
    finally:
        proc.terminate()
        await proc.wait()


async def test_a_cancelled_analysis_stops_and_the_server_goes_on(tmp_path):
    import asyncio

    root = tmp_path / "work"
    root.mkdir()
    shutil.copy(FIX / "otlp_trace.json", root / "trace.json")
    shutil.copy(FIX / "expectation.json", root / "expect.json")
    async with OpenAITestServer(latency_s=1.0) as server:
        env = {**os.environ, "OPENAI_API_KEY": "sk-local", "OPENAI_BASE_URL": server.base_url}
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "refinery", "mcp", "--root", str(root)], env=env
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            arguments = {"trace": "trace.json", "expect": "expect.json", "out": "out"}
            call = asyncio.create_task(session.call_tool("analyze_trace", arguments))
            for _ in range(100):  # until the analysis has begun calling the model
                if server.stats["POST /v1/responses"]:
                    break
                await asyncio.sleep(0.05)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            calls = server.stats["POST /v1/responses"]
            await asyncio.sleep(3)
            assert server.stats["POST /v1/responses"] <= calls + 1  # it stopped (one call may have been in flight)
            assert not (root / "out" / "report.md").exists()
            again = payload(await session.call_tool("analyze_trace", arguments))  # the folder is free again
            assert again["report"].endswith("report.md")
