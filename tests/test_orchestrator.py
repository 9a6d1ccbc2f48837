"""The orchestrator runs with either analyst, chosen by argument (an instance or a name)."""

from __future__ import annotations

import asyncio
import json

import pytest

from refinery import ConfigurationError, FailureAnalyst, SimpleFailureAnalyst, StagedFailureAnalyst
from refinery.analysis.orchestrator import AnalysisOrchestrator as AnalysisOrchestratorFor
from refinery.analysis.stage_results import StagedAnalysisResult
from refinery.core.models import CompleteAnalysis, FailureType
from refinery.wire.responses_client import ResponsesClient
from tests.fake_openai import SAMPLES, FakeOpenAI
from tests.fixtures_traces import EVALS, EXPECTATION, PROMPTS, make_trace


def test_the_analyst_is_chosen_by_argument_and_an_unknown_name_is_refused():
    assert type(AnalysisOrchestratorFor().analyst) is StagedFailureAnalyst
    assert type(AnalysisOrchestratorFor(analyst="simple").analyst) is SimpleFailureAnalyst
    with pytest.raises(ConfigurationError, match="unknown analyst 'smart'; choose one of staged, simple"):
        AnalysisOrchestratorFor(analyst="smart")


@pytest.mark.parametrize(
    ("name", "cls", "calls"),
    [
        ("staged", StagedFailureAnalyst, ["stage1", "stage2", "stage3", "stage4"]),
        ("simple", SimpleFailureAnalyst, ["stage1", "stage2", "stage3"]),
    ],
    ids=["staged", "rollback"],
)
async def test_orchestrator_produces_a_complete_analysis(mocked, make_transport, spec, name, cls, calls):
    fake = FakeOpenAI(mocked)
    client = ResponsesClient(transport=make_transport())
    async with client:
        orch = AnalysisOrchestratorFor(analyst=name, model="gpt-4o", seed=1, client=client)
        assert type(orch.analyst) is cls and isinstance(orch.analyst, FailureAnalyst)
        result = await orch.analyze_failure(make_trace(), EXPECTATION, PROMPTS, EVALS)
    assert isinstance(result, CompleteAnalysis)
    assert fake.stages_called() == calls
    assert all(spec.validate(b) == [] for b in fake.bodies)
    assert result.trace_analysis.trace_id == "t1"
    assert result.diagnosis.failure_type == FailureType.PROMPT_ISSUE
    assert result.diagnosis.root_cause == SAMPLES["stage3"]["root_cause"]
    assert result.diagnosis.next_actions and result.diagnosis.top_findings
    summary = result.get_summary()
    assert summary["failure_type"] == "prompt_issue" and summary["failed_steps"] == 1


async def test_simple_analyst_inlines_the_trace_without_a_store(mocked, make_transport):
    fake = FakeOpenAI(mocked)
    async with ResponsesClient(transport=make_transport()) as client:
        analyst = SimpleFailureAnalyst(client=client, max_inline_tokens=50)
        await analyst.analyze_trace(make_trace(), EXPECTATION, PROMPTS, EVALS)
    [body] = fake.bodies
    assert "tools" not in body
    text = body["input"][-1]["content"][0]["text"]
    assert "=== file: t1_runs_001-003.md ===" in text and "[trimmed:" in text
    assert fake.batch == {}


def test_public_imports():
    import refinery

    first = (
        "StagedFailureAnalyst",
        "SimpleFailureAnalyst",
        "FailureAnalyst",
        "AnalysisOrchestrator",
        "Trace",
        "TraceRun",
        "DomainExpertExpectation",
        "CompleteAnalysis",
        "StagedAnalysisResult",
        "RefineryError",
        "load_trace",
        "load_expectation",
        "write_outputs",
        "analyze_many",
    )
    for name in first:
        assert name in refinery.__all__ and hasattr(refinery, name), name
    for internal in (
        "OpenAITransport",
        "RetryPolicy",
        "ApiSettings",
    ):  # importable from their modules, not the front door
        assert internal not in refinery.__all__


@pytest.mark.parametrize("cls", [StagedFailureAnalyst, SimpleFailureAnalyst])
async def test_both_analysts_redact_what_they_send(mocked, make_transport, cls):
    from refinery.core.models import DomainExpertExpectation

    fake = FakeOpenAI(mocked)
    secret = "sk-proj-" + "s" * 32
    expectation = DomainExpertExpectation(description=f"Use the key {secret} to call the refund API")
    trace = make_trace()
    trace.runs[0].inputs["api_key"] = secret
    async with ResponsesClient(transport=make_transport()) as client:
        analyst = cls(client=client)
        result = await AnalysisOrchestratorFor(analyst).analyze_failure(trace, expectation, PROMPTS, EVALS)
    assert result.diagnosis.root_cause
    sent_text = json.dumps(fake.bodies) + json.dumps(fake.batch)
    assert secret not in sent_text
    # the analysis's own count, in its result: the trace and the expectation
    assert result.trace_analysis.metadata["redactions"]["openai_key"] >= 2


@pytest.mark.parametrize(
    ("name", "summary_from"), [("staged", "synthesis"), ("simple", "diagnosis")], ids=["staged", "rollback"]
)
async def test_either_analyst_gets_the_same_report(mocked, make_transport, tmp_path, name, summary_from):
    from refinery.report.outputs import usage_summary, write_outputs

    FakeOpenAI(mocked)
    async with ResponsesClient(transport=make_transport()) as client:
        complete = await AnalysisOrchestratorFor(analyst=name, client=client).analyze_failure(make_trace(), EXPECTATION)
    written = write_outputs(tmp_path, complete, make_trace(), usage_summary(complete, "gpt-4o"))
    report = (tmp_path / "report.md").read_text()
    assert str(tmp_path / "report.html") in written
    assert SAMPLES["stage3"]["root_cause"] in report
    assert (SAMPLES["stage4"]["summary"] in report) == (summary_from == "synthesis")


@pytest.mark.parametrize(("name", "stages"), [("staged", 4), ("simple", 3)], ids=["staged", "rollback"])
async def test_either_analyst_gives_the_one_result_type(mocked, make_transport, spec, name, stages):
    fake = FakeOpenAI(mocked)
    async with ResponsesClient(transport=make_transport()) as client:
        orch = AnalysisOrchestratorFor(analyst=name, model="gpt-4o", seed=1, client=client)
        result = await orch.analyze(make_trace(), EXPECTATION, PROMPTS, EVALS)
    assert isinstance(result, StagedAnalysisResult) and result.trace_id == "t1"
    assert result.diagnosis is not None and result.diagnosis.root_cause == SAMPLES["stage3"]["root_cause"]
    assert sorted(result.usage) == [f"stage{i}" for i in range(1, stages + 1)]
    assert (result.synthesis is not None) == (name == "staged")
    assert all(spec.validate(b) == [] for b in fake.bodies)


async def test_one_simple_analyst_runs_several_analyses_at_once_each_with_its_own_count(mocked, make_transport):
    FakeOpenAI(mocked)
    secret = "sk-proj-" + "A1b2C3d4" * 5
    clean, leaky = make_trace(), make_trace()
    leaky.runs[0].inputs = {"prompt": f"use key {secret}"}
    async with ResponsesClient(transport=make_transport()) as client:
        analyst = SimpleFailureAnalyst(client=client)
        a, b = await asyncio.gather(analyst.analyze(clean, EXPECTATION), analyst.analyze(leaky, EXPECTATION))
    assert sum(a.redactions.values()) == 0 and sum(b.redactions.values()) == 1
    assert sorted(a.usage) == sorted(b.usage) == ["stage1", "stage2", "stage3"]
