"""`BatchAPI`: the provider's Batch API (OpenAI's, and Azure's Global Batch) on the shared transport.

Why a client of its own: a batch is a file of requests uploaded with purpose `batch`, a batch
object made from it and polled until done (within a 24 h window), and output and error files
downloaded — five calls that outlive a process. What makes them safe to repeat lives here: a
batch made by a run killed before it heard the id is found again (`find`, by the input file or
the metadata it was made with) rather than made twice, and creating one retries nothing blindly
— after a failure that may have made it (a timeout, a dropped connection, a 5xx) it looks first.
Files go through `files_api` (uploads read off the event loop; a download streamed to disk and
moved into place whole). Azure OpenAI's v1 API serves the same paths under `/openai/v1`; the
transport addresses it, and `endpoint_path` says what a batch's `endpoint` and lines' `url` are.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from refinery.errors import APIConnectionError, BatchError, ServerError
from refinery.wire.files_api import delete_file, download_file, list_files, upload_file
from refinery.wire.retry import RetryPolicy
from refinery.wire.transport import OpenAITransport

__all__ = ["CLOCK_SKEW_S", "DONE_STATUSES", "Batch", "BatchAPI", "BatchCounts", "BatchErrorItem", "BatchErrors"]

log = logging.getLogger("refinery.batch_api")

FILE_PURPOSE = "batch"
DONE_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
ENDPOINTS = {"responses": "/v1/responses", "chat": "/v1/chat/completions"}
MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512
AZURE_MIN_FILE_EXPIRY_S = 1_209_600  # Azure's batch files expire 14 to 30 days after they are made
LIST_PAGE = 100  # the API's largest `limit` for `GET /batches`
CLOCK_SKEW_S = 900  # how far this machine's clock may be ahead of the API's
CREATE_ATTEMPTS = 4  # a create that failed where it may have made the batch: looked for, then tried again
# creating a batch retries only what cannot have made one (429s); the rest is looked for first
NO_BLIND_RETRY = RetryPolicy(max_retries=0)


class BatchCounts(BaseModel):
    """How many of a batch's requests there are, and how many ended each way so far."""

    model_config = ConfigDict(extra="allow")

    total: int = 0
    completed: int = 0
    failed: int = 0

    @field_validator("total", "completed", "failed", mode="before")
    @classmethod
    def _none_is_zero(cls, value: Any) -> Any:
        return 0 if value is None else value  # Azure answers null counts while validating


class BatchErrorItem(BaseModel):
    """Why a batch failed validation: the API's code and message, and the input line when known."""

    model_config = ConfigDict(extra="allow")

    code: str | None = None
    message: str | None = None
    param: str | None = None
    line: int | None = None


class BatchErrors(BaseModel):
    model_config = ConfigDict(extra="allow")

    object: str = "list"
    data: list[BatchErrorItem] = Field(default_factory=list)


