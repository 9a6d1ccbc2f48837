"""A small orchestrator: analyse → compare → diagnose into a `CompleteAnalysis`.

It sits above the analysts (it imports one), so it lives at the package's top, not in `core/`,
which imports nothing above it.

The analyst is imported in exactly one line. Rolling back to the single-call baseline is a
one-line change:

    from refinery.agents.failure_analyst import SimpleFailureAnalyst as Analyst
"""

from __future__ import annotations

from typing import Any

from refinery.agents.staged_failure_analyst import StagedFailureAnalyst as Analyst
from refinery.core.interfaces import FailureAnalyst, FileContents
from refinery.core.models import CompleteAnalysis, DomainExpertExpectation, Trace


class AnalysisOrchestrator:
    """Runs the three interface methods in order, with whichever analyst was imported."""

    def __init__(self, analyst: FailureAnalyst | None = None, **analyst_kwargs: Any) -> None:
        self.analyst: FailureAnalyst = analyst if analyst is not None else Analyst(**analyst_kwargs)

    async def analyze_failure(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> CompleteAnalysis:
        trace_analysis = await self.analyst.analyze_trace(trace, expectation, prompt_contents, eval_contents)
        gap_analysis = await self.analyst.compare_to_expected(trace_analysis, expectation, prompt_contents, eval_contents)
        diagnosis = await self.analyst.diagnose_failure(trace_analysis, gap_analysis, prompt_contents, eval_contents)
        return CompleteAnalysis(trace_analysis=trace_analysis, gap_analysis=gap_analysis, diagnosis=diagnosis)
