"""`refinery run phoenix:<id>` against a real Phoenix: `phoenix serve` (SQLite, no account) started
here on free loopback ports, sent the spans of a small failing agent run over OTLP
(tests/phoenix_emit.py), then read back through its REST API; the analysis itself runs against
the project's local OpenAI-compatible server.

Phoenix is found through `REFINERY_PHOENIX` (its `phoenix` executable, or the bin folder holding
it; .ci/run installs it in a virtualenv of its own and sets this) or on PATH. Skipped, saying so,
only when it is not installed; once .ci/run has installed it (`REFINERY_REQUIRE_PHOENIX=1`) a
Phoenix that does not start fails the tests instead."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from refinery.app.cli import amain
from refinery.testing.phoenix import PhoenixServer, phoenix_executable, running_phoenix
from refinery.traces import load_trace

PHOENIX = phoenix_executable()
if PHOENIX is None and os.environ.get("REFINERY_REQUIRE_PHOENIX") != "1":
    pytest.skip(
        "Phoenix is not installed (pip install arize-phoenix, or set REFINERY_PHOENIX; .ci/run installs it)",
        allow_module_level=True,
    )
EMITTER = Path(__file__).with_name("phoenix_emit.py")


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    assert PHOENIX is not None and PHOENIX.exists(), f"REFINERY_REQUIRE_PHOENIX=1 but no Phoenix at {PHOENIX}"
    with running_phoenix(PHOENIX, tmp_path_factory.mktemp("phoenix")) as server:
        yield Phoenix(server)


class Phoenix:
    def __init__(self, server: PhoenixServer, key: str | None = None) -> None:
        self.server, self.url, self.key = server, server.url, key

    def emit(self, project: str) -> str:
        """Send the failing run's spans to `project`; its trace id once Phoenix has stored all 4."""
        env = {"PHOENIX_API_KEY": self.key} if self.key else {}
        trace_id = self.server.run_script(EMITTER, self.url, project, env=env).strip()
        self.server.wait_for_spans(project, trace_id, 4, key=self.key)
        return trace_id


# Phoenix's own rule for its secrets: 32 characters or more, with digits and lower-case letters
ADMIN_SECRET = "admin-" + "k3y9" * 8
SERVER_SECRET = "server-" + "s3cr3t" * 6


@pytest.fixture(scope="module")
def guarded_phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    """A Phoenix with authentication on; its admin secret is a bearer token its REST API accepts."""
    assert PHOENIX is not None
    settings = {"PHOENIX_ENABLE_AUTH": "true", "PHOENIX_SECRET": SERVER_SECRET, "PHOENIX_ADMIN_SECRET": ADMIN_SECRET}
    with running_phoenix(PHOENIX, tmp_path_factory.mktemp("guarded"), settings=settings) as server:
        yield Phoenix(server, key=ADMIN_SECRET)


async def test_refinery_run_by_phoenix_id_writes_the_report(phoenix, openai_env, tmp_path, monkeypatch):
    trace_id = phoenix.emit("support-live")
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", phoenix.url)
    out = tmp_path / "out"
    assert await amain(["run", f"phoenix:{trace_id}", "--project", "support-live", "--out", str(out)]) == 0
    kept = json.loads((out / "trace.json").read_text())
    assert kept["refinery_source"] == f"phoenix:support-live/{trace_id}"
    trace = load_trace(out / "trace.json")
    assert trace.trace_id == trace_id and trace.project_name == "support-live"
    assert [r.name for r in trace.runs] == ["support_agent", "ChatCompletion", "lookup_order", "ChatCompletion"]
    [failed] = [r for r in trace.runs if r.is_failed]
    assert failed.name == "lookup_order" and "order 1234 not found in region us-east" in failed.error
    assert trace.metadata["task"].startswith("Please refund order 1234")  # the expectation comes from it
    report = (out / "report.md").read_text()
    assert report.startswith("# Why the run failed") and failed.id in report
    assert "order 1234 not found in region us-east" in report
    assert all((out / f).is_file() for f in ("stage1_trace_analysis.json", "stage4_synthesis.json"))


async def test_without_a_project_every_project_is_searched_and_a_rerun_does_not_ask_again(
    phoenix, openai_env, tmp_path, monkeypatch
):
    trace_id = phoenix.emit("support-other")
    monkeypatch.setenv("PHOENIX_BASE_URL", phoenix.url)
    out = tmp_path / "plan"
    assert await amain(["run", f"phoenix:{trace_id}", "--out", str(out)]) == 0
    assert json.loads((out / "trace.json").read_text())["refinery_source"] == f"phoenix:{trace_id}"
    monkeypatch.setenv("PHOENIX_BASE_URL", "http://127.0.0.1:9")  # nothing listens there: the copy is read
    assert await amain(["run", f"phoenix:{trace_id}", "--out", str(out)]) == 0