class Batch(BaseModel):
    """The API's Batch object (its other fields, such as `usage` and `model`, kept as given)."""

    model_config = ConfigDict(extra="allow")

    id: str
    status: str
    endpoint: str
    input_file_id: str
    completion_window: str = "24h"
    output_file_id: str | None = None
    error_file_id: str | None = None
    request_counts: BatchCounts = Field(default_factory=BatchCounts)
    metadata: dict[str, str] | None = None
    errors: BatchErrors | None = None
    created_at: int | None = None
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _lower_status(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value  # Azure has written "Validating"

    @field_validator(
        "created_at",
        "in_progress_at",
        "expires_at",
        "finalizing_at",
        "completed_at",
        "failed_at",
        "expired_at",
        "cancelling_at",
        "cancelled_at",
        mode="before",
    )
    @classmethod
    def _unix_seconds(cls, value: Any) -> Any:
        """Unix seconds; Azure has answered ISO 8601 times ("2024-07-19T17:13:57.2491382+00:00")."""
        return unix_seconds(value)

    @property
    def done(self) -> bool:
        """It will change no more: completed, failed (validation), expired or cancelled."""
        return self.status in DONE_STATUSES

    def error_summary(self) -> str:
        """The validation errors in one line (`line 3: duplicate_custom_id: …`), for messages."""
        items = self.errors.data if self.errors else []
        return "; ".join(
            (f"line {e.line}: " if e.line is not None else "") + f"{e.code or 'error'}: {e.message or ''}".rstrip(": ")
            for e in items
        )


def unix_seconds(value: Any) -> Any:
    """A time as Unix seconds: an int as it is; a float or numeric string cut to seconds; an ISO 8601
    string (more than 6 fractional digits allowed, as .NET writes them) converted; else unchanged."""
    if isinstance(value, float):
        return int(value)
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        return int(float(text))
    head, dot, rest = text.partition(".")
    if dot:  # .NET's 7 fractional digits: Python reads at most 6
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return value


def check_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """The API's metadata rules (16 pairs, keys ≤ 64 and values ≤ 512 characters), checked before
    anything is sent: a refused batch would say less."""
    if len(metadata) > MAX_METADATA_PAIRS:
        raise BatchError(f"batch metadata: {len(metadata)} pairs, at most {MAX_METADATA_PAIRS} allowed")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise BatchError(f"batch metadata {key!r}: keys and values must be strings")
        if len(key) > MAX_METADATA_KEY or len(value) > MAX_METADATA_VALUE:
            raise BatchError(
                f"batch metadata {key!r}: keys ≤ {MAX_METADATA_KEY} and values ≤ {MAX_METADATA_VALUE} characters"
            )
    return dict(metadata)


class BatchAPI:
    """Upload, create, poll, cancel, find, download, delete: one batch's life on one transport.

    Holds no per-run state: what a run made (file and batch ids) is the caller's to record.
    """

    def __init__(self, transport: OpenAITransport) -> None:
        self.transport = transport

    def endpoint_path(self, api: Literal["responses", "chat"] = "responses") -> str:
        """A batch's `endpoint`, which each input line's `url` must equal: `/v1/responses` or
        `/v1/chat/completions`, on OpenAI and on Azure OpenAI's v1 API alike (whose lines name
        the deployment as their body's `model`)."""
        if api not in ENDPOINTS:
            raise BatchError(f"batch endpoint: api must be one of {sorted(ENDPOINTS)}, got {api!r}")
        return ENDPOINTS[api]

    async def upload_input(self, path: Path, *, filename: str | None = None, expires_after_s: int | None = None) -> str:
        """Upload a JSONL input file with purpose `batch` (read off the event loop), named
        `filename` on the server (default: the path's); its file id. With `expires_after_s` the
        file expires by itself that long after: 1 hour to 30 days on OpenAI, at least 14 days on
        Azure OpenAI (whose batch files are capped at 500 a resource without an expiry, 10,000
        with one). An attempt retried after a timeout may have made a file too: once one answers,
        the other copies of that name made since the first attempt are deleted."""
        if expires_after_s is not None and self.transport.settings.backend == "azure":
            expires_after_s = max(expires_after_s, AZURE_MIN_FILE_EXPIRY_S)
        name = filename or Path(path).name
        attempts: list[Path] = []
        since = int(time.time()) - CLOCK_SKEW_S
        file_id = await upload_file(
            self.transport,
            Path(path),
            purpose=FILE_PURPOSE,
            content_type="application/jsonl",
            expires_after_s=expires_after_s,
            on_attempt=attempts.append,
            filename=name,
        )
        if len(attempts) > 1:
            for copy in await self.find_uploads(name, created_after=since):
                if copy.get("id") != file_id:
                    log.info("upload of %s was retried; deleting its other copy %s", name, copy.get("id"))
                    await self.delete_file(str(copy["id"]))
        return file_id

    async def find_uploads(self, filename: str, *, created_after: float | None = None) -> list[dict[str, Any]]:
        """The account's batch files named `filename` made at `created_after` (a Unix time) or
        later, newest first, as the API lists them (`id`, `bytes`, `status`, …): an upload whose
        id a stop or a timeout lost, found again rather than left on the server."""
        files = await list_files(self.transport, purpose=FILE_PURPOSE, created_after=created_after)
        return [f for f in files if f.get("filename") == filename]

    async def create(
        self,
        input_file_id: str,
        *,
        endpoint: str,
        metadata: Mapping[str, str] | None = None,
        completion_window: str = "24h",
    ) -> Batch:
        """`POST /batches`. A failure that may have made the batch anyway (no answer, a timeout, a
        5xx) is followed by a look for it (`find` by this input file) before another try, so one
        input file makes one batch."""
        body: dict[str, Any] = {
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": completion_window,
        }
        if metadata:
            body["metadata"] = check_metadata(metadata)
        # a batch this call made was made after it began: the look need not page through older ones
        since = int(time.time()) - CLOCK_SKEW_S
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                resp = await self.transport.request("POST", "/batches", json=body, retry=NO_BLIND_RETRY)
            except (APIConnectionError, ServerError) as exc:
                found = await self.find(input_file_id=input_file_id, created_after=since)
                if found is not None:
                    log.info("batch create failed (%s) but made %s; using it", exc, found.id)
                    return found
                if attempt == CREATE_ATTEMPTS:
                    raise
                wait = self.transport.retry.backoff(attempt, lambda: 0.5)
                log.info("batch create failed (%s), and made none; retry in %.2fs", exc, wait)
                await self.transport.sleep(wait)
                continue
            return Batch.model_validate(resp.data)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def retrieve(self, batch_id: str) -> Batch:
        """`GET /batches/{id}`."""
        return Batch.model_validate((await self.transport.request("GET", f"/batches/{batch_id}")).data)

    async def cancel(self, batch_id: str) -> Batch:
        """`POST /batches/{id}/cancel`: the batch goes `cancelling`, then `cancelled`, with what
        had finished in its output file."""
        return Batch.model_validate((await self.transport.request("POST", f"/batches/{batch_id}/cancel")).data)

    async def find(
        self,
        *,
        metadata: Mapping[str, str] | None = None,
        input_file_id: str | None = None,
        created_after: int | None = None,
    ) -> Batch | None:
        """The newest batch made with `input_file_id` and carrying every pair of `metadata`, or
        None: pages through `GET /batches` (newest first), stopping at batches made before
        `created_after` (a Unix time) when given. What a run killed before it heard a batch's id
        finds it by."""
        if not metadata and not input_file_id:
            raise BatchError("find a batch by its metadata or input file id; neither was given")
        wanted = dict(metadata or {})
        after: str | None = None
        while True:
            params = {"limit": str(LIST_PAGE), **({"after": after} if after else {})}
            page = (await self.transport.request("GET", "/batches", params=params)).data
            data = [Batch.model_validate(b) for b in page.get("data") or []]
            for batch in data:
                if created_after is not None and (batch.created_at or 0) < created_after:
                    return None
                if input_file_id and batch.input_file_id != input_file_id:
                    continue
                if all((batch.metadata or {}).get(k) == v for k, v in wanted.items()):
                    return batch
            if not page.get("has_more") or not data:
                return None
            after = data[-1].id

    async def download(self, file_id: str, dest: Path) -> Path:
        """A file's content (an output or error file) streamed into `dest`, written off the event
        loop and moved into place only when whole."""
        return await download_file(self.transport, file_id, Path(dest))

    async def delete_file(self, file_id: str) -> None:
        """Delete an input, output or error file; one already gone (404) is what was wanted."""
        await delete_file(self.transport, file_id)
