"""The `refinery` CLI: plan offline, run end to end over mocked HTTP, exit codes, outputs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from refinery.app.cli import amain
from tests.fake_openai import SAMPLES, FakeOpenAI
from tests.helpers import BASE

FIX = Path(__file__).parent / "fixtures"
TRACE = str(FIX / "langsmith_runs.json")
EXPECT = str(FIX / "expectation.json")
HOSTED = ["--store", "hosted"]  # the mocked host is not OpenAI's: the hosted path is asked for


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cli")
    monkeypatch.setenv("OPENAI_BASE_URL", BASE)
    monkeypatch.delenv("OPENAI_PROJECT", raising=False)
    monkeypatch.delenv("OPENAI_ORG_ID", raising=False)


@pytest.fixture
def fake(mocked):
    return FakeOpenAI(mocked, indexing_polls=0)


async def test_plan_needs_no_key_and_no_network(monkeypatch, mocked, capsys, spec):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    rc = await amain(["plan", TRACE, "--expect", EXPECT, "--json"])
    assert rc == 0
    assert mocked.requests == {}
    data = json.loads(capsys.readouterr().out)
    assert [f["name"] for f in data["files"]] == [
        "6f1c2d3e-0000-4000-8000-000000000001_runs_001-003.md",
        "6f1c2d3e-0000-4000-8000-000000000001_index.md",
        "6f1c2d3e-0000-4000-8000-000000000001_expectations.md",
    ]
    assert [r["call"] for r in data["requests"]] == ["stage1", "stage2", "stage3", "stage4"]
    for r in data["requests"]:
        assert r["estimated_input_tokens"] > 0
        assert spec.validate(r["body"]) == []
    assert data["failed_runs"] == 1


async def test_plan_prints_the_naive_one_prompt_baseline_beside_its_own_tokens(monkeypatch, capsys):
    """The naive baseline is the whole rendered trace with the system prompt and the expectation in
    one prompt: more than the files alone, and the ratio is the plan's input tokens over it."""
    from refinery.core.tokens import estimate_tokens
    from refinery.prompts.system_prompts import SYSTEM

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert await amain(["plan", TRACE, "--expect", EXPECT, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    naive = data["naive_prompt"]
    assert naive["input_tokens"] > data["file_tokens"] + estimate_tokens(SYSTEM.text)
    assert naive["planned_vs_naive"] == round(data["total"]["input_tokens"] / naive["input_tokens"], 2)
    assert await amain(["plan", TRACE, "--expect", EXPECT]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("naive"))
    assert f" {naive['input_tokens']} " in line and f"{naive['planned_vs_naive']:.2f} ×" in line


async def test_plan_verbose_output_lists_files_and_requests(monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert await amain(["plan", TRACE, "--expect", EXPECT, "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "files to upload:" in out and "_runs_001-003.md" in out and "stage4:" in out


async def test_run_end_to_end_writes_artifacts_and_reports(env, fake, tmp_path, capsys, spec):
    out = tmp_path / "out"
    rc = await amain(
        [
            "run",
            TRACE,
            "--expect",
            EXPECT,
            "--out",
            str(out),
            "--prompts",
            str(FIX / "expectation.json"),
            "--json",
            *HOSTED,
        ]
    )
    assert rc == 0, capsys.readouterr().err
    # the canned answers cite another trace's run ids: each stage that cites runs is asked once more
    assert fake.stages_called() == ["stage1", "stage1", "stage2", "stage3", "stage3", "stage4"]
    assert all(spec.validate(b) == [] for b in fake.bodies)
    for name in (
        "stage1_trace_analysis.json",
        "stage2_gap_analysis.json",
        "stage3_diagnosis.json",
        "stage4_synthesis.json",
        "report.md",
        "report.html",
        "usage.json",
    ):
        assert (out / name).is_file(), name
    usage = json.loads((out / "usage.json").read_text())
    assert usage["stages"]["stage1"]["input_tokens"] == 2 * 100  # the re-ask is paid for and counted
    assert usage["stages"]["stage1"]["estimated_cost_usd"] == pytest.approx(2 * (90 * 2.5 + 10 * 1.25 + 20 * 10) / 1e6)
    result = json.loads(capsys.readouterr().out)
    assert result["summary"] == SAMPLES["stage4"]["summary"] and result["confidence"] == "high"
    html = (out / "report.html").read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert re.search(r'<div class="wf-row error[^"]*"[^>]*data-run-id="6f1c2d3e-0000-4000-8000-000000000003"', html)
    assert "vs_test" in fake.deleted


async def test_run_summary_counts_redactions_per_kind(env, fake, tmp_path, capsys):
    trace = json.loads((FIX / "langsmith_runs.json").read_text())
    trace[0]["inputs"]["headers"] = {
        "Authorization": "Bearer abcdefghijklmnopqrstuvwxyz0123",
        "key": "sk-proj-" + "x" * 30,
    }
    path = tmp_path / "secret_trace.json"
    path.write_text(json.dumps(trace))
    assert await amain(["run", str(path), "--expect", EXPECT, "--out", str(tmp_path / "o"), *HOSTED]) == 0
    out = capsys.readouterr().out
    assert "redacted before upload: 1 bearer_token, 1 openai_key" in out
    uploaded = "".join(p.read_text() for p in (tmp_path / "o" / "files").iterdir())
    assert "abcdefghijklmnopqrstuvwxyz0123" not in uploaded and "[REDACTED:openai_key]" in uploaded
    assert json.loads((tmp_path / "o" / "usage.json").read_text())["redactions"] == {
        "bearer_token": 1,
        "openai_key": 1,
    }


async def test_init_then_analyze_on_the_store(env, fake, tmp_path, capsys):
    assert await amain(["init", TRACE, "--name", "my-store", "--expires-days", "3"]) == 0
    store_id = capsys.readouterr().out.strip()
    assert store_id == "vs_test"
    assert fake.store_metadata["refinery_groups"] == "1"
    assert "vs_test" not in fake.deleted
    out = tmp_path / "a"
    assert await amain(["analyze", "--store", store_id, "--expect", EXPECT, "--out", str(out), "--stages", "1-2"]) == 0
    assert fake.stages_called() == ["stage1", "stage2"]
    assert (out / "stage2_gap_analysis.json").exists() and not (out / "stage3_diagnosis.json").exists()
    assert "vs_test" not in fake.deleted  # a store passed in is the caller's
    assert "looks up the order" in (out / "report.md").read_text()


async def test_analyze_refuses_artifacts_of_another_trace(env, fake, tmp_path, capsys):
    assert await amain(["init", TRACE]) == 0
    store_id = capsys.readouterr().out.strip()
    out = tmp_path / "a"
    out.mkdir()
    (out / "stage1_trace_analysis.json").write_text(
        json.dumps({"stage": "stage1", "trace_id": "some-other-trace", "meta": {}, "output": SAMPLES["stage1"]})
    )
    assert (
        await amain(["analyze", "--store", store_id, "--expect", EXPECT, "--out", str(out)]) == 2
    )  # a user mistake (wrong --out), not a failed analysis
    assert "belongs to trace 'some-other-trace'" in capsys.readouterr().err
    assert fake.bodies == []


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["plan", "missing.json", "--expect", EXPECT], 2, "missing.json: no such file"),
        (["plan", TRACE, "--expect", "nope.txt"], 2, "nope.txt: no such file"),
        (["plan", str(FIX / "expectation.json"), "--expect", EXPECT], 2, "unrecognised trace format"),
        (["plan", TRACE, "--expect", str(FIX / "langsmith_runs.json")], 2, "expected a JSON object with 'description'"),
        (["frobnicate"], 2, "invalid choice"),
        (["run", TRACE, "--expect", EXPECT, "--stages", "2-4"], 2, "--stages"),
    ],
)
async def test_bad_input_exits_2_with_one_line(monkeypatch, capsys, argv, code, message):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert await amain(argv) == code
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


async def test_missing_key_exits_3(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert await amain(["run", TRACE, "--expect", EXPECT, "--out", str(tmp_path)]) == 3
    assert "OPENAI_API_KEY" in capsys.readouterr().err


async def test_auth_failure_exits_3(env, mocked, capsys, tmp_path):
    mocked.post(
        f"{BASE}/vector_stores",
        status=401,
        payload={
            "error": {
                "message": "Incorrect API key provided",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
    )
    assert await amain(["run", TRACE, "--expect", EXPECT, "--out", str(tmp_path), *HOSTED]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("refinery: error:")]
    assert errors == [err[-1]] and "Incorrect API key" in err[-1]
    assert not any("sk-test-cli" in line for line in err)


async def test_quota_exits_3(env, fake, capsys, tmp_path):
    fake.failures["stage1"] = [
        (
            429,
            {
                "error": {
                    "message": "You exceeded your current quota",
                    "type": "insufficient_quota",
                    "param": None,
                    "code": "insufficient_quota",
                }
            },
        )
    ]
    assert await amain(["run", TRACE, "--expect", EXPECT, "--out", str(tmp_path), *HOSTED]) == 3
    assert "quota" in capsys.readouterr().err


async def test_unusable_output_exits_4_and_keeps_earlier_artifacts(env, fake, capsys, tmp_path):
    fake.answers["stage2"] = [{"not": "it"}, {"still": "not"}]
    assert await amain(["run", TRACE, "--expect", EXPECT, "--out", str(tmp_path), *HOSTED]) == 4
    assert "re-ask" in capsys.readouterr().err
    assert json.loads((tmp_path / "stage1_trace_analysis.json").read_text())["output"] == SAMPLES["stage1"]
    assert not (tmp_path / "stage2_gap_analysis.json").exists()
    assert not list(tmp_path.glob(".*.tmp"))


async def test_debug_shows_the_traceback(monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert await amain(["canary", "--debug"]) == 3
    assert "Traceback" in capsys.readouterr().err


async def test_canary_ok(env, mocked, capsys):
    from tests.helpers import response_json

    mocked.post(f"{BASE}/responses", payload=response_json('{"reply": "PONG"}'))
    assert await amain(["canary", "--model", "gpt-4o-mini"]) == 0
    assert "ok: gpt-4o-mini" in capsys.readouterr().out


def test_help_documents_the_exit_codes():
    out = subprocess.run(
        [sys.executable, "-m", "refinery", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for line in ("0  done", "2  bad usage", "3  authentication, quota or connection", "4  the analysis failed"):
        assert line in out


@pytest.mark.parametrize(
    "args",
    [["--concurrency", "0"], ["--concurrency", "-3"], ["--latency", "-5"], ["--latency", "nan"]],
    ids=["concurrency 0", "concurrency -3", "latency -5", "latency nan"],
)
async def test_counts_and_seconds_out_of_range_are_usage_errors(args, capsys):
    assert await amain(["plan", TRACE, "--expect", EXPECT, *args]) == 2
    assert "refinery: error: argument" in capsys.readouterr().err


async def test_with_json_a_failure_says_so_on_stdout_too(capsys, tmp_path):
    assert await amain(["plan", str(tmp_path / "missing.json"), "--expect", EXPECT, "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert (
        out["error"]["type"] == "TraceFormatError"
        and out["error"]["exit_code"] == 2
        and "no such file" in out["error"]["message"]
    )


def test_format_choices_are_the_loaders_formats():
    from refinery.app.cli_args import FORMATS
    from refinery.traces.loader import formats

    assert FORMATS == formats()
