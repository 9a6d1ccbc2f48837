"""`refinery batch --batch-api` over the other ways `batch` is given its traces: a manifest (trace
files, and a trace named by its id on a platform) and `--from PLATFORM --since AGE --failed`,
the platform mocked with aioresponses as the live `batch --from` tests mock it; the Batch API is
the local test server's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import aioresponses

from refinery.app.batch_api_state import load_state
from refinery.app.cli import amain
from tests.test_trace_sources import LS, LS_KEY, SECRET, mock_langsmith

FIX = Path(__file__).parent / "fixtures"
EXPECT = str(FIX / "expectation.json")


def _done(out: Path) -> dict[str, str]:
    summary = json.loads((out / "summary.json").read_text())
    return {name: o["status"] for name, o in summary["outcomes"].items()}


async def test_a_manifest_of_trace_files_and_a_trace_id_goes_through_the_batch_api(
    openai_env, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("LANGSMITH_API_KEY", LS_KEY)
    for name in ("otlp_trace.json", "plain_chat.json"):
        shutil.copy(FIX / name, tmp_path / name)
    manifest = tmp_path / "batch.json"
    entries = [
        {"trace": str(tmp_path / "otlp_trace.json"), "expect": EXPECT, "name": "first"},
        {"trace": str(tmp_path / "plain_chat.json"), "expect": EXPECT},
        {"trace": "langsmith:run-2", "expect": EXPECT},
    ]
    manifest.write_text(json.dumps(entries))
    out = tmp_path / "out"
    with aioresponses.aioresponses(passthrough=["http://127.0.0.1"]) as m:
        mock_langsmith(m)
        rc = await amain(["batch", str(manifest), "--batch-api", "--out", str(out), "--no-llm", "--poll-every", "0.01"])
    assert rc == 0, capsys.readouterr().err
    assert _done(out) == {"first": "done", "plain_chat": "done", "run-2": "done"}
    assert len(openai_env.batches) == load_state(out, "").rounds == 4 and openai_env.files == {}
    kept = (out / "run-2" / "trace.json").read_text()
    assert json.loads(kept)["refinery_source"] == "langsmith:run-2" and SECRET not in kept
    sent = "".join(json.dumps(b) for b in openai_env.response_bodies)
    assert "KeyError with token" in sent and SECRET not in sent and LS_KEY not in sent  # redacted in the lines


async def test_from_langsmith_lists_the_failed_traces_and_analyses_them_through_the_batch_api(
    openai_env, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("LANGSMITH_API_KEY", LS_KEY)
    out = tmp_path / "out"
    argv = ["batch", "--from", "langsmith", "--since", "24h", "--failed", "--project", "support-bot"]
    with aioresponses.aioresponses(passthrough=["http://127.0.0.1"]) as m:
        m.get(f"{LS}/api/v1/sessions?name=support-bot", payload=[{"id": "sess-1", "name": "support-bot"}])
        listing = {"runs": [{"id": "run-2", "trace_id": "run-2"}], "cursors": {"next": None}}
        m.post(f"{LS}/api/v1/runs/query", payload=listing)  # the failed root runs of the period …
        mock_langsmith(m)  # … then the trace itself, page by page
        rc = await amain(
            [*argv, "--batch-api", "--expect", EXPECT, "--out", str(out), "--no-llm", "--poll-every", "0.01"]
        )
    assert rc == 0, capsys.readouterr().err
    assert _done(out) == {"run-2": "done"}
    assert len(openai_env.batches) == 4 and openai_env.files == {}
    assert (out / "run-2" / "report.md").is_file()
