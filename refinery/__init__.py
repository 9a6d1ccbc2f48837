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
    "StagedFailureAnalyst": "refinery.agents.staged_failure_analyst",
    "StagedAnalysisResult": "refinery.agents.stage_results",
    "SimpleFailureAnalyst": "refinery.agents.failure_analyst",
    "AnalysisOrchestrator": "refinery.orchestrator",
    "FailureAnalyst": "refinery.core.interfaces",
    "analyze_into": "refinery.app.folder_analysis",
    "FolderAnalysis": "refinery.app.folder_analysis",
    "analyze_many": "refinery.batch",
    "BatchItem": "refinery.batch",
    "CostCeiling": "refinery.agents.cost_ceiling",
    "RenderOptions": "refinery.traces.render",
    # inputs and outputs
    "load_trace": "refinery.traces.loader",
    "load_traces": "refinery.traces.loader",
    "load_trace_from": "refinery.sources",
    "load_expectation": "refinery.inputs",
    "usage_summary": "refinery.outputs",
    "write_outputs": "refinery.outputs",
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
    "TraceAnalysisOutput": "refinery.agents.staged_schemas",
    "GapAnalysisOutput": "refinery.agents.staged_schemas",
    "DiagnosisOutput": "refinery.agents.staged_schemas",
    "SynthesisOutput": "refinery.agents.staged_schemas",
    # the model
    "ResponsesClient": "refinery.integrations.responses_client",
    "VectorStoreManager": "refinery.integrations.vector_store_manager",
    "StructuredModel": "refinery.integrations.structured_model",
    "FunctionModel": "refinery.integrations.structured_model",
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
    from refinery.agents.cost_ceiling import CostCeiling
    from refinery.agents.failure_analyst import SimpleFailureAnalyst
    from refinery.agents.stage_results import StagedAnalysisResult
    from refinery.agents.staged_failure_analyst import StagedFailureAnalyst
    from refinery.agents.staged_schemas import DiagnosisOutput, GapAnalysisOutput, SynthesisOutput, TraceAnalysisOutput
    from refinery.app.folder_analysis import FolderAnalysis, analyze_into
    from refinery.batch import BatchItem, analyze_many
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
    from refinery.inputs import load_expectation
    from refinery.integrations.responses_client import ResponsesClient
    from refinery.integrations.structured_model import FunctionModel, StructuredModel
    from refinery.integrations.vector_store_manager import VectorStoreManager
    from refinery.orchestrator import AnalysisOrchestrator
    from refinery.outputs import usage_summary, write_outputs
    from refinery.sources import load_trace_from
    from refinery.traces.loader import load_trace, load_traces
    from refinery.traces.render import RenderOptions
