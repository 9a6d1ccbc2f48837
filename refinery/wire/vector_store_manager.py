"""`VectorStoreManager`: files and hosted vector stores, on the shared transport.

Why it matters: `file_search` only finds what was indexed, and "no results" is most often a
store that was queried before indexing finished. This manager refuses files the API would not
index before uploading anything, uploads several at once under a limit, attaches them in one
file batch (with per-file attributes so a stage can restrict retrieval with `filters`), and
polls until every file is processed — naming any file that failed and why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from refinery.core.offload import in_worker
from refinery.errors import (
    APIStatusError,
    FileIndexingError,
    IndexingTimeoutError,
    NotFoundError,
    UnsupportedFileError,
    VectorStoreError,
    VectorStoreGoneError,
)
from refinery.wire.files_api import upload_file
from refinery.wire.transport import OpenAITransport

log = logging.getLogger("refinery.vector_store")

# File types the file_search tool indexes (OpenAI's file search guide).
SUPPORTED_EXTENSIONS = frozenset(
    {
        ".c",
        ".cpp",
        ".cs",
        ".css",
        ".doc",
        ".docx",
        ".go",
        ".html",
        ".java",
        ".js",
        ".json",
        ".md",
        ".pdf",
        ".php",
        ".pptx",
        ".py",
        ".rb",
        ".sh",
        ".tex",
        ".ts",
        ".txt",
    }
)
FILE_PURPOSE = "assistants"  # the purpose file_search's vector stores take
MAX_ATTRIBUTES = 16
MAX_BATCH_FILES = 2000  # the spec's limit on one file batch; larger uploads go in several
Attributes = Mapping[str, str | int | float | bool]
ProgressCallback = Callable[[Mapping[str, int]], None]


def check_uploadable(paths: Sequence[str | Path]) -> list[Path]:
    """Refuse, before any upload, a missing path or a type file_search does not index."""
    checked: list[Path] = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise UnsupportedFileError(f"{path}: no such file")
        if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
            raise UnsupportedFileError(
                f"{path}: file type {path.suffix or '(none)'!r} is not indexed by file_search; "
                f"use one of {', '.join(sorted(SUPPORTED_EXTENSIONS))}"
            )
        checked.append(path)
    return checked


class VectorStoreManager:
    """Create a store, upload and attach files, wait until indexed, clean up."""

    def __init__(
        self,
        transport: OpenAITransport,
        *,
        upload_concurrency: int = 4,
        chunking_strategy: Mapping[str, Any] | None = None,
        batch_size: int = MAX_BATCH_FILES,
    ) -> None:
        """`chunking_strategy` (the API's `auto` / `static` object) is sent with every file
        attached; None leaves the store's default. `batch_size` caps the files per batch."""
        self.transport = transport
        self.upload_concurrency = max(1, upload_concurrency)
        self.chunking_strategy = dict(chunking_strategy) if chunking_strategy else None
        if not 1 <= batch_size <= MAX_BATCH_FILES:
            raise VectorStoreError(f"batch_size must be 1-{MAX_BATCH_FILES}, got {batch_size}")
        self.batch_size = batch_size
        self.uploaded: dict[str, str] = {}  # file id → file name, for messages and cleanup

    async def create_store(
        self, name: str, *, expires_after_days: int | None = 1, metadata: Mapping[str, str] | None = None
    ) -> str:
        """A new store; with `expires_after_days` it expires that long after its last use."""
        body: dict[str, Any] = {"name": name}
        if expires_after_days is not None:
            if not 1 <= expires_after_days <= 365:
                raise VectorStoreError(f"expires_after_days must be 1-365, got {expires_after_days}")
            body["expires_after"] = {"anchor": "last_active_at", "days": expires_after_days}
        if metadata:
            body["metadata"] = dict(metadata)
        resp = await self.transport.request("POST", "/vector_stores", json=body)
        store_id = resp.data["id"]
        log.info("created vector store %s (%s)", store_id, name)
        return str(store_id)

    async def get_store(self, store_id: str) -> dict[str, Any]:
        """The store object; `VectorStoreGoneError` when it was deleted or has expired."""
        try:
            resp = await self.transport.request("GET", f"/vector_stores/{store_id}")
        except NotFoundError:
            raise VectorStoreGoneError(store_id, "not found: deleted, or made on another server") from None
        if resp.data.get("status") == "expired":
            raise VectorStoreGoneError(store_id, "expired")
        return dict(resp.data)

    async def upload_file(
        self, path: Path, *, expires_after_s: int | None = None, on_attempt: Callable[[Path], None] | None = None
    ) -> str:
        """One multipart `POST /files`; returns the file id. With `expires_after_s` the file
        expires that long after it was made (the API takes 3,600 s to 30 days): files otherwise
        stay on the account until deleted, and a run killed before its cleanup leaves them.
        `on_attempt` hears each attempt just before it is sent (a retry after a timeout is one
        more file the server may make, whose id never comes back)."""
        file_id = await upload_file(
            self.transport, path, purpose=FILE_PURPOSE, expires_after_s=expires_after_s, on_attempt=on_attempt
        )
        self.uploaded[file_id] = path.name
        return file_id

    async def upload_files(
        self,
        store_id: str,
        paths: Sequence[str | Path],
        attributes: Mapping[str, Attributes] | None = None,
        *,
        expires_after_s: int | None = None,
        on_uploaded: Callable[[str], None] | None = None,
        on_sending: Callable[[Path], None] | None = None,
        on_refused: Callable[[Path], None] | None = None,
    ) -> list[str]:
        """Upload `paths` (several at once) and attach them to the store in file batches of at
        most `batch_size` files (one batch for most traces).

        `attributes` maps a file name (or path) to its attributes (≤ 16 keys of str/number/bool);
        they let a `file_search` call be restricted with `filters`. Returns the file ids in the
        order of `paths`. `on_uploaded` hears each file id as soon as the file exists (so a caller
        can record it before anything else can fail); `on_sending` hears each path just before each
        attempt of its upload is sent (a file may exist on the server before its id comes back, one
        a timed-out attempt); `on_refused` each path whose upload was answered with an error (its
        last attempt made no file).
        """
        checked = await asyncio.to_thread(check_uploadable, paths)  # a stat a file: off the event loop
        if not checked:
            return []
        attrs_for = await in_worker(_attributes_lookup, attributes or {}, checked)  # one a file: off the loop
        failed: list[BaseException] = []

        async def one(path: Path) -> str:
            try:
                file_id = await self.upload_file(path, expires_after_s=expires_after_s, on_attempt=on_sending)
            except APIStatusError as exc:  # an error answer: no file was made (a timeout may have made one)
                if on_refused is not None:
                    on_refused(path)
                failed.append(exc)
                raise
            except Exception as exc:
                failed.append(exc)
                raise
            if on_uploaded is not None:
                on_uploaded(file_id)
            return file_id

        # `upload_concurrency` uploaders take the paths in order, one at a time; not a task a file,
        # which for a 100 MB trace (38,000 files) held the loop 0.5 s to make and 60 ms to gather.
        # After one upload fails, no new one is sent, and those already sent are waited for: each
        # ends heard (its file id) or refused, so the caller's clean-up knows every file made.
        outcomes: list[str | None] = [None] * len(checked)
        pending = iter(enumerate(checked))

        async def uploader() -> None:
            for i, path in pending:  # shared: each path is taken by one uploader
                if failed:  # another upload failed: this one is not sent
                    return
                try:
                    outcomes[i] = await one(path)
                except Exception:  # recorded in `failed`: the others stop taking paths
                    return

        workers = [asyncio.ensure_future(uploader()) for _ in range(min(self.upload_concurrency, len(checked)))]
        try:
            ends = await asyncio.gather(*workers, return_exceptions=True)
        except BaseException:  # the caller is stopped: the others stop too, before its clean-up
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        if failed:
            raise failed[0]
        for end in ends:
            if isinstance(end, BaseException):  # a cancellation from elsewhere
                raise end
        file_ids = [str(f) for f in outcomes]
        for start in range(0, len(file_ids), self.batch_size):
            ids, batch_paths = file_ids[start : start + self.batch_size], checked[start : start + self.batch_size]
            await self.transport.request(
                "POST", f"/vector_stores/{store_id}/file_batches", json=self._batch_body(ids, batch_paths, attrs_for)
            )
        log.info(
            "attached %d file(s) to %s in %d batch(es)", len(file_ids), store_id, -(-len(file_ids) // self.batch_size)
        )
        return file_ids

    def _batch_body(
        self, file_ids: list[str], paths: list[Path], attrs_for: dict[Path, dict[str, Any]]
    ) -> dict[str, Any]:
        """One file batch: per-file entries when any file has attributes (the API then ignores
        batch-level settings, so the chunking strategy goes on each entry), else plain ids."""
        if attrs_for:
            files = []
            for fid, path in zip(file_ids, paths):
                entry: dict[str, Any] = {"file_id": fid}
                if path in attrs_for:
                    entry["attributes"] = attrs_for[path]
                if self.chunking_strategy:
                    entry["chunking_strategy"] = self.chunking_strategy
                files.append(entry)
            return {"files": files}
        body: dict[str, Any] = {"file_ids": file_ids}
        if self.chunking_strategy:
            body["chunking_strategy"] = self.chunking_strategy
        return body

    async def poll_ready(
        self,
        store_id: str,
        timeout_s: float = 600,
        poll_s: float = 3,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, int]:
        """Wait until every file of the store is processed; return the final file counts.

        A failed file raises `FileIndexingError` naming it and its `last_error`; running out of
        time raises `IndexingTimeoutError` saying how many files were still in progress.
        """
        clock = self.transport.clock
        deadline = clock() + timeout_s
        while True:
            data = await self.get_store(store_id)
            counts = {k: int(v) for k, v in (data.get("file_counts") or {}).items()}
            if on_progress is not None:
                on_progress(counts)
            if counts.get("failed", 0) > 0:
                raise FileIndexingError(await self._failures(store_id))
            if counts.get("in_progress", 0) == 0:
                return counts
            if clock() >= deadline:
                raise IndexingTimeoutError(store_id, counts.get("in_progress", 0), timeout_s)
            await self.transport.sleep(min(poll_s, max(0.0, deadline - clock())) or poll_s)

    async def _failures(self, store_id: str) -> list[tuple[str, str, str]]:
        resp = await self.transport.request(
            "GET", f"/vector_stores/{store_id}/files", params={"filter": "failed", "limit": "100"}
        )
        out = []
        for f in resp.data.get("data") or []:
            err = f.get("last_error") or {}
            name = self.uploaded.get(f.get("id", ""), f.get("id", "?"))
            out.append((name, str(err.get("code", "unknown")), str(err.get("message", "no message"))))
        return out or [("?", "unknown", "the store reports failed files but listed none")]

    async def delete_store(self, store_id: str) -> None:
        await self.transport.request("DELETE", f"/vector_stores/{store_id}")
        log.info("deleted vector store %s", store_id)

    async def delete_files(self, file_ids: Sequence[str] | None = None) -> None:
        """Delete uploaded files (all this manager uploaded when `file_ids` is None); a file
        already gone is what was wanted."""
        ids = list(self.uploaded) if file_ids is None else list(file_ids)
        for fid in ids:
            try:
                await self.transport.request("DELETE", f"/files/{fid}")
            except NotFoundError:
                pass
            self.uploaded.pop(fid, None)

    async def account_files(self, purpose: str = "assistants") -> list[dict[str, Any]]:
        """Every file on the account with `purpose` (`GET /files`, page by page): what a killed
        upload may have left that its run never heard the id of."""
        files: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params = {"purpose": purpose, "limit": "10000", "order": "asc", **({"after": after} if after else {})}
            page = (await self.transport.request("GET", "/files", params=params)).data
            data = list(page.get("data") or [])
            files.extend(data)
            if not page.get("has_more") or not data:
                return files
            after = str(data[-1]["id"])

    async def stores_since(self, since: float) -> list[dict[str, Any]]:
        """The account's vector stores made at `since` (a Unix time) or later, newest first
        (`GET /vector_stores`, paged until older ones begin): where a store whose creation timed
        out, or was retried, is found by its metadata."""
        stores: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params = {"limit": "100", "order": "desc", **({"after": after} if after else {})}
            page = (await self.transport.request("GET", "/vector_stores", params=params)).data
            data = list(page.get("data") or [])
            recent = [s for s in data if float(s.get("created_at") or 0) >= since]
            stores.extend(recent)
            if not page.get("has_more") or not data or len(recent) < len(data):
                return stores
            after = str(data[-1]["id"])

    @property
    def request_timeout_s(self) -> float:
        """How long one request may take before the client gives up on it (what a server that
        is slow to answer may still be working on after a run gave up)."""
        total = self.transport.timeout.total if self.transport.timeout else None
        return float(total or 300)


def _attributes_lookup(attributes: Mapping[str, Attributes], paths: list[Path]) -> dict[Path, dict[str, Any]]:
    out: dict[Path, dict[str, Any]] = {}
    for path in paths:
        attrs = attributes.get(str(path), attributes.get(path.name))
        if attrs is None:
            continue
        if len(attrs) > MAX_ATTRIBUTES:
            raise VectorStoreError(f"{path.name}: {len(attrs)} attributes, at most {MAX_ATTRIBUTES} allowed")
        for k, v in attrs.items():
            if not isinstance(v, (str, int, float, bool)) or len(k) > 64:
                raise VectorStoreError(
                    f"{path.name}: attribute {k!r} must have a key ≤ 64 chars and a str/number/bool value"
                )
        out[path] = dict(attrs)
    return out
