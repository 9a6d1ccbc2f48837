"""`refinery batch --batch-api` on Azure OpenAI's Global Batch: the local test server playing
Azure's v1 API (`/openai/v1/...`, the key in an `api-key` header), the command run end to end —
input files uploaded, batches made and polled, results read back, files deleted — with the
deployment's name as each line's `model` and costs priced as its base model at the batch rate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from refinery.app.batch_api_state import load_state
from refinery.app.cli import amain
from refinery.core.pricing import estimate_cost_usd
from refinery.testing.server import OpenAITestServer

FIX = Path(__file__).parent / "fixtures"
KEY = "az-" + "k" * 30


@pytest.fixture
async def azure_server(monkeypatch):
    async with OpenAITestServer(azure=True, api_key=KEY) as server:
        for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_PROJECT", "OPENAI_ORG_ID"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.azure_endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        yield server


async def test_a_batch_runs_end_to_end_on_azures_global_batch_with_the_deployment_as_model(
    azure_server, tmp_path, capsys
):
    src = tmp_path / "traces"
    src.mkdir()
    for name in ("otlp_trace.json", "plain_chat.json"):
        shutil.copy(FIX / name, src / name)
    out = tmp_path / "out"
    argv = ["batch", str(src), "--batch-api", "--expect", str(FIX / "expectation.json"), "--out", str(out)]
    rc = await amain([*argv, "--model", "prod-gpt4o", "--base-model", "gpt-4o", "--no-llm", "--poll-every", "0.01"])
    assert rc == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert {o["status"] for o in summary["outcomes"].values()} == {"done"} and len(summary["outcomes"]) == 2
    stats = azure_server.stats
    assert stats["POST /openai/v1/files"] == stats["POST /openai/v1/batches"] == load_state(out, "").rounds == 4
    assert stats["auth api-key"] > 0 and stats["auth bearer"] == 0
    batches = list(azure_server.batches.values())
    assert {b.endpoint for b in batches} == {"/v1/responses"} and all(b.status == "completed" for b in batches)
    assert {line["body"]["model"] for b in batches for line in b.lines} == {"prod-gpt4o"}  # the deployment
    assert azure_server.files == {}  # input, output and error files all deleted
    s1 = summary["batch_api"]["stages"]["stage1"]
    full = estimate_cost_usd({"input_tokens": s1["input_tokens"], "output_tokens": s1["output_tokens"]}, "gpt-4o")
    assert full > 0 and s1["cost_usd"] == pytest.approx(full / 2)  # priced as the base model, at the batch rate
    written = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert KEY not in written
