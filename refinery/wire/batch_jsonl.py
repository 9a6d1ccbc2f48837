"""The Batch API's files as lines: requests written, files split at the API's limits, results read.

Pure (no I/O): the caller reads and writes the files, off the event loop. Why apart from the
client: what goes in a batch's input file and what comes back in its output and error files are
the API's formats, checked here once — a request line is one JSON object with a `custom_id`, the
method, the endpoint's `url` and the `body`; an input file holds at most 50,000 of them and
200 MB; each result line names its `custom_id`, with the HTTP `response` it had or an `error`
when it had none (an expired or cancelled line).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from refinery.errors import BatchFileError

__all__ = ["MAX_BYTES", "MAX_REQUESTS", "BatchOutcome", "read_outcomes", "request_line", "split_input"]

MAX_REQUESTS = 50_000  # requests in one input file (OpenAI's and Azure's limit)
MAX_BYTES = 200 * 1024 * 1024  # bytes in one input file
_CUSTOM_ID_HEAD = '{"custom_id":'


def request_line(custom_id: str, url: str, body: Mapping[str, Any]) -> str:
    """One request of an input file: a JSON object on one line (no line break inside, not even
    the U+2028/U+2029 separators some readers split at), without the trailing newline."""
    if not isinstance(custom_id, str) or not custom_id:
        raise BatchFileError(f"batch request: custom_id must be a non-empty string, got {custom_id!r}")
    if not url.startswith("/"):
        raise BatchFileError(
            f"batch request {custom_id}: url must be an endpoint path such as /v1/responses, got {url!r}"
        )
    line = json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": url, "body": dict(body)},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _custom_id(line: str, number: int) -> str:
    """A line's `custom_id`: read from its head when `request_line` wrote it (no need to parse a
    large body), else from the whole object."""
    if line.startswith(_CUSTOM_ID_HEAD):
        try:
            value, _ = json.JSONDecoder().raw_decode(line, len(_CUSTOM_ID_HEAD))
        except ValueError:
            value = None
        if isinstance(value, str) and value:
            return value
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise BatchFileError(f"batch input line {number}: not JSON ({exc})") from None
    value = obj.get("custom_id") if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value:
        raise BatchFileError(f"batch input line {number}: no custom_id (a non-empty string) in it")
    return value


def split_input(
    lines: Iterable[str], *, max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES
) -> list[list[str]]:
    """The request lines cut into input files, in order, each within `max_requests` lines and
    `max_bytes` bytes (each line counted with its newline). A `custom_id` used twice, or one line
    larger than a whole file, is refused naming the line: the results could not be matched, or
    the API would refuse the file."""
    if max_requests < 1 or max_bytes < 2:
        raise BatchFileError(f"batch input limits must be positive, got {max_requests} requests, {max_bytes} bytes")
    files: list[list[str]] = []
    current: list[str] = []
    size = 0
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if "\n" in line or "\r" in line:
            raise BatchFileError(f"batch input line {number}: a request line must not hold a line break")
        custom_id = _custom_id(line, number)
        if custom_id in seen:
            raise BatchFileError(
                f"batch input line {number}: custom_id {custom_id!r} already used on line {seen[custom_id]}"
            )
        seen[custom_id] = number
        n = len(line.encode("utf-8")) + 1
        if n > max_bytes:
            raise BatchFileError(
                f"batch input line {number} ({custom_id}): {n:,} bytes, more than a whole input file may hold "
                f"({max_bytes:,})"
            )
        if current and (len(current) >= max_requests or size + n > max_bytes):
            files.append(current)
            current, size = [], 0
        current.append(line)
        size += n
    if current:
        files.append(current)
    return files


class BatchOutcome(BaseModel):
    """What one request of a batch came to: the HTTP answer it had (`status_code`, `body`), or
    the `error` of a request that had none (`batch_expired`, `batch_cancelled`, …)."""

    custom_id: str
    status_code: int | None = None
    body: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    request_id: str | None = None

    @property
    def ok(self) -> bool:
        """Answered with success: a 2xx status and a body (what the synchronous call returns)."""
        answered = self.error is None and self.body is not None and self.status_code is not None
        return answered and 200 <= (self.status_code or 0) < 300


def _outcome(line: str, number: int, source: str) -> BatchOutcome:
    where = f"{source} line {number}"
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise BatchFileError(f"{where}: not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise BatchFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise BatchFileError(f"{where}: no custom_id (a non-empty string)")
    response, error = obj.get("response"), obj.get("error")
    if response is not None and not isinstance(response, dict):
        raise BatchFileError(f"{where} ({custom_id}): response must be an object or null")
    if error is not None and not isinstance(error, dict):
        raise BatchFileError(f"{where} ({custom_id}): error must be an object or null")
    if response is None and error is None:
        raise BatchFileError(f"{where} ({custom_id}): neither a response nor an error")
    status = body = request_id = None
    if response is not None:
        status, body, request_id = response.get("status_code"), response.get("body"), response.get("request_id")
        if not isinstance(status, int) or isinstance(status, bool):
            raise BatchFileError(f"{where} ({custom_id}): response.status_code must be an integer")
        if body is not None and not isinstance(body, dict):
            raise BatchFileError(f"{where} ({custom_id}): response.body must be an object")
    return BatchOutcome(
        custom_id=custom_id,
        status_code=status,
        body=body,
        error=error,
        request_id=request_id if isinstance(request_id, str) else None,
    )


def read_outcomes(lines: Iterable[str], *, source: str = "batch output") -> dict[str, BatchOutcome]:
    """Each request's outcome by `custom_id`, from an output or an error file's lines (blank
    lines skipped). A line that is not a result, or a `custom_id` twice, is refused naming
    `source` (the file) and the line number."""
    outcomes: dict[str, BatchOutcome] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        outcome = _outcome(line, number, source)
        if outcome.custom_id in outcomes:
            raise BatchFileError(f"{source} line {number}: custom_id {outcome.custom_id!r} appears twice")
        outcomes[outcome.custom_id] = outcome
    return outcomes
