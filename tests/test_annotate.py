"""`--annotate`: the diagnosis written back to Langfuse (scores) and LangSmith (feedback) in the
shapes their API references document (mocked with aioresponses; the analysis runs against the
local OpenAI-compatible server), and the pure core that decides what is written. The live Phoenix
round trip is in tests/test_phoenix_live.py."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import aioresponses
import pytest

from refinery.analysis.staged_schemas import DiagnosisOutput
from refinery.app.cli import amain
from refinery.core.annotations import annotation_id
from refinery.report.annotations import annotations_for
from refinery.wire.annotations_langfuse import LIMITS as LF_LIMITS
from refinery.wire.annotations_langfuse import langfuse_bodies
from refinery.wire.annotations_langsmith import langsmith_bodies
from refinery.wire.annotations_phoenix import phoenix_requests
from tests.test_trace_sources import LF, LF_ENV, LF_TRACE, LS, LS_KEY, SECRET, mock_langsmith

FIX = Path(__file__).parent / "fixtures"
# the request fields each platform's API reference documents (Langfuse `CreateScoreRequest`,
# LangSmith `FeedbackCreateSchema`): a body may hold no other
LANGFUSE_SCORE_FIELDS = {
    "id", "traceId", "sessionId", "observationId", "datasetRunId", "name", "value", "comment", "metadata",
    "environment", "queueId", "dataType", "configId",
}  # fmt: skip
LANGSMITH_FEEDBACK_FIELDS = {
    "id", "run_id", "trace_id", "key", "score", "value", "comment", "correction", "feedback_source",
    "feedback_config", "created_at", "modified_at", "session_id", "comparative_experiment_id", "feedback_group_id",
    "error", "start_time",
}  # fmt: skip
LOCAL = ["http://127.0.0.1"]  # the local OpenAI-compatible server is real


def diagnosis(**changes) -> DiagnosisOutput:
    base = {
        "causal_chains": [],
        "root_cause": "The lookup asked the wrong region, and the agent claimed success anyway.",
        "failure_type": "orchestration_issue",
        "affected_components": ["lookup_order"],
        "remediations": [],
        "confidence": "high",
        "detailed_analysis": "",
        "responsible_agent": "support_agent",
        "decisive_step": {"run_id": "s2", "reason": "the lookup failed and nothing retried it"},
        "errors": [
            {
                "run_id": "s2",
                "category": "tool_selection_error",
                "evidence": "order 1234 not found",
                "impact": "high",
                "description": "looked in us-east",
            },
            {
                "run_id": "s3",
                "category": "language_only_hallucination",
                "evidence": "refund issued",
                "impact": "medium",
                "description": "claimed a refund",
            },
            {
                "run_id": "s2",
                "category": "tool_output_misinterpretation",
                "evidence": "not found",
                "impact": "low",
                "description": "read the error as a transient",
            },
        ],
    }
    return DiagnosisOutput.model_validate({**base, **changes})


def made(d: DiagnosisOutput, unverified: list[str], spans=("s1", "s2", "s3")):
    check = {"cited": 4, "verified": 4 - len(unverified), "unverified": [{"path": p} for p in unverified]}
    return annotations_for(d, trace_id="t1", verification=check, span_ids=set(spans), report="/r.html", source="x:t1")


def test_the_verdict_goes_on_the_trace_with_failure_type_confidence_and_root_cause():
    verdict = made(diagnosis(), [])[0]
    assert (verdict.span_id, verdict.name, verdict.label, verdict.score) == (
        None,
        "refinery.verdict",
        "orchestration_issue",
        0.9,
    )
    assert verdict.explanation.startswith("The lookup asked the wrong region")
    assert verdict.metadata["report"] == "/r.html" and verdict.metadata["unverified_not_written"] == 0


def test_the_decisive_step_and_each_verified_error_go_on_their_spans():
    written = made(diagnosis(), [])
    assert [(a.span_id, a.name, a.label) for a in written[1:]] == [
        ("s2", "refinery.decisive_step", "decisive step"),
        ("s2", "refinery.error", "tool_selection_error"),
        ("s3", "refinery.error", "language_only_hallucination"),
        ("s2", "refinery.error", "tool_output_misinterpretation"),
    ]
    assert 'Evidence (verified quote): "order 1234 not found"' in written[2].explanation


def test_an_unverified_claim_is_not_written_and_is_counted():
    written = made(diagnosis(), ["errors[1]", "decisive_step"])
    assert [(a.span_id, a.name) for a in written[1:]] == [("s2", "refinery.error"), ("s2", "refinery.error")]
    assert written[0].metadata["unverified_not_written"] == 2 and written[0].metadata["decisive_step"] is None


def test_a_claim_on_a_span_the_trace_does_not_hold_is_not_written():
    written = made(diagnosis(), [], spans=("s1", "s2"))
    assert "s3" not in {a.span_id for a in written}


def test_without_a_citation_check_only_the_verdict_is_written():
    written = annotations_for(diagnosis(), trace_id="t1", verification=None, span_ids={"s2"}, report="r", source="s")
    assert [a.name for a in written] == ["refinery.verdict"]


def test_ids_are_stable_and_two_errors_on_one_span_get_two():
    first, again = made(diagnosis(), []), made(diagnosis(), [])
    assert [a.id for a in first] == [a.id for a in again]
    assert len({a.id for a in first}) == len(first)
    assert first[2].id == annotation_id("t1", "s2", "refinery.error", 0) and uuid.UUID(first[2].id).version == 5


def test_a_secret_in_refinerys_own_text_is_redacted_before_it_leaves():
    written = made(diagnosis(root_cause=f"the token {SECRET} was rejected"), [])
    assert SECRET not in written[0].explanation and "[REDACTED" in written[0].explanation


def test_each_platform_bounds_its_fields():
    long = made(diagnosis(root_cause="x" * 20_000), [])
    assert len(langfuse_bodies(long)[0]["comment"]) == LF_LIMITS["comment"]
    assert len(langsmith_bodies(long, "root")[0]["comment"]) == 4_000
    [(path, body), _] = phoenix_requests(long)
    assert path == "/v1/trace_annotations?sync=true" and len(body["data"][0]["result"]["explanation"]) == 10_000


def _bodies(m, method: str, fragment: str) -> list[dict]:
    return [
        c.kwargs["json"]
        for (verb, url), calls in m.requests.items()
        if verb == method and fragment in str(url)
        for c in calls
    ]


def _sent_anywhere(m) -> str:
    return json.dumps([c.kwargs.get("json") for calls in m.requests.values() for c in calls])


LF_SECRET_TRACE = {
    **LF_TRACE,
    "input": {"question": f"Refund order 42; my token is {SECRET}"},
    "observations": [
        LF_TRACE["observations"][0],
        {**LF_TRACE["observations"][1], "statusMessage": f"rate limited upstream for token {SECRET}"},
    ],
}


async def test_langfuse_gets_one_score_each_in_its_documented_shape_and_no_secret(openai_env, tmp_path, monkeypatch):
    for name, value in LF_ENV.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    with aioresponses.aioresponses(passthrough=LOCAL) as m:
        m.get(f"{LF}/api/public/traces/tr_9", payload=LF_SECRET_TRACE)
        m.post(f"{LF}/api/public/scores", payload={"id": "ignored"}, repeat=True)
        assert await amain(["run", "langfuse:tr_9", "--out", str(out), "--annotate"]) == 0
        scores = _bodies(m, "POST", "/api/public/scores")
        assert SECRET not in _sent_anywhere(m)
    recorded = json.loads((out / "annotations.json").read_text())
    assert [s["id"] for s in scores] == [a["id"] for a in recorded["annotations"]] and recorded["written"]
    verdict, *on_spans = scores
    stage3 = json.loads((out / "stage3_diagnosis.json").read_text())["output"]
    assert verdict == {
        "id": verdict["id"],
        "traceId": "tr_9",
        "name": "refinery.verdict",
        "value": stage3["failure_type"],
        "dataType": "CATEGORICAL",
        "comment": f"score {verdict['metadata']['score']:g} · {stage3['root_cause'].strip()}",
        "metadata": verdict["metadata"],
    }
    assert on_spans and all(s["observationId"] in {"o1", "o2"} and s["traceId"] == "tr_9" for s in on_spans)
    assert all(set(s) <= LANGFUSE_SCORE_FIELDS and s["dataType"] == "CATEGORICAL" for s in scores)
    assert {s["name"] for s in on_spans} <= {"refinery.decisive_step", "refinery.error"}


async def test_a_rerun_sends_the_same_ids_so_langfuse_updates_rather_than_adds(openai_env, tmp_path, monkeypatch):
    for name, value in LF_ENV.items():
        monkeypatch.setenv(name, value)
    out, ids = tmp_path / "out", []
    for _ in range(2):
        with aioresponses.aioresponses(passthrough=LOCAL) as m:
            m.get(f"{LF}/api/public/traces/tr_9", payload=LF_TRACE)
            m.post(f"{LF}/api/public/scores", payload={}, repeat=True)
            assert await amain(["run", "langfuse:tr_9", "--out", str(out), "--annotate"]) == 0
            ids.append([s["id"] for s in _bodies(m, "POST", "/api/public/scores")])
    assert ids[0] == ids[1] and len(ids[0]) >= 2


async def test_langsmith_gets_feedback_of_type_model_on_the_root_run_and_each_blamed_run(
    openai_env, tmp_path, monkeypatch
):
    monkeypatch.setenv("LANGSMITH_API_KEY", LS_KEY)
    out = tmp_path / "out"
    argv = ["run", "langsmith:run-2", "--expect", str(FIX / "expectation.json"), "--out", str(out), "--annotate"]
    with aioresponses.aioresponses(passthrough=LOCAL) as m:
        mock_langsmith(m)  # run-2's error holds a GitHub token
        m.post(f"{LS}/api/v1/feedback", payload={}, repeat=True)
        assert await amain(argv) == 0
        feedback = _bodies(m, "POST", "/api/v1/feedback")
        assert SECRET not in _sent_anywhere(m)
    verdict, *on_runs = feedback
    assert set(verdict) == {"id", "run_id", "trace_id", "key", "score", "value", "comment", "feedback_source"}
    assert (verdict["run_id"], verdict["trace_id"], verdict["key"]) == ("run-1", "run-1", "refinery.verdict")
    assert verdict["feedback_source"]["type"] == "model" and isinstance(verdict["score"], float)
    assert on_runs and all(f["run_id"] in {"run-1", "run-2", "run-3"} for f in on_runs)
    assert all(uuid.UUID(f["id"]) for f in feedback)
    assert all(set(f) <= LANGSMITH_FEEDBACK_FIELDS for f in feedback)


async def test_langsmith_feedback_that_exists_is_updated_in_place(openai_env, tmp_path, monkeypatch):
    monkeypatch.setenv("LANGSMITH_API_KEY", LS_KEY)
    out = tmp_path / "out"
    argv = ["run", "langsmith:run-2", "--expect", str(FIX / "expectation.json"), "--out", str(out), "--annotate"]
    with aioresponses.aioresponses(passthrough=LOCAL) as m:
        mock_langsmith(m)
        m.post(f"{LS}/api/v1/feedback", status=409, payload={"detail": "exists"}, repeat=True)
        m.patch(__import__("re").compile(rf"^{LS}/api/v1/feedback/.*"), payload={}, repeat=True)
        assert await amain(argv) == 0
        posted = _bodies(m, "POST", "/api/v1/feedback")
        patched = [
            (str(u).rsplit("/", 1)[1], c.kwargs["json"])
            for (v, u), cs in m.requests.items()
            if v == "PATCH"
            for c in cs
        ]
    assert sorted(i for i, _ in patched) == sorted(b["id"] for b in posted)
    assert all(set(body) == {"score", "value", "comment"} for _, body in patched)


@pytest.mark.parametrize(
    ("status", "code", "line"),
    [
        (401, 3, "langfuse: HTTP 401 from https://cloud.langfuse.com: check LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY"),
        (403, 3, "langfuse: HTTP 403 from https://cloud.langfuse.com: check LANGFUSE_PUBLIC_KEY"),
        (404, 2, "langfuse: no trace tr_9 in https://cloud.langfuse.com (HTTP 404)"),
        (429, 4, "langfuse: HTTP 429 from https://cloud.langfuse.com for tr_9"),
        (503, 4, "langfuse: HTTP 503 from https://cloud.langfuse.com for tr_9"),
    ],
)
async def test_a_refusal_is_one_line_naming_the_platform_and_the_analysis_stays(
    openai_env, tmp_path, monkeypatch, capsys, status, code, line
):
    from refinery.traces import sources

    async def no_wait(_s: float) -> None:
        return None

    monkeypatch.setattr(sources, "_sleep", no_wait)
    for name, value in LF_ENV.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    with aioresponses.aioresponses(passthrough=LOCAL) as m:
        m.get(f"{LF}/api/public/traces/tr_9", payload=LF_TRACE)
        m.post(f"{LF}/api/public/scores", status=status, payload={"message": "no"}, repeat=True)
        got = await amain(["run", "langfuse:tr_9", "--out", str(out), "--annotate"])
    said = capsys.readouterr()
    [written] = [x for x in said.err.splitlines() if "annotations not written" in x]
    assert line in written and LF_ENV["LANGFUSE_SECRET_KEY"] not in said.err + said.out
    assert got == code
    assert (out / "report.md").is_file() and (out / "stage4_synthesis.json").is_file()
    recorded = json.loads((out / "annotations.json").read_text())
    assert recorded["written"] is False and line.split(": ", 1)[1][:20] in recorded["error"]


async def test_annotate_needs_a_trace_fetched_by_id_and_says_so_before_any_analysis(openai_env, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["run", str(FIX / "langsmith_runs.json"), "--expect", str(FIX / "expectation.json"), "--out", str(out)]
    assert await amain([*argv, "--annotate"]) == 2
    assert "--annotate writes back to the platform a trace was fetched from" in capsys.readouterr().err
    assert not (out / "report.md").exists() and not openai_env.response_bodies


async def test_a_folder_already_analysed_is_annotated_without_a_new_analysis(openai_env, tmp_path, monkeypatch, capsys):
    for name, value in LF_ENV.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    with aioresponses.aioresponses(passthrough=LOCAL) as m:
        m.get(f"{LF}/api/public/traces/tr_9", payload=LF_TRACE)
        assert await amain(["run", "langfuse:tr_9", "--out", str(out)]) == 0
    capsys.readouterr()
    monkeypatch.delenv("OPENAI_API_KEY")  # no model is reachable now: nothing may be asked of one
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9")
    with aioresponses.aioresponses() as m:
        m.post(f"{LF}/api/public/scores", payload={}, repeat=True)
        assert await amain(["run", "langfuse:tr_9", "--out", str(out), "--annotate", "--json"]) == 0
        assert len(_bodies(m, "POST", "/api/public/scores")) >= 2
    said = json.loads(capsys.readouterr().out)  # --json: the annotations are the command's answer
    assert said["platform"] == "langfuse" and said["written"] is True


async def test_batch_annotate_writes_each_fetched_traces_diagnosis(openai_env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LANGSMITH_API_KEY", LS_KEY)
    manifest = tmp_path / "batch.json"
    manifest.write_text(json.dumps([{"trace": "langsmith:run-2", "expect": str(FIX / "expectation.json")}]))
    out = tmp_path / "out"
    with aioresponses.aioresponses(passthrough=LOCAL) as m:
        mock_langsmith(m)
        m.post(f"{LS}/api/v1/feedback", payload={}, repeat=True)
        assert await amain(["batch", str(manifest), "--out", str(out), "--no-llm", "--annotate"]) == 0
        assert _bodies(m, "POST", "/api/v1/feedback")
    assert "run-2: annotated in langsmith" in capsys.readouterr().err
    assert json.loads((out / "run-2" / "annotations.json").read_text())["written"] is True


async def test_the_mcp_tool_annotates_a_trace_by_id_and_says_what_it_wrote(openai_env, tmp_path, monkeypatch):
    pytest.importorskip("mcp", reason="the mcp extra is not installed")
    from refinery.app.mcp_server import build_server

    for name, value in LF_ENV.items():
        monkeypatch.setenv(name, value)
    server = build_server([tmp_path])
    with aioresponses.aioresponses(passthrough=LOCAL) as m:
        m.get(f"{LF}/api/public/traces/tr_9", payload=LF_TRACE)
        m.post(f"{LF}/api/public/scores", payload={}, repeat=True)
        analyze = server._tool_manager.get_tool("analyze_trace").fn  # the tool itself, outside a session
        answer = await analyze(trace="langfuse:tr_9", out="out", annotate=True)
        sent = _bodies(m, "POST", "/api/public/scores")
    assert answer["annotations"]["platform"] == "langfuse" and answer["annotations"]["written"] is True
    assert [s["id"] for s in sent] == [a["id"] for a in answer["annotations"]["annotations"]]


async def test_the_mcp_tool_refuses_to_annotate_a_trace_from_a_file(openai_env, tmp_path):
    pytest.importorskip("mcp", reason="the mcp extra is not installed")
    from mcp.server.mcpserver.exceptions import ToolError

    from refinery.app.mcp_server import build_server

    analyze = build_server([tmp_path])._tool_manager.get_tool("analyze_trace").fn
    (tmp_path / "trace.json").write_text((FIX / "langsmith_runs.json").read_text())
    with pytest.raises(ToolError, match="annotate writes back to the platform a trace was fetched from"):
        await analyze(trace="trace.json", out="out", annotate=True)
    assert not openai_env.response_bodies


async def test_a_langsmith_key_that_may_not_write_is_one_line_naming_langsmith(
    openai_env, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("LANGSMITH_API_KEY", LS_KEY)
    out = tmp_path / "out"
    argv = ["run", "langsmith:run-2", "--expect", str(FIX / "expectation.json"), "--out", str(out), "--annotate"]
    with aioresponses.aioresponses(passthrough=LOCAL) as m:
        mock_langsmith(m)
        m.post(f"{LS}/api/v1/feedback", status=403, payload={"detail": "Forbidden"}, repeat=True)
        assert await amain(argv) == 3
    err = capsys.readouterr().err
    assert (
        "annotations not written: langsmith: HTTP 403 from https://api.smith.langchain.com: check LANGSMITH_API_KEY"
        in err
    )
    assert LS_KEY not in err and (out / "report.html").is_file()


async def test_annotate_needs_stage_3_and_says_so_before_any_analysis(openai_env, tmp_path, monkeypatch, capsys):
    for name, value in LF_ENV.items():
        monkeypatch.setenv(name, value)
    with aioresponses.aioresponses(passthrough=LOCAL) as m:
        m.get(f"{LF}/api/public/traces/tr_9", payload=LF_TRACE)
        argv = ["run", "langfuse:tr_9", "--out", str(tmp_path / "out"), "--stages", "1-2", "--annotate"]
        assert await amain(argv) == 2
    assert "--annotate writes stage 3's diagnosis: give --stages 1-3 or 1-4, not 1-2" in capsys.readouterr().err
    assert not openai_env.response_bodies
