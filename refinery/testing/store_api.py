"""The test server's files and vector stores: uploads, stores, file batches with timed indexing,
and the retrieval behind `file_search` and `POST /v1/vector_stores/{id}/search`.

A mixin of `OpenAITestServer`, kept apart so each module stays one job: this one is the storage
half of the API, with the limits the spec states (2,000 files a batch, chunking bounds) and
OpenAI's chunking (token windows, 800 / 400 by default).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from refinery.testing.retrieval import Chunk, bm25, chunk_text, chunking_problem, chunking_window, matches

DEFAULT_MAX_NUM_RESULTS = 10
MAX_BATCH_FILES = 2000  # the spec's maxItems for a file batch's `file_ids` / `files`


@dataclass
class _File:
    id: str
    filename: str
    data: bytes
    purpose: str
    created_at: int
    expires_at: int | None = None


@dataclass
class _StoreFile:
    file_id: str
    attributes: dict[str, Any]
    ready_at: float
    fails: bool
    created_at: int
    batch_id: str | None = None
    chunking: dict[str, Any] | None = None
    chunks: list[Chunk] | None = None  # cut once, on first search, as the real store does at indexing


@dataclass
class _Store:
    id: str
    name: str
    created_at: int
    expires_after: dict[str, Any] | None
    metadata: dict[str, Any]
    files: dict[str, _StoreFile] = field(default_factory=dict)


class _ApiError(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _error(status: int, message: str, type: str, *, param: str | None = None, code: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": type, "param": param, "code": code}}, status=status)


class FilesAndStores:
    """Files and vector store endpoints; the server provides the state and plumbing below."""

    files: dict[str, _File]
    stores: dict[str, _Store]
    indexing_delay_s: float
    fail_indexing: set[str]
    upload_latency_s: float
    clock: Callable[[], float]
    _new_id: Callable[[str], str]
    _now: Callable[[], int]
    _json: Callable[[web.Request], Awaitable[Any]]
    _take_fault: Callable[[str, str], Any]  # an armed fault for this path and body, if any
    _transport_fault: Callable[[Any], Awaitable[web.StreamResponse | None]]

    # --- files ----------------------------------------------------------------------------
    async def create_file(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        upload_name = getattr(form.get("file"), "filename", "") or ""
        fault = self._take_fault("/v1/files", upload_name)  # a fault may match the file name
        late = fault is not None and fault.kind == "answer_late"
        early = None if late else await self._transport_fault(fault)
        if early is not None:
            return early
        upload = form.get("file")
        purpose = form.get("purpose")
        if not isinstance(purpose, str) or purpose not in (
            "assistants",
            "batch",
            "fine-tune",
            "vision",
            "user_data",
            "evals",
        ):
            return _error(400, f"Invalid value for 'purpose': {purpose!r}.", "invalid_request_error", param="purpose")
        if not isinstance(upload, web.FileField):
            return _error(400, "Missing required parameter: 'file'.", "invalid_request_error", param="file")
        if self.upload_latency_s:
            await asyncio.sleep(self.upload_latency_s)
        anchor, seconds = form.get("expires_after[anchor]"), form.get("expires_after[seconds]")
        expires_at = None
        if anchor is not None or seconds is not None:
            if anchor != "created_at" or not str(seconds).isdigit() or not 3600 <= int(str(seconds)) <= 2_592_000:
                return _error(
                    400,
                    "Invalid 'expires_after': anchor 'created_at' and seconds from 3600 to 2592000.",
                    "invalid_request_error",
                    param="expires_after",
                )
            expires_at = self._now() + int(str(seconds))
        data = upload.file.read()
        rec = _File(self._new_id("file-"), upload.filename or "upload", data, purpose, self._now(), expires_at)
        self.files[rec.id] = rec
        if late and fault is not None:
            await asyncio.sleep(fault.delay_s)  # the file exists; its id comes late, or to nobody
        return web.json_response(self._file_obj(rec))

    def _file_obj(self, f: _File) -> dict[str, Any]:
        return {
            "id": f.id,
            "object": "file",
            "bytes": len(f.data),
            "created_at": f.created_at,
            "expires_at": f.expires_at,
            "filename": f.filename,
            "purpose": f.purpose,
            "status": "processed",
            "status_details": None,
        }

    def _file(self, file_id: str) -> _File:
        if file_id not in self.files:
            raise _ApiError(_error(404, f"No such File object: {file_id}", "invalid_request_error", param="id"))
        return self.files[file_id]

    async def get_file(self, request: web.Request) -> web.Response:
        return web.json_response(self._file_obj(self._file(request.match_info["file_id"])))

    async def file_content(self, request: web.Request) -> web.Response:
        """`GET /files/{id}/content`: the file's bytes (a batch's input, output and error files).
        A file of purpose `assistants` is refused, as the API refuses it."""
        f = self._file(request.match_info["file_id"])
        if f.purpose == "assistants":
            return _error(
                400, "Not allowed to download files of purpose: assistants", "invalid_request_error", param="file_id"
            )
        return web.Response(body=f.data, content_type="application/octet-stream")

    async def delete_file(self, request: web.Request) -> web.Response:
        f = self._file(request.match_info["file_id"])
        del self.files[f.id]
        return web.json_response({"id": f.id, "object": "file", "deleted": True})

    # --- vector stores --------------------------------------------------------------------
    def _store(self, store_id: str) -> _Store:
        if store_id not in self.stores:
            raise _ApiError(
                _error(
                    404,
                    f"Vector store with id '{store_id}' not found.",
                    "invalid_request_error",
                    param="vector_store_id",
                )
            )
        return self.stores[store_id]

    def _file_status(self, sf: _StoreFile) -> str:
        if self.clock() < sf.ready_at:
            return "in_progress"
        return "failed" if sf.fails else "completed"

    def _counts(self, files: Iterable[_StoreFile]) -> dict[str, int]:
        c = Counter(self._file_status(sf) for sf in files)
        return {
            "in_progress": c["in_progress"],
            "completed": c["completed"],
            "failed": c["failed"],
            "cancelled": 0,
            "total": sum(c.values()),
        }

    def _store_obj(self, s: _Store) -> dict[str, Any]:
        counts = self._counts(s.files.values())
        expires_at = s.created_at + 86400 * s.expires_after["days"] if s.expires_after else None
        return {
            "id": s.id,
            "object": "vector_store",
            "created_at": s.created_at,
            "name": s.name,
            "usage_bytes": sum(len(self.files[f].data) for f in s.files if f in self.files),
            "file_counts": counts,
            "status": "in_progress" if counts["in_progress"] else "completed",
            "expires_after": s.expires_after,
            "expires_at": expires_at,
            "last_active_at": self._now(),
            "metadata": s.metadata,
        }

    def _attach(
        self,
        store: _Store,
        file_id: str,
        attributes: dict[str, Any] | None,
        batch_id: str | None,
        chunking: dict[str, Any] | None = None,
    ) -> _StoreFile:
        f = self._file(file_id)
        fails = any(pattern in f.filename for pattern in self.fail_indexing)
        sf = _StoreFile(
            file_id,
            dict(attributes or {}),
            self.clock() + self.indexing_delay_s,
            fails,
            self._now(),
            batch_id,
            chunking,
        )
        store.files[file_id] = sf
        return sf

    async def create_store(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if not isinstance(body, dict):
            return _error(400, "Invalid body: expected an object.", "invalid_request_error")
        unknown = set(body) - {"name", "file_ids", "expires_after", "metadata", "description", "chunking_strategy"}
        if unknown:
            return _error(
                400,
                f"Unknown parameter: '{sorted(unknown)[0]}'.",
                "invalid_request_error",
                param=sorted(unknown)[0],
                code="unknown_parameter",
            )
        exp = body.get("expires_after")
        if exp is not None and (
            not isinstance(exp, dict)
            or exp.get("anchor") != "last_active_at"
            or not isinstance(exp.get("days"), int)
            or not 1 <= exp["days"] <= 365
        ):
            return _error(
                400,
                "Invalid 'expires_after': expected {anchor: 'last_active_at', days: 1-365}.",
                "invalid_request_error",
                param="expires_after",
            )
        problem = chunking_problem(body.get("chunking_strategy"))
        if problem:
            return _error(
                400, f"Invalid 'chunking_strategy': {problem}.", "invalid_request_error", param="chunking_strategy"
            )
        store = _Store(
            self._new_id("vs_"), str(body.get("name") or ""), self._now(), exp, dict(body.get("metadata") or {})
        )
        self.stores[store.id] = store
        for fid in body.get("file_ids") or []:
            self._attach(store, fid, None, None, body.get("chunking_strategy"))
        return web.json_response(self._store_obj(store))

    async def list_files(self, request: web.Request) -> web.Response:
        """`GET /files`: the files (of `purpose`, when given), paged by `limit` and `after`, in
        `order` of creation (newest first by default), in the API's list shape."""
        q = request.query
        files = [f for f in self.files.values() if q.get("purpose") in (None, f.purpose)]
        files.sort(key=lambda f: (f.created_at, f.id), reverse=q.get("order", "desc") == "desc")
        if q.get("after"):
            ids = [f.id for f in files]
            files = files[ids.index(q["after"]) + 1 :] if q["after"] in ids else []
        limit = int(q.get("limit") or 10000) if str(q.get("limit") or "1").isdigit() else 10000
        page = files[:limit]
        return web.json_response(
            {"object": "list", "data": [self._file_obj(f) for f in page], "has_more": len(files) > limit}
        )

    async def list_stores(self, request: web.Request) -> web.Response:
        """`GET /vector_stores`: every store, in the API's list shape."""
        data = [self._store_obj(s) for s in self.stores.values()]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return web.json_response(
            {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": False}
        )

    async def get_store(self, request: web.Request) -> web.Response:
        return web.json_response(self._store_obj(self._store(request.match_info["store_id"])))

    async def delete_store(self, request: web.Request) -> web.Response:
        s = self._store(request.match_info["store_id"])
        del self.stores[s.id]
        return web.json_response({"id": s.id, "object": "vector_store.deleted", "deleted": True})

    def _store_file_obj(self, store: _Store, sf: _StoreFile) -> dict[str, Any]:
        status = self._file_status(sf)
        last_error = (
            {
                "code": "invalid_file",
                "message": f"The file {self.files[sf.file_id].filename if sf.file_id in self.files else sf.file_id} "
                f"could not be parsed.",
            }
            if status == "failed"
            else None
        )
        return {
            "id": sf.file_id,
            "object": "vector_store.file",
            "usage_bytes": len(self.files[sf.file_id].data) if sf.file_id in self.files else 0,
            "created_at": sf.created_at,
            "vector_store_id": store.id,
            "status": status,
            "last_error": last_error,
            "chunking_strategy": {
                "type": "static",
                "static": dict(zip(("max_chunk_size_tokens", "chunk_overlap_tokens"), chunking_window(sf.chunking))),
            },
            "attributes": sf.attributes,
        }

    def _list(self, request: web.Request, store: _Store, files: list[_StoreFile]) -> web.Response:
        wanted = request.query.get("filter")
        items = [self._store_file_obj(store, sf) for sf in files]
        if wanted:
            items = [i for i in items if i["status"] == wanted]
        limit = int(request.query.get("limit", "20"))
        page = items[:limit]
        return web.json_response(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > limit,
            }
        )

    async def list_store_files(self, request: web.Request) -> web.Response:
        store = self._store(request.match_info["store_id"])
        return self._list(request, store, list(store.files.values()))

    async def create_batch(self, request: web.Request) -> web.Response:
        store = self._store(request.match_info["store_id"])
        body = await self._json(request)
        if not isinstance(body, dict) or ("file_ids" in body) == ("files" in body):
            return _error(400, "Provide exactly one of 'file_ids' or 'files'.", "invalid_request_error")
        entries = body.get("files") if "files" in body else body.get("file_ids")
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_BATCH_FILES:
            n = len(entries) if isinstance(entries, list) else 0
            key = "files" if "files" in body else "file_ids"
            return _error(
                400,
                f"Invalid '{key}': a file batch holds 1 to {MAX_BATCH_FILES} files, got {n}.",
                "invalid_request_error",
                param=key,
            )
        problems = [chunking_problem(e.get("chunking_strategy")) for e in entries if isinstance(e, dict)] + [
            chunking_problem(body.get("chunking_strategy"))
        ]
        problem = next((p for p in problems if p), None)
        if problem:
            return _error(
                400, f"Invalid 'chunking_strategy': {problem}.", "invalid_request_error", param="chunking_strategy"
            )
        batch_id = self._new_id("vsfb_")
        if "files" in body:
            # per-file entries: the batch-level attributes and chunking_strategy are ignored (spec)
            for entry in body["files"]:
                self._attach(store, entry["file_id"], entry.get("attributes"), batch_id, entry.get("chunking_strategy"))
        else:
            for fid in body["file_ids"]:
                self._attach(store, fid, body.get("attributes"), batch_id, body.get("chunking_strategy"))
        return web.json_response(self._batch_obj(store, batch_id))

    def _batch_obj(self, store: _Store, batch_id: str) -> dict[str, Any]:
        counts = self._counts(sf for sf in store.files.values() if sf.batch_id == batch_id)
        status = (
            "in_progress"
            if counts["in_progress"]
            else ("failed" if counts["failed"] and not counts["completed"] else "completed")
        )
        return {
            "id": batch_id,
            "object": "vector_store.files_batch",
            "created_at": self._now(),
            "vector_store_id": store.id,
            "status": status,
            "file_counts": counts,
        }

    async def get_batch(self, request: web.Request) -> web.Response:
        store = self._store(request.match_info["store_id"])
        return web.json_response(self._batch_obj(store, request.match_info["batch_id"]))

    async def list_batch_files(self, request: web.Request) -> web.Response:
        store = self._store(request.match_info["store_id"])
        bid = request.match_info["batch_id"]
        return self._list(request, store, [sf for sf in store.files.values() if sf.batch_id == bid])

    def _chunks(self, sf: _StoreFile) -> list[Chunk]:
        if sf.chunks is None:
            f = self.files[sf.file_id]
            size, overlap = chunking_window(sf.chunking)
            sf.chunks = [
                Chunk(f.id, f.filename, t, sf.attributes)
                for t in chunk_text(f.data.decode("utf-8", "replace"), size, overlap)
            ]
        return sf.chunks

    def _search(self, tool: dict[str, Any], query: str) -> list[tuple[Chunk, float]]:
        chunks: list[Chunk] = []
        for sid in tool.get("vector_store_ids") or []:
            store = self._store(sid)
            for sf in store.files.values():
                if self._file_status(sf) != "completed" or sf.file_id not in self.files:
                    continue
                if not matches(sf.attributes, tool.get("filters")):
                    continue
                chunks.extend(self._chunks(sf))
        hits = bm25(query, chunks)
        n = int(tool.get("max_num_results") or DEFAULT_MAX_NUM_RESULTS)
        return [(h.chunk, h.score) for h in hits[:n]]

    async def search_store(self, request: web.Request) -> web.Response:
        """`POST /v1/vector_stores/{id}/search`: the same retrieval file_search uses, answered as
        the API's `VectorStoreSearchResultsPage`."""
        store = self._store(request.match_info["store_id"])
        body = await self._json(request)
        if not isinstance(body, dict) or not isinstance(body.get("query"), (str, list)):
            return _error(400, "Missing required parameter: 'query'.", "invalid_request_error", param="query")
        n = body.get("max_num_results", DEFAULT_MAX_NUM_RESULTS)
        if not isinstance(n, int) or not 1 <= n <= 50:
            return _error(
                400,
                "Invalid 'max_num_results': expected an integer from 1 to 50.",
                "invalid_request_error",
                param="max_num_results",
            )
        query = body["query"] if isinstance(body["query"], str) else " ".join(map(str, body["query"]))
        hits = self._search(
            {"vector_store_ids": [store.id], "filters": body.get("filters"), "max_num_results": n}, query
        )
        data = [
            {
                "file_id": c.file_id,
                "filename": c.filename,
                "score": score,
                "attributes": dict(c.attributes),
                "content": [{"type": "text", "text": c.text}],
            }
            for c, score in hits
        ]
        return web.json_response(
            {
                "object": "vector_store.search_results.page",
                "search_query": query,
                "data": data,
                "has_more": False,
                "next_page": None,
            }
        )
