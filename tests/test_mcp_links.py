"""`refinery mcp --root`: a link planted inside the root, where refinery reads or writes one of its
own files, is refused — nothing outside the root is read or written through it. Driven by the
MCP SDK's own client over stdio, against the local OpenAI-compatible server."""

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
SECRET = "outside-the-root: do not read or overwrite"


def text_of(result) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(getattr(c, "text", "") for c in result.content)


def refused(result) -> bool:  # type: ignore[no-untyped-def]
    return bool(getattr(result, "is_error", None) or getattr(result, "isError", None))


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    shutil.copy(FIX / "otlp_trace.json", root / "trace.json")
    shutil.copy(FIX / "expectation.json", root / "expect.json")
    (outside / "secret.txt").write_text(SECRET)
    (outside / "diagnosis.json").write_text(json.dumps({"trace_id": "outside", "output": {"root_cause": SECRET}}))
    (outside / "dir").mkdir()
    return root, outside


def untouched(outside: Path) -> None:
    assert (outside / "secret.txt").read_text() == SECRET
    assert sorted(p.name for p in outside.iterdir()) == ["diagnosis.json", "dir", "secret.txt"]
    assert list((outside / "dir").iterdir()) == []


async def test_links_to_outside_the_root_are_refused_and_nothing_outside_is_read_or_written(places):
    root, outside = places
    (root / "linked_report").mkdir()
    (root / "linked_report" / "report.md").symlink_to(outside / "secret.txt")
    (root / "linked_lock").mkdir()
    (root / "linked_lock" / ".refinery.lock").symlink_to(outside / "secret.txt")
    (root / "linked_files").mkdir()
    (root / "linked_files" / "files").symlink_to(outside / "dir")
    (root / "linked_out").symlink_to(outside / "dir")
    (root / "runs" / "one").mkdir(parents=True)
    (root / "runs" / "one" / "stage3_diagnosis.json").symlink_to(outside / "diagnosis.json")
    async with OpenAITestServer() as server:
        env = {**os.environ, "OPENAI_API_KEY": "sk-local", "OPENAI_BASE_URL": server.base_url}
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "refinery", "mcp", "--root", str(root)], env=env
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()

            result = await session.call_tool("read_report", {"out": "linked_report"})
            assert refused(result) and "symbolic link" in text_of(result) and SECRET not in text_of(result)

            for out in ("linked_lock", "linked_files", "linked_out"):
                arguments = {"trace": "trace.json", "expect": "expect.json", "out": out}
                result = await session.call_tool("analyze_trace", arguments)
                assert refused(result), (out, text_of(result))
                assert "symbolic link" in text_of(result) or "outside the folders" in text_of(result)

            result = await session.call_tool("list_runs", {"folder": "runs"})
            assert refused(result) and "symbolic link" in text_of(result) and SECRET not in text_of(result)
        assert server.stats["POST /v1/files"] == 0 and server.stats["POST /v1/responses"] == 0  # refused first
    untouched(outside)


async def test_an_analysis_into_a_folder_without_links_still_writes_its_files(places):
    root, outside = places
    async with OpenAITestServer() as server:
        env = {**os.environ, "OPENAI_API_KEY": "sk-local", "OPENAI_BASE_URL": server.base_url}
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "refinery", "mcp", "--root", str(root), "--store", "hosted"], env=env
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            arguments = {"trace": "trace.json", "expect": "expect.json", "out": "out"}
            result = await session.call_tool("analyze_trace", arguments)
            assert not refused(result), text_of(result)
            (root / "out" / "report.md").unlink()
            (root / "out" / "report.md").symlink_to(outside / "secret.txt")  # planted after the run
            again = await session.call_tool("read_report", {"out": "out"})
            assert refused(again) and SECRET not in text_of(again)
    assert (root / "out" / "files").is_dir() and any((root / "out" / "files").iterdir())
    untouched(outside)