async def test_batch_from_phoenix_analyses_the_failed_traces_of_the_last_hour(
    phoenix, openai_env, tmp_path, monkeypatch
):
    trace_id = phoenix.emit("support-nightly")
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", phoenix.url)
    out = tmp_path / "nightly"
    argv = [
        "batch",
        "--from",
        "phoenix",
        "--since",
        "1h",
        "--failed",
        "--project",
        "support-nightly",
        "--out",
        str(out),
    ]
    assert await amain(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    [(name, outcome)] = summary["outcomes"].items()
    assert trace_id in name and outcome["status"] == "done"


async def test_a_phoenix_with_authentication_takes_phoenix_api_key(
    guarded_phoenix, openai_env, tmp_path, monkeypatch, capsys
):
    trace_id = guarded_phoenix.emit("guarded")
    monkeypatch.setenv("PHOENIX_BASE_URL", guarded_phoenix.url)
    monkeypatch.delenv("PHOENIX_API_KEY", raising=False)
    assert await amain(["plan", f"phoenix:guarded/{trace_id}"]) == 3
    assert f"phoenix: HTTP 401 from {guarded_phoenix.url}: check PHOENIX_API_KEY" in capsys.readouterr().err
    monkeypatch.setenv("PHOENIX_API_KEY", ADMIN_SECRET)
    out = tmp_path / "out"
    assert await amain(["run", f"phoenix:guarded/{trace_id}", "--out", str(out)]) == 0
    assert len(load_trace(out / "trace.json").runs) == 4
    written = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in written if ADMIN_SECRET in p.read_text(errors="replace")]


async def _phoenix_annotations(url: str, project: str, kind: str, ids: list[str]) -> list[dict]:
    """What Phoenix holds, read back through its REST API (`GET …/trace_annotations?trace_ids=…`,
    `…/span_annotations?span_ids=…`)."""
    import aiohttp

    key = "trace_ids" if kind == "trace" else "span_ids"
    params = [(key, i) for i in ids] + [("limit", "1000")]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/v1/projects/{project}/{kind}_annotations", params=params) as resp:
            assert resp.status == 200, await resp.text()
            return (await resp.json())["data"]


async def test_run_annotate_leaves_the_verdict_and_one_annotation_per_blamed_span_and_a_rerun_the_same(
    phoenix, openai_env, tmp_path, monkeypatch
):
    trace_id = phoenix.emit("support-annotate")
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", phoenix.url)
    out = tmp_path / "out"
    argv = ["run", f"phoenix:{trace_id}", "--project", "support-annotate", "--out", str(out), "--annotate"]
    assert await amain(argv) == 0
    recorded = json.loads((out / "annotations.json").read_text())
    assert recorded["written"] is True and recorded["platform"] == "phoenix"
    blamed = sorted((a["span_id"], a["name"], a["id"]) for a in recorded["annotations"] if a["target"] == "span")
    assert blamed, "the stand-in blames the failed lookup: at least one span annotation"
    diagnosis = json.loads((out / "stage3_diagnosis.json").read_text())["output"]

    [verdict] = await _phoenix_annotations(phoenix.url, "support-annotate", "trace", [trace_id])
    assert verdict["name"] == "refinery.verdict" and verdict["annotator_kind"] == "LLM"
    assert verdict["result"]["label"] == diagnosis["failure_type"]
    assert verdict["result"]["explanation"] == diagnosis["root_cause"].strip()
    assert verdict["metadata"]["report"] == str((out / "report.html").resolve())
    span_ids = sorted({s for s, _, _ in blamed})
    on_spans = await _phoenix_annotations(phoenix.url, "support-annotate", "span", span_ids)
    assert sorted((a["span_id"], a["name"], a["identifier"]) for a in on_spans) == blamed

    assert await amain(argv) == 0  # the folder holds the analysis: written again, updated in place
    assert len(await _phoenix_annotations(phoenix.url, "support-annotate", "trace", [trace_id])) == 1
    again = await _phoenix_annotations(phoenix.url, "support-annotate", "span", span_ids)
    assert sorted((a["span_id"], a["name"], a["identifier"]) for a in again) == blamed


async def test_annotate_on_a_phoenix_that_refuses_says_so_in_one_line_and_keeps_the_report(
    guarded_phoenix, openai_env, tmp_path, monkeypatch, capsys
):
    trace_id = guarded_phoenix.emit("guarded-annotate")
    monkeypatch.setenv("PHOENIX_BASE_URL", guarded_phoenix.url)
    monkeypatch.setenv("PHOENIX_API_KEY", ADMIN_SECRET)
    out = tmp_path / "out"
    argv = ["run", f"phoenix:guarded-annotate/{trace_id}", "--out", str(out)]
    assert await amain(argv) == 0
    monkeypatch.setenv("PHOENIX_API_KEY", "not-the-key")  # the trace is fetched; the writing is refused
    capsys.readouterr()
    assert await amain([*argv, "--annotate"]) == 3
    said = capsys.readouterr()
    assert f"annotations not written: phoenix: HTTP 401 from {guarded_phoenix.url}: check PHOENIX_API_KEY" in (
        said.out + said.err
    )
    assert (out / "report.md").is_file()
    recorded = json.loads((out / "annotations.json").read_text())
    assert recorded["written"] is False and "HTTP 401" in recorded["error"]


async def test_batch_from_phoenix_with_annotate_annotates_each_failed_trace_of_the_period(
    phoenix, openai_env, tmp_path, monkeypatch
):
    trace_id = phoenix.emit("support-nightly-annotate")
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", phoenix.url)
    out = tmp_path / "nightly"
    argv = ["batch", "--from", "phoenix", "--since", "1h", "--failed", "--project", "support-nightly-annotate"]
    assert await amain([*argv, "--out", str(out), "--no-llm", "--annotate"]) == 0
    [folder] = [p for p in out.iterdir() if p.is_dir()]
    recorded = json.loads((folder / "annotations.json").read_text())
    assert recorded["written"] is True
    [verdict] = await _phoenix_annotations(phoenix.url, "support-nightly-annotate", "trace", [trace_id])
    assert verdict["name"] == "refinery.verdict" and verdict["identifier"] == recorded["annotations"][0]["id"]
