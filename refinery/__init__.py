"""refinery: find out why an AI agent run failed.

A trace, the agent's prompts and evals, and what an expert expected go into a hosted vector
store; four evidence-backed stages run through `POST /v1/responses` with `file_search` and strict
structured output; typed results and artifacts come out.

The public API is exactly `__all__` (listed in docs/api.md); every other module and name is
internal and may change. Names are imported when first used, so `import refinery` (and
`refinery --help`) loads no HTTP client, schema validator or model it does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name → the module that defines it
_WHERE: dict[str, str] = {
    # analysing
    "StagedFailureAnalyst": "refinery.analysis.staged_failure_analyst",
    "StagedAnalysisResult": "refinery.analysis.stage_results",
    "SimpleFailureAnalyst": "refinery.analysis.failure_analyst",
    "AnalysisOrchestrator": "refinery.analysis.orchestrator",
    "FailureAnalyst": "refinery.core.interfaces",
    "analyze_into": "refinery.app.folder_analysis",
    "FolderAnalysis": "refinery.app.folder_analysis",
    "analyze_many": "refinery.app.batch",
    "BatchItem": "refinery.app.batch",
    "CostCeiling": "refinery.analysis.cost_ceiling",
    "RenderOptions": "refinery.traces.render",
    # inputs and outputs
    "load_trace": "refinery.traces.loader",
    "load_traces": "refinery.traces.loader",
    "load_trace_from": "refinery.traces.sources",
    "load_expectation": "refinery.app.inputs",
    "usage_summary": "refinery.report.outputs",
    "write_outputs": "refinery.report.outputs",
    # the data
    "Trace": "refinery.core.models",
    "TraceRun": "refinery.core.models",
    "RunType": "refinery.core.models",
    "DomainExpertExpectation": "refinery.core.models",
    "TraceAnalysis": "refinery.core.models",
    "GapAnalysis": "refinery.core.models",
    "Diagnosis": "refinery.core.models",
    "CompleteAnalysis": "refinery.core.models",
    "Confidence": "refinery.core.models",
    "FailureType": "refinery.core.models",
    "TraceAnalysisOutput": "refinery.analysis.staged_schemas",
    "GapAnalysisOutput": "refinery.analysis.staged_schemas",
    "DiagnosisOutput": "refinery.analysis.staged_schemas",
    "SynthesisOutput": "refinery.analysis.staged_schemas",
    # the model
    "ResponsesClient": "refinery.wire.responses_client",
    "VectorStoreManager": "refinery.wire.vector_store_manager",
    "StructuredModel": "refinery.wire.structured_model",
    "FunctionModel": "refinery.wire.structured_model",
    # errors
    **{
        name: "refinery.errors"
        for name in (
            "RefineryError",
            "UserInputError",
            "ConfigurationError",
            "APIError",
            "APIStatusError",
            "APIConnectionError",
            "APITimeoutError",
            "AuthenticationError",
            "BadRequestError",
            "NotFoundError",
            "PermissionDeniedError",
            "QuotaExceededError",
            "RateLimitError",
            "ServerError",
            "UnprocessableEntityError",
            "ResponseError",
            "RefusalError",
            "IncompleteResponseError",
            "ResponseFailedError",
            "OutputFormatError",
            "RequestBuildError",
            "StrictSchemaError",
            "StageError",
            "CanaryError",
            "ContextBudgetError",
            "CostLimitError",
            "TraceFormatError",
            "VectorStoreError",
            "FileIndexingError",
            "IndexingTimeoutError",
            "UnsupportedFileError",
        )
    },
}

__all__ = sorted(_WHERE) + ["__version__"]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module the first time it is used."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'refinery' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next use is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and editors see
    from refinery.analysis.cost_ceiling import CostCeiling
    from refinery.analysis.failure_analyst import SimpleFailureAnalyst
    from refinery.analysis.orchestrator import AnalysisOrchestrator
    from refinery.analysis.stage_results import StagedAnalysisResult
    from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
    from refinery.analysis.staged_schemas import (
        DiagnosisOutput,
        GapAnalysisOutput,
        SynthesisOutput,
        TraceAnalysisOutput,
    )
    from refinery.app.batch import BatchItem, analyze_many
    from refinery.app.folder_analysis import FolderAnalysis, analyze_into
    from refinery.app.inputs import load_expectation
    from refinery.core.interfaces import FailureAnalyst
    from refinery.core.models import (
        CompleteAnalysis,
        Confidence,
        Diagnosis,
        DomainExpertExpectation,
        FailureType,
        GapAnalysis,
        RunType,
        Trace,
        TraceAnalysis,
        TraceRun,
    )
    from refinery.errors import (
        APIConnectionError,
        APIError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        CanaryError,
        ConfigurationError,
        ContextBudgetError,
        CostLimitError,
        FileIndexingError,
        IncompleteResponseError,
        IndexingTimeoutError,
        NotFoundError,
        OutputFormatError,
        PermissionDeniedError,
        QuotaExceededError,
        RateLimitError,
        RefineryError,
        RefusalError,
        RequestBuildError,
        ResponseError,
        ResponseFailedError,
        ServerError,
        StageError,
        StrictSchemaError,
        TraceFormatError,
        UnprocessableEntityError,
        UnsupportedFileError,
        UserInputError,
        VectorStoreError,
    )
    from refinery.report.outputs import usage_summary, write_outputs
    from refinery.traces.loader import load_trace, load_traces
    from refinery.traces.render import RenderOptions
    from refinery.traces.sources import load_trace_from
    from refinery.wire.responses_client import ResponsesClient
    from refinery.wire.structured_model import FunctionModel, StructuredModel
    from refinery.wire.vector_store_manager import VectorStoreManager
