"""Where a command writes: `--out` is never a system folder (as root, `--out /` wrote artifacts
into `/`), and a trace fetched by id without `--out` is removed with the command."""

from __future__ import annotations

from pathlib import Path

import aioresponses
import pytest

from refinery.analysis.output_folder import OutputFolder
from refinery.app.cli import amain
from refinery.core.confined import SystemFolderError
from tests.test_trace_sources import LS_KEY, mock_langsmith

FIX = Path(__file__).parent / "fixtures"
TRACE = FIX / "clickhouse_snake_nested.json"


@pytest.mark.parametrize("out", ["/", "/etc", "/usr/local/lib/x", "/proc/self", "/boot", "~", "/home", "/tmp"])
async def test_out_refuses_a_system_folder_in_one_line_before_anything_is_read(openai_env, capsys, out):
    argv = ["run", str(TRACE), "--expect", str(FIX / "expectation.json"), "--out", out]
    assert await amain(argv) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"refinery: error: --out {out}: a system folder")
    assert line.endswith("give a folder of your own (e.g. ./refinery-out)")
    assert openai_env.stats["POST /v1/files"] == 0


@pytest.mark.parametrize("command", ["batch", "demo"])
async def test_every_command_with_an_out_folder_refuses_the_root(openai_env, capsys, command):
    argv = [command, str(FIX), "--out", "/"] if command == "batch" else [command, "--out", "/"]
    assert await amain(argv) == 2
    assert "--out /: a system folder" in capsys.readouterr().err


async def test_a_library_output_folder_refuses_the_root_too():
    with pytest.raises(SystemFolderError, match="output folder /: a system folder"):
        async with OutputFolder("/", {"trace_id": "t"}):
            pass


async def test_a_folder_of_ones_own_under_home_or_tmp_is_fine(openai_env, tmp_path):
    argv = ["run", str(TRACE), "--expect", str(FIX / "expectation.json"), "--out", str(tmp_path / "out")]
    assert await amain(argv) == 0


async def test_plan_of_a_trace_by_id_without_out_leaves_no_fetched_folder(tmp_path, monkeypatch, capsys):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("LANGSMITH_API_KEY", LS_KEY)
    for _ in range(2):
        with aioresponses.aioresponses() as mocked:
            mock_langsmith(mocked)
            assert await amain(["plan", "langsmith:run-2", "--expect", str(FIX / "expectation.json")]) == 0
    assert "trace run-1" in capsys.readouterr().out  # it was fetched and planned
    assert not list(tmp_path.glob("refinery-fetched-*"))
