"""An in-memory Batch API for the engine's unit tests: each batch's lines answered by the local
test server's `/responses` (the same stand-in answers as the synchronous path), with line errors,
an expiry and a stop injected where a test asks."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from refinery.wire.batch_api import Batch
from refinery.wire.responses_client import ResponsesClient


class Stop(BaseException):
    """The process killed at a chosen point (a BaseException, as a signal's would be)."""


class FakeBatchAPI:
    def __init__(self, base_url: str) -> None:
        self.client = ResponsesClient(api_key="sk-test", base_url=base_url, budget=False)
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.creates: list[dict[str, Any]] = []  # every POST /batches
        self.uploads = 0
        self.names: dict[str, str] = {}  # uploaded file id -> its name on the server
        self.lines_sent: list[str] = []  # custom ids, once per batch line
        self.fail_once: set[str] = set()  # custom ids whose first try errors
        self.fail_always: Callable[[dict[str, Any]], bool] = lambda body: False
        self.expire_batches: set[int] = set()  # the nth batch made (1-based) expires unanswered
        # where the process is killed once: "<call>-before" / "<call>-after" (made, the answer lost);
        # "create-after" and "retrieve" are the two the issue names
        self.stop_at: str | None = None
        self._ids = itertools.count(1)

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def _stop(self, point: str) -> None:
        if self.stop_at == point:
            self.stop_at = None
            raise Stop(f"killed at {point}")

    async def upload_input(self, path: Path, *, filename: str | None = None, expires_after_s: int | None = None) -> str:
        self._stop("upload-before")
        self.uploads += 1
        fid = self._id("file")
        self.files[fid] = Path(path).read_bytes()
        self.names[fid] = filename or Path(path).name
        self._stop("upload-after")
        return fid

    async def find_uploads(self, filename: str, *, created_after: float | None = None) -> list[dict[str, Any]]:
        found = [
            {"id": f, "filename": n, "bytes": len(self.files[f])} for f, n in self.names.items() if f in self.files
        ]
        return [f for f in reversed(found) if f["filename"] == filename]  # newest first, as the API lists them

    async def create(self, input_file_id: str, *, endpoint: str, metadata=None, completion_window="24h") -> Batch:
        assert completion_window == "24h" and endpoint == "/v1/responses"
        self._stop("create-before")
        bid = self._id("batch")
        self.creates.append({"input_file_id": input_file_id, "metadata": metadata})
        self.batches[bid] = {
            "input": input_file_id,
            "metadata": metadata,
            "status": "in_progress",
            "n": len(self.creates),
        }
        if self.stop_at == "create-after":
            self.stop_at = None
            raise Stop("killed after the server made the batch")
        return self._batch(bid)

    def _batch(self, bid: str) -> Batch:
        b = self.batches[bid]
        lines = self.files[b["input"]].decode().splitlines()
        return Batch.model_validate(
            {
                "id": bid,
                "status": b["status"],
                "endpoint": "/v1/responses",
                "input_file_id": b["input"],
                "output_file_id": b.get("output"),
                "error_file_id": b.get("errors"),
                "request_counts": {"total": len(lines), "completed": b.get("ok", 0), "failed": b.get("bad", 0)},
                "metadata": b["metadata"],
                "created_at": 1000,
                "completed_at": 1600 if b["status"] == "completed" else None,
                "expired_at": 2000 if b["status"] == "expired" else None,
            }
        )

    async def retrieve(self, batch_id: str) -> Batch:
        if self.stop_at == "retrieve":
            self.stop_at = None
            raise Stop("killed while polling")
        b = self.batches[batch_id]
        if b["status"] in ("in_progress", "cancelling"):
            await self._run(batch_id)
        return self._batch(batch_id)

    async def _run(self, batch_id: str) -> None:
        b = self.batches[batch_id]
        if b["status"] == "cancelling":
            b["status"] = "cancelled"
            return
        if b["n"] in self.expire_batches:
            b["status"] = "expired"
            return
        out, errors = [], []
        for line in self.files[b["input"]].decode().splitlines():
            req = json.loads(line)
            cid = req["custom_id"]
            self.lines_sent.append(cid)
            if cid in self.fail_once or self.fail_always(req["body"]):
                self.fail_once.discard(cid)
                err = {"error": {"message": "The server had an error", "type": "server_error", "code": "server_error"}}
                errors.append({"id": f"l-{cid}", "custom_id": cid, "response": {"status_code": 500, "body": err}})
                continue
            body = await self.client.create(req["body"])
            out.append({"id": f"l-{cid}", "custom_id": cid, "response": {"status_code": 200, "body": body}})
        for kind, rows in (("output", out), ("errors", errors)):
            if rows:
                fid = self._id("file")
                self.files[fid] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                b[kind] = fid
        b["ok"], b["bad"], b["status"] = len(out), len(errors), "completed"

    async def cancel(self, batch_id: str) -> Batch:
        self.batches[batch_id]["status"] = "cancelling"
        return self._batch(batch_id)

    async def find(self, *, metadata=None, input_file_id=None) -> Batch | None:
        for bid, b in self.batches.items():
            if (metadata is None or b["metadata"] == metadata) and (input_file_id in (None, b["input"])):
                return self._batch(bid)
        return None

    async def download(self, file_id: str, dest: Path) -> Path:
        self._stop("download-before")
        Path(dest).write_bytes(self.files[file_id])
        self._stop("download-after")
        return Path(dest)

    async def delete_file(self, file_id: str) -> None:
        self._stop("delete-before")
        self.files.pop(file_id, None)  # one already gone is what was wanted, as the client says
        self._stop("delete-after")

    async def close(self) -> None:
        await self.client.close()
