"""Everything refinery writes may hold trace content: owner-only (0600), or the umask's stricter."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from refinery.app.cli import amain
from refinery.core.artifacts import write_text_atomic

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture
def umask():
    def set_(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    yield set_
    os.umask(old)


def modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


async def test_every_file_a_run_writes_is_owner_only(openai_env, tmp_path, umask):
    out = tmp_path / "out"
    assert (
        await amain(
            [
                "run",
                str(FIX / "plain_chat.json"),
                "--expect",
                str(FIX / "expectation.json"),
                "--out",
                str(out),
                "--keep-store",
                "--store",
                "hosted",
            ]
        )
        == 0
    )
    written = modes(out)
    assert (
        {"files/" + n for n in os.listdir(out / "files")} <= set(written)
        and "report.html" in written
        and "store.json" in written
    )
    assert set(written.values()) == {0o600}, written


def test_a_stricter_umask_is_kept(tmp_path, umask):
    umask(0o277)
    path = write_text_atomic(tmp_path / "a.json", "{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o400


async def test_folders_holding_trace_text_are_owner_only_even_under_umask_000(openai_env, tmp_path, umask):
    umask(0o000)
    out = tmp_path / "out"
    argv = ["run", str(FIX / "plain_chat.json"), "--expect", str(FIX / "expectation.json"), "--out", str(out)]
    argv += ["--store", "hosted"]
    assert await amain([*argv, "--stages", "1-2"]) == 0
    folders = {
        str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")] if p.is_dir()
    }
    assert "out" in folders and "out/files" in folders
    assert set(folders.values()) == {0o700}, folders
