"""A small orchestrator: analyse → compare → diagnose into a `CompleteAnalysis`.

It sits above the analysts (it imports one), so it lives at the package's top, not in `core/`,
which imports nothing above it.

The analyst is chosen by argument: `AnalysisOrchestrator(analyst="simple")` rolls back to the
single-call baseline, `analyst="staged"` (the default) or an analyst instance chooses otherwise.
A host that wants the rollback as one line of its own code writes

    orchestrator = AnalysisOrchestrator(analyst="simple")   # or SimpleFailureAnalyst(model=…)

Either way `analyze` returns one type, `StagedAnalysisResult` (the simple analyst's has no
synthesis); `analyze_failure` keeps the host interface's `CompleteAnalysis`.
"""

from __future__ import annotations

from typing import Any

from refinery.analysis.failure_analyst import SimpleFailureAnalyst
from refinery.analysis.stage_results import StagedAnalysisResult, from_complete_analysis
from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.core.interfaces import FailureAnalyst, FileContents
from refinery.core.models import CompleteAnalysis, DomainExpertExpectation, Trace
from refinery.errors import ConfigurationError

ANALYSTS: dict[str, type[FailureAnalyst]] = {"staged": StagedFailureAnalyst, "simple": SimpleFailureAnalyst}


class AnalysisOrchestrator:
    """Runs the three interface methods in order, with the analyst it was given: an instance, or
    a name from `ANALYSTS` built with `analyst_kwargs`."""

    def __init__(self, analyst: FailureAnalyst | str | None = None, **analyst_kwargs: Any) -> None:
        if analyst is None or isinstance(analyst, str):
            name = analyst or "staged"
            if name not in ANALYSTS:
                raise ConfigurationError(f"unknown analyst {name!r}; choose one of {', '.join(ANALYSTS)}")
            analyst = ANALYSTS[name](**analyst_kwargs)
        self.analyst: FailureAnalyst = analyst

    async def analyze(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> StagedAnalysisResult:
        """One analysis as the one result type, whichever analyst: its own `analyze` when it has
        one (both of ours do), else the three interface calls read into the same type."""
        if isinstance(self.analyst, (StagedFailureAnalyst, SimpleFailureAnalyst)):
            return await self.analyst.analyze(trace, expectation, prompt_contents, eval_contents)
        complete = await self.analyze_failure(trace, expectation, prompt_contents, eval_contents)
        return from_complete_analysis(complete, trace.trace_id)

    async def analyze_failure(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> CompleteAnalysis:
        trace_analysis = await self.analyst.analyze_trace(trace, expectation, prompt_contents, eval_contents)
        gap_analysis = await self.analyst.compare_to_expected(
            trace_analysis, expectation, prompt_contents, eval_contents
        )
        diagnosis = await self.analyst.diagnose_failure(trace_analysis, gap_analysis, prompt_contents, eval_contents)
        return CompleteAnalysis(trace_analysis=trace_analysis, gap_analysis=gap_analysis, diagnosis=diagnosis)
