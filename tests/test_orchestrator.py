"""The orchestrator runs with either analyst, switched by its one import line."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

import refinery.orchestrator as orchestrator_module
from refinery import FailureAnalyst, SimpleFailureAnalyst, StagedFailureAnalyst
from refinery.core.models import CompleteAnalysis, FailureType
from refinery.integrations.responses_client import ResponsesClient
from refinery.orchestrator import AnalysisOrchestrator as AnalysisOrchestratorFor
from tests.fake_openai import SAMPLES, FakeOpenAI
from tests.fixtures_traces import EVALS, EXPECTATION, PROMPTS, make_trace

STAGED_LINE = "from refinery.agents.staged_failure_analyst import StagedFailureAnalyst as Analyst"
ROLLBACK_LINE = "from refinery.agents.failure_analyst import SimpleFailureAnalyst as Analyst"
SOURCE = Path(orchestrator_module.__file__).read_text()


def load_orchestrator(import_line: str):
    """The orchestrator module as it would be with `import_line` as its analyst import."""
    source = SOURCE.replace(STAGED_LINE, import_line) if import_line != STAGED_LINE else SOURCE
    module_name = f"_orchestrator_{abs(hash(import_line))}"
    spec = importlib.util.spec_from_loader(module_name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    exec(compile(source, orchestrator_module.__file__, "exec"), module.__dict__)
    return module


def test_the_analyst_is_imported_in_exactly_one_line():
    lines = [l for l in SOURCE.splitlines() if re.match(r"^(from|import) .*\bAnalyst\b", l) and "as Analyst" in l]
    assert lines == [STAGED_LINE]


@pytest.mark.parametrize(("import_line", "cls", "calls"), [(STAGED_LINE, StagedFailureAnalyst, ["stage1", "stage2", "stage3", "stage4"]), (ROLLBACK_LINE, SimpleFailureAnalyst, ["stage1", "stage2", "stage3"])], ids=["staged", "rollback"])
async def test_orchestrator_produces_a_complete_analysis(mocked, make_transport, spec, import_line, cls, calls):
    fake = FakeOpenAI(mocked)
    module = load_orchestrator(import_line)
    client = ResponsesClient(transport=make_transport())
    async with client:
        orch = module.AnalysisOrchestrator(model="gpt-4o", seed=1, client=client)
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

    for name in ("StagedFailureAnalyst", "SimpleFailureAnalyst", "FailureAnalyst", "AnalysisOrchestrator", "Trace", "TraceRun", "DomainExpertExpectation", "CompleteAnalysis", "RefineryError"):
        assert hasattr(refinery, name), name


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
    assert analyst.redaction.counts["openai_key"] >= 2  # the trace and the expectation


@pytest.mark.parametrize(("import_line", "summary_from"), [(STAGED_LINE, "synthesis"), (ROLLBACK_LINE, "diagnosis")], ids=["staged", "rollback"])
async def test_either_analyst_gets_the_same_report(mocked, make_transport, tmp_path, import_line, summary_from):
    from refinery.outputs import usage_summary, write_outputs

    FakeOpenAI(mocked)
    module = load_orchestrator(import_line)
    async with ResponsesClient(transport=make_transport()) as client:
        complete = await module.AnalysisOrchestrator(client=client).analyze_failure(make_trace(), EXPECTATION)
    written = write_outputs(tmp_path, complete, make_trace(), usage_summary(complete, "gpt-4o"))
    report = (tmp_path / "report.md").read_text()
    assert str(tmp_path / "report.html") in written
    assert SAMPLES["stage3"]["root_cause"] in report
    assert (SAMPLES["stage4"]["summary"] in report) == (summary_from == "synthesis")
