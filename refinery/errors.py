"""The exception tree every refinery error hangs from.

One root (`RefineryError`) lets a host catch "anything refinery raised" in one clause, while the
subclasses keep what a caller needs to decide what to do next: retry later (`RateLimitError`),
fix the account (`QuotaExceededError`), fix the key or URL (`AuthenticationError`,
`APIConnectionError`), or look at what the model said (`OutputFormatError`, `RefusalError`).

The HTTP errors are shaped as openai-python shapes them: every error about talking to the API is
an `APIError` — `APIConnectionError` (and its `APITimeoutError`) when no answer came, an
`APIStatusError` subclass (`BadRequestError`, `RateLimitError`, …) when an error answer did — so
`except APIError` catches both. What a command line makes of an error (its exit code, advice such
as "run `refinery canary`") is the command line's business: `refinery.app.exit_codes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RefineryError(Exception):
    """Root of every error refinery raises on purpose."""


class UserInputError(RefineryError):
    """Something the user gave is wrong: a file, an option, a store id, an artifacts folder."""


class InputFileError(UserInputError, ValueError):
    """An input file is missing or not what it should be."""


class ArtifactsMismatchError(UserInputError):
    """The artifacts folder holds another trace's results."""


class ConfigurationError(RefineryError):
    """Missing or invalid configuration: no API key, a malformed base URL, a bad option."""


class PromptError(RefineryError):
    """A prompt template was filled with missing or unknown values, or does not exist (a bug)."""


class RequestBuildError(RefineryError, ValueError):
    """A request body could not be built from the given arguments."""


class StrictSchemaError(RequestBuildError):
    """A JSON schema breaks a Structured Outputs strict-mode rule.

    `problems` lists every rule broken, each with the JSON path where it happens.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        shown = "; ".join(self.problems[:5])
        more = f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"schema is not valid for strict structured output: {shown}{more}")


def _one_line(text: object, limit: int = 1000) -> str:
    """A server's text on one line (white space runs folded), at most `limit` characters."""
    folded = " ".join(str(text).split())
    return folded if len(folded) <= limit else folded[: limit - 1] + "…"


class APIError(RefineryError):
    """Talking to the API failed: no answer came (`APIConnectionError`), or an error answer did
    (`APIStatusError`). Carries the API's own `error` object fields when there was one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = message = _one_line(message)  # a server's text may hold line breaks (an HTML 500 page)
        type, param, code = (_one_line(v) if v is not None else None for v in (type, param, code))
        self.status = status
        self.type = type
        self.param = param
        self.code = code
        self.headers: dict[str, str] = dict(headers or {})
        self.request_id = request_id
        # "404: Not Found" from a server is said as "HTTP 404: Not Found", not "HTTP 404: 404: Not Found"
        prefix = "" if status is None else "HTTP " if message.startswith(f"{status}") else f"HTTP {status}: "
        fields = [f"{k}={v}" for k, v in (("type", type), ("param", param), ("code", code)) if v]
        detail = f" ({', '.join(fields)})" if fields else ""
        super().__init__(f"{prefix}{message}{detail}")


class APIStatusError(APIError):
    """The API answered with an HTTP error status (`status`)."""


class BadRequestError(APIStatusError):
    """400: the request body was rejected (unknown parameter, invalid schema, …)."""


class AuthenticationError(APIStatusError):
    """401: the key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this resource (project, organization or model access)."""


class NotFoundError(APIStatusError):
    """404: unknown model, file, vector store, or a wrong base URL."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was understood but cannot be processed."""


class ServerError(APIStatusError):
    """5xx that stayed after the bounded retries."""


class RateLimitError(APIStatusError):
    """429 `rate_limit_exceeded` that stayed after the bounded retries.

    `headers` holds the last response's headers (the `x-ratelimit-*` figures) so a caller can
    schedule the next attempt itself.
    """


class QuotaExceededError(APIStatusError):
    """429 `insufficient_quota`: the account has no credit left; retrying can never succeed."""


