"""refinery: find out why an AI agent run failed.

A trace, the agent's prompts and evals, and what an expert expected go into a hosted vector
store; four evidence-backed stages run through `POST /v1/responses` with `file_search` and strict
structured output; typed results and artifacts come out.
"""

from refinery.agents.failure_analyst import SimpleFailureAnalyst
from refinery.agents.staged_failure_analyst import (
    StagedAnalysisResult,
    StagedFailureAnalyst,
)
from refinery.batch import analyze_many
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
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CanaryError,
    ConfigurationError,
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
    VectorStoreError,
)
from refinery.inputs import load_expectation
from refinery.integrations.responses_client import ResponsesClient
from refinery.integrations.transport import ApiSettings, OpenAITransport, RetryPolicy  # noqa: F401  (importable as before; not the front door)
from refinery.integrations.vector_store_manager import VectorStoreManager
from refinery.orchestrator import AnalysisOrchestrator
from refinery.outputs import write_outputs
from refinery.sources import load_trace_from
from refinery.traces import load_trace

__version__ = "0.1.0"

__all__ = [
    "analyze_many",
    "load_expectation",
    "load_trace",
    "load_trace_from",
    "write_outputs",
    "AnalysisOrchestrator",
    "CompleteAnalysis",
    "Confidence",
    "Diagnosis",
    "DomainExpertExpectation",
    "FailureAnalyst",
    "FailureType",
    "GapAnalysis",
    "RunType",
    "SimpleFailureAnalyst",
    "StagedAnalysisResult",
    "StagedFailureAnalyst",
    "Trace",
    "TraceAnalysis",
    "TraceRun",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CanaryError",
    "ConfigurationError",
    "FileIndexingError",
    "IncompleteResponseError",
    "IndexingTimeoutError",
    "NotFoundError",
    "OutputFormatError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "RefineryError",
    "RefusalError",
    "RequestBuildError",
    "ResponseError",
    "ResponseFailedError",
    "ResponsesClient",
    "ServerError",
    "StageError",
    "StrictSchemaError",
    "TraceFormatError",
    "UnprocessableEntityError",
    "UnsupportedFileError",
    "VectorStoreError",
    "VectorStoreManager",
    "__version__",
]
