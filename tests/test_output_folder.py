"""One writer per output folder, and a folder's results from one set of inputs: a second run is
refused while the first writes, a folder holding other inputs' results is refused before anything
is uploaded, and `--fresh` starts over, deleting what the earlier run left on the account."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from refinery.analysis.output_folder import INPUTS_ARTIFACT, OutputFolder, OutputFolderBusyError
from refinery.app.cli import amain
from refinery.errors import ArtifactsMismatchError

FIX = Path(__file__).parent / "fixtures"
TRACE = FIX / "clickhouse_snake_nested.json"
OTHER_TRACE = FIX / "otlp_trace.json"
EXPECT = FIX / "expectation.json"


def run(trace: Path, out: Path, *extra: str) -> list[str]:
    return ["run", str(trace), "--expect", str(EXPECT), "--out", str(out), "--store", "hosted", *extra]


async def test_a_second_run_on_a_folder_being_written_says_who_holds_it(openai_env, tmp_path, capsys):
    out = tmp_path / "out"
    async with OutputFolder(out, {"trace_id": "other"}):  # another run, mid-write
        assert await amain(run(TRACE, out)) == 2
    err = capsys.readouterr().err
    assert "is being written by another run (pid " in err and "trace 'other'" in err
    assert openai_env.files == {} and openai_env.stores == {}  # nothing uploaded
    assert await amain(run(TRACE, out, "--fresh")) == 0  # free again once the holder ended (its inputs were others)


async def test_two_claims_at_once_one_wins_the_other_is_refused(tmp_path):
    async def claim(hold: float) -> str:
        async with OutputFolder(tmp_path, {"trace_id": "t"}):
            await asyncio.sleep(hold)
        return "wrote"

    results = await asyncio.gather(claim(0.2), claim(0.2), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["OutputFolderBusyError", "str"]


async def test_a_folder_holding_another_traces_results_is_refused_before_any_upload(openai_env, tmp_path, capsys):
    out = tmp_path / "out"
    assert await amain(run(TRACE, out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    uploads = openai_env.stats["POST /v1/files"]
    assert await amain(run(OTHER_TRACE, out)) == 2
    err = capsys.readouterr().err
    assert "holds results made from other inputs (trace_id:" in err and "--fresh" in err
    assert openai_env.stats["POST /v1/files"] == uploads and openai_env.stores == {}
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing written


async def test_another_model_on_a_finished_folder_is_refused_naming_it(openai_env, tmp_path, capsys):
    out = tmp_path / "out"
    assert await amain(run(TRACE, out)) == 0
    assert await amain(run(TRACE, out, "--model", "gpt-4o-mini")) == 2
    assert "model: 'gpt-4o' there, 'gpt-4o-mini' now" in capsys.readouterr().err
    assert json.loads((out / INPUTS_ARTIFACT).read_text())["model"] == "gpt-4o"


async def test_fresh_deletes_the_earlier_runs_store_and_files_then_starts_over(openai_env, tmp_path):
    out = tmp_path / "out"
    assert await amain(run(TRACE, out, "--stages", "1-2")) == 0  # a partial run keeps its store
    assert openai_env.stores and openai_env.files
    left = set(openai_env.files)
    assert await amain(run(OTHER_TRACE, out, "--fresh")) == 0
    assert openai_env.files == {} and openai_env.stores == {}  # the old ones deleted, the new ones cleaned up
    assert not left & set(openai_env.files)
    assert json.loads((out / "stage1_trace_analysis.json").read_text())["trace_id"] != "clickhouse"
    assert (
        json.loads((out / INPUTS_ARTIFACT).read_text())["trace_id"]
        == json.loads((out / "stage4_synthesis.json").read_text())["trace_id"]
    )


async def test_a_folder_written_before_inputs_were_recorded_is_still_checked_by_trace(tmp_path):
    (tmp_path / "stage1_trace_analysis.json").write_text(json.dumps({"trace_id": "old", "output": {}}))
    with pytest.raises(ArtifactsMismatchError, match="trace_id: 'old' there, 'new' now"):
        async with OutputFolder(tmp_path, {"trace_id": "new"}):
            pass
    assert not (tmp_path / INPUTS_ARTIFACT).exists()


async def test_the_lock_is_released_when_the_run_ends_even_by_an_error(tmp_path):
    with pytest.raises(RuntimeError):
        async with OutputFolder(tmp_path, {"trace_id": "t"}):
            raise RuntimeError("stage failed")
    async with OutputFolder(tmp_path, {"trace_id": "t"}):
        with pytest.raises(OutputFolderBusyError):
            async with OutputFolder(tmp_path, {"trace_id": "t"}):
                pass


@pytest.mark.parametrize(
    "name", [".refinery.lock", "report.md", "files", "stage1_groups", "store.files", "inputs.json"]
)
async def test_a_run_refuses_a_folder_where_one_of_its_own_names_is_a_link(openai_env, tmp_path, capsys, name):
    """A link planted where refinery reads or writes its own file is refused in one line, before
    anything is uploaded; the file it points to is neither read nor written."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(target / "keep.txt" if name not in ("files", "stage1_groups") else target)
    assert await amain(run(TRACE, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"refinery: error: {out / name}: a symbolic link; refinery does not follow links where it reads or writes "
        "its own files (remove it, or use another folder)"
    )
    assert openai_env.files == {} and openai_env.stores == {}
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"] and (target / "keep.txt").read_text() == "keep"


async def test_an_output_folder_that_is_itself_a_link_is_still_used(openai_env, tmp_path):
    """Only the names refinery adds are never followed: `--out ~/results` may be a link to another disk."""
    (tmp_path / "disk").mkdir()
    (tmp_path / "results").symlink_to(tmp_path / "disk")
    assert await amain(run(TRACE, tmp_path / "results")) == 0
    assert (tmp_path / "disk" / "report.md").is_file() and (tmp_path / "disk" / "files").is_dir()


async def test_a_folder_made_without_redaction_is_not_resumed_by_a_redacting_run(openai_env, tmp_path, capsys):
    """`--no-redact --stages 1-2`, then the same command without `--no-redact`: its stage 3–4
    requests, report and artifacts would carry the unredacted secrets of stages 1–2 while it says
    "redacted before upload". Refused before any upload, as other inputs are."""
    out = tmp_path / "out"
    assert await amain(run(TRACE, out, "--no-redact", "--stages", "1-2")) == 0
    assert json.loads((out / INPUTS_ARTIFACT).read_text())["redaction"] == "off"
    uploads, calls = openai_env.stats["POST /v1/files"], openai_env.stats["POST /v1/responses"]
    capsys.readouterr()
    assert await amain(run(TRACE, out)) == 2
    err = capsys.readouterr().err
    assert "holds results made from other inputs (redaction: 'off' there, 'on' now)" in err
    assert openai_env.stats["POST /v1/files"] == uploads and openai_env.stats["POST /v1/responses"] == calls
    assert await amain(run(TRACE, out, "--no-redact")) == 0  # the same setting resumes
    assert openai_env.stats["POST /v1/files"] == uploads  # from the kept store