class APIConnectionError(APIError):
    """The server could not be reached (DNS, refused connection, reset) after the retries."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    """The request timed out after the retries."""


class ResponseError(RefineryError):
    """An HTTP 200 response whose content cannot be used as an answer."""


class RefusalError(ResponseError):
    """The model refused; `refusal` is its text."""

    def __init__(self, refusal: str) -> None:
        self.refusal = refusal
        super().__init__(f"the model refused: {refusal}")


class IncompleteResponseError(ResponseError):
    """`status: "incomplete"`; `reason` is `incomplete_details.reason`, `partial_text` what came."""

    def __init__(self, reason: str | None, partial_text: str, *, detail: str | None = None) -> None:
        self.reason = reason
        self.partial_text = partial_text
        super().__init__(
            f"response incomplete (reason: {reason or 'unknown'}); {len(partial_text)} characters of partial output"
            + (f" {detail}" if detail else "")
        )


class ResponseFailedError(ResponseError):
    """`status: "failed"` in an HTTP 200; carries the response's `error` object."""

    def __init__(self, error: Mapping[str, Any] | None) -> None:
        self.error = dict(error or {})
        self.code = self.error.get("code")
        super().__init__(f"response failed: {self.error.get('message', 'no message')} (code={self.code})")


class OutputFormatError(ResponseError):
    """The output was not the JSON asked for, even after one format-only re-ask.

    `raw_text` is the model's last text, kept so nothing it said is lost.
    """

    def __init__(self, message: str, raw_text: str, problems: list[str] | None = None) -> None:
        self.raw_text = raw_text
        self.problems = list(problems or [])
        super().__init__(message)


class VectorStoreError(RefineryError):
    """A file or vector store operation failed."""


class UnsupportedFileError(VectorStoreError, ValueError):
    """A path does not exist or has a type `file_search` does not index (refused before upload)."""


class FileIndexingError(VectorStoreError):
    """A file failed indexing; names the file and the API's `last_error`."""

    def __init__(self, failures: list[tuple[str, str, str]]) -> None:
        # (filename or file id, error code, error message)
        self.failures = failures
        parts = [f"{name}: {code}: {msg}" for name, code, msg in failures]
        super().__init__("file(s) failed indexing: " + "; ".join(parts))


class VectorStoreGoneError(VectorStoreError):
    """A vector store no longer exists or has expired (deleted, past `expires_after`, or made on
    another server); its files must be uploaded again."""

    def __init__(self, store_id: str, reason: str, hint: str = "") -> None:
        self.store_id = store_id
        self.reason = reason
        super().__init__(f"vector store {store_id} is gone ({reason})" + (f"; {hint}" if hint else ""))


class IndexingTimeoutError(VectorStoreError):
    """Indexing did not finish in time; says how many files were still in progress."""

    def __init__(self, store_id: str, in_progress: int, timeout_s: float) -> None:
        self.store_id = store_id
        self.in_progress = in_progress
        super().__init__(f"vector store {store_id}: {in_progress} file(s) still in progress after {timeout_s:g} s")


class BatchError(RefineryError):
    """The provider's Batch API: a batch, or one of its files, is not what it must be."""


class BatchFileError(BatchError, ValueError):
    """A batch's input or output file cannot be written or read as the API's JSONL; the message
    names the file and line."""


class TraceFormatError(RefineryError, ValueError):
    """A trace file is not what it claims to be; names the file and the field."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None) -> None:
        self.source = source
        self.field = field
        where = source or "<data>"
        at = f" at {field}" if field else ""
        super().__init__(f"{where}{at}: {message}")


class ContextBudgetError(RefineryError):
    """A request would carry more input than the model's context budget allows."""


class CostLimitError(RefineryError):
    """The next call could take the analysis past `--max-cost`; what was done is kept."""


class StageError(RefineryError):
    """A stage of the staged analysis failed; `stage` names it, `__cause__` says why."""

    def __init__(self, stage: str, message: str) -> None:
        self.stage = stage
        super().__init__(f"{stage}: {message}")


class CanaryError(RefineryError):
    """The connectivity check failed; the message says what to fix."""


class RequestDeferred(RefineryError):
    """A request was recorded for the provider's Batch API instead of sent: its answer comes in a
    later round, so the analysis stops here for now (what finished is on disk). Not a failure."""

    def __init__(self, custom_id: str) -> None:
        self.custom_id = custom_id
        super().__init__(f"request {custom_id} deferred to the next batch round")
