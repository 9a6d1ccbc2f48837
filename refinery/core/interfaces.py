"""The `FailureAnalyst` contract host orchestrators call.

Hosts call the three methods in order and pass, positionally as 3rd and 4th arguments, the
agent's prompt and eval files (file name → text). Any analyst implementing this ABC can be
swapped in — or rolled back to — by changing one import.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from refinery.core.models import (
    Diagnosis,
    DomainExpertExpectation,
    GapAnalysis,
    Trace,
    TraceAnalysis,
)

FileContents = Mapping[str, str]


class FailureAnalyst(ABC):
    """The host orchestrator's analyst interface: trace analysis, comparison with what was expected,
    diagnosis. Both analysts implement it, so a host swaps one for the other in one line."""

    @abstractmethod
    async def analyze_trace(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> TraceAnalysis:
        """What happened in the run, step by step, with evidence."""

    @abstractmethod
    async def compare_to_expected(
        self,
        analysis: TraceAnalysis,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> GapAnalysis:
        """How the run differs from what the expert expected."""

    @abstractmethod
    async def diagnose_failure(
        self,
        trace_analysis: TraceAnalysis,
        gap_analysis: GapAnalysis,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> Diagnosis:
        """Why it failed and what to do about it."""
