"""The test server's Batch API: `/v1/batches` create, retrieve, cancel and list, over its files.

Why: a batch lives for hours on the real API, and what can go wrong with one (a refused input
file, lines that fail, a batch that expires or is cancelled half done, a run killed before it
heard the batch's id) cannot be waited for in a test. Here a batch is validated as the real API
validates its input file (each line JSON, `custom_id` unique, `method` POST, `url` equal to the
batch's `endpoint`, `body` an object, one model throughout), then runs on the server's clock:
`validating` → `in_progress` (its lines answered as time passes, in file order) → `finalizing`
→ `completed`, after `completion_delay_s`. Each line is answered by the server's own
`/v1/responses` or `/v1/chat/completions` logic (the same stand-in model, outside the online
rate limits and armed faults: a batch has its own quota); a 2xx answer goes in the output file,
any other in the error file, as the API writes them.

What a test sets (`server.batch_knobs`, or the server's methods below): the completion delay, a
status and error body for lines whose `custom_id` holds a substring (`fail_batch_lines`), the next
batch expiring after some of its lines (`expire_next_batch`: the rest go in the error file with
`batch_expired`), and the next batch failing validation (`fail_next_batch`). `server.batches`
holds every batch made; `server.stats` counts the requests as for the rest of the server.
The server's own code: nothing of the client's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from refinery.testing.batch_lines import MAX_BYTES, MAX_REQUESTS, problem, validate_lines
from refinery.testing.chat_api import answer_chat
from refinery.testing.store_api import _ApiError, _error, _File

if TYPE_CHECKING:
    from refinery.testing.server import OpenAITestServer

__all__ = ["BatchKnobs", "LineError", "ServerBatch", "mount_batches"]

WINDOW_S = 86_400  # `completion_window: "24h"`, the only window the API takes
ENDPOINTS = ("/v1/responses", "/v1/chat/completions")  # what this server answers of the spec's list
EXPIRED = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}
CANCELLED = {"code": "batch_cancelled", "message": "This request was not executed because the batch was cancelled."}


@dataclass
class LineError:
    """Lines whose `custom_id` holds `match` are answered `status` with `body` (the API's error
    object by default), `times` times in all (None: always)."""

    match: str
    status: int = 500
    body: dict[str, Any] | None = None
    times: int | None = 1

    def error_body(self) -> dict[str, Any]:
        if self.body is not None:
            return self.body
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        message = "The server had an error while processing your request." if self.status >= 500 else "Invalid request."
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}


@dataclass
class BatchKnobs:
    """What a test sets on the server's batches (`server.batch_knobs`)."""

    completion_delay_s: float = 0.0  # from in_progress to every line answered (lines answered evenly meanwhile)
    finalizing_s: float = 0.0  # how long a batch stays `finalizing` once its lines are answered
    line_errors: list[LineError] = field(default_factory=list)
    expire_next: list[int] = field(default_factory=list)  # each batch made takes one: lines answered, then expired
    fail_next: list[dict[str, Any]] = field(default_factory=list)  # each batch made takes one: its validation error
    max_requests: int = MAX_REQUESTS
    max_bytes: int = MAX_BYTES

    def fail_lines(
        self, match: str, status: int = 500, body: dict[str, Any] | None = None, *, times: int | None = 1
    ) -> LineError:
        """Lines whose `custom_id` holds `match` answered `status` (`times` in all; None: always)."""
        knob = LineError(match, status, body, times)
        self.line_errors.append(knob)
        return knob

    def expire_next_batch(self, finished: int = 0) -> None:
        """The next batch made expires when its time comes, `finished` of its lines answered."""
        self.expire_next.append(finished)

    def fail_next_batch(self, code: str = "invalid_json_line", message: str = "Forced failure.", line: int = 1) -> None:
        """The next batch made fails validation with this error (whatever its lines)."""
        self.fail_next.append({"code": code, "message": message, "line": line})


@dataclass
class ServerBatch:
    id: str
    endpoint: str
    input_file_id: str
    metadata: dict[str, str] | None
    created_at: int  # Unix seconds
    started: float  # the server's clock when made
    lines: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # validation errors
    status: str = "validating"
    stamps: dict[str, int] = field(default_factory=dict)  # in_progress_at, completed_at, … (Unix seconds)
    clock_at: dict[str, float] = field(default_factory=dict)  # the same moments on the server's clock
    expire_after: int | None = None  # lines answered before it expires (a knob)
    results: list[tuple[bool, dict[str, Any]]] = field(default_factory=list)  # (went well, output line)
    output_file_id: str | None = None
    error_file_id: str | None = None
    cancel_asked: bool = False


def _usage(outputs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The batch's tokens: the sum of its answered lines' usage (Responses' or Chat Completions' names)."""
    tin = tout = cached = reasoning = 0
    for out in outputs:
        usage = ((out.get("response") or {}).get("body") or {}).get("usage") or {}
        tin += int(usage.get("input_tokens", usage.get("prompt_tokens", 0)))
        tout += int(usage.get("output_tokens", usage.get("completion_tokens", 0)))
        details_in = usage.get("input_tokens_details") or usage.get("prompt_tokens_details") or {}
        details_out = usage.get("output_tokens_details") or usage.get("completion_tokens_details") or {}
        cached += int(details_in.get("cached_tokens", 0))
        reasoning += int(details_out.get("reasoning_tokens", 0))
    return {
        "input_tokens": tin,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": tout,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": tin + tout,
    }


class BatchesAPI:
    """The `/v1/batches` handlers and the batches' life; `OpenAITestServer` holds the state."""

    def __init__(self, server: OpenAITestServer) -> None:
        self.server = server

    # --- life on the clock ------------------------------------------------------------------------
    def _stamp(self, b: ServerBatch, name: str, at: float) -> None:
        b.clock_at[name] = at
        b.stamps[name] = b.created_at + int(at - b.started)

    async def advance(self, b: ServerBatch) -> None:
        """Bring a batch to where the server's clock says it is; lines due are answered now."""
        s, knobs = self.server, self.server.batch_knobs
        now = s.clock()
        if b.status == "validating":
            if b.errors:
                b.status = "failed"
                self._stamp(b, "failed_at", now)
                return
            b.status = "in_progress"
            self._stamp(b, "in_progress_at", now)
        if b.status == "cancelling":  # what was answered stays; nothing more is
            self._close(b, "cancelled", now, CANCELLED)
        if b.status == "in_progress":
            elapsed = now - b.clock_at["in_progress_at"]
            delay = knobs.completion_delay_s
            due = len(b.lines) if elapsed >= delay else math.floor(len(b.lines) * elapsed / delay)
            # a knob's expiry comes when the batch would have completed; a real one after the window
            # (Azure's Global Batch lets a late batch run on until cancelled)
            window = delay > WINDOW_S and elapsed >= WINDOW_S and not s.azure
            expires = (b.expire_after is not None and elapsed >= delay) or window
            if b.expire_after is not None and expires:
                due = min(due, b.expire_after)
            await self._answer(b, due)
            if expires:
                self._close(b, "expired", now, EXPIRED)
            elif len(b.results) == len(b.lines):
                b.status = "finalizing"
                self._stamp(b, "finalizing_at", now)
        if b.status == "finalizing" and now - b.clock_at["finalizing_at"] >= knobs.finalizing_s:
            self._close(b, "completed", now, None)

    async def _answer(self, b: ServerBatch, due: int) -> None:
        while len(b.results) < due:
            line = b.lines[len(b.results)]
            status, body, request_id = await self._one(b.endpoint, line)
            s = self.server
            s.stats["batch lines"] += 1
            out = {
                "id": s._new_id("batch_req_"),
                "custom_id": line["custom_id"],
                "response": {"status_code": status, "request_id": request_id, "body": body},
                "error": None,
            }
            b.results.append((200 <= status < 300, out))

    async def _one(self, endpoint: str, line: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        s = self.server
        request_id = s._new_id("req_")
        for knob in s.batch_knobs.line_errors:
            if knob.match in line["custom_id"] and (knob.times is None or knob.times > 0):
                if knob.times is not None:
                    knob.times -= 1
                s.stats["batch line errors"] += 1
                return knob.status, knob.error_body(), request_id
        raw = json.dumps(line["body"]).encode()
        answer = await (s.answer_response(raw) if endpoint == "/v1/responses" else answer_chat(s, raw, online=False))
        assert isinstance(answer, web.Response) and answer.body is not None
        body = json.loads(bytes(answer.body))  # type: ignore[arg-type]
        return answer.status, body, answer.headers.get("x-request-id", request_id)

    def _close(self, b: ServerBatch, status: str, now: float, unfinished: dict[str, Any] | None) -> None:
        """The batch ends `status`: its output and error files written; lines never answered go in
        the error file with `unfinished` as their error."""
        s = self.server
        done = {out["custom_id"] for _, out in b.results}
        errors = [out for ok, out in b.results if not ok]
        if unfinished is not None:
            errors += [
                {"id": s._new_id("batch_req_"), "custom_id": line["custom_id"], "response": None, "error": unfinished}
                for line in b.lines
                if line["custom_id"] not in done
            ]
        b.output_file_id = self._write(b, "output", [out for ok, out in b.results if ok])
        b.error_file_id = self._write(b, "error", errors)
        b.status = status
        self._stamp(b, f"{status}_at", now)

    def _write(self, b: ServerBatch, kind: str, lines: list[dict[str, Any]]) -> str | None:
        if not lines:
            return None
        s = self.server
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        f = _File(s._new_id("file-"), f"{b.id}_{kind}.jsonl", data, "batch_output", s._now())
        s.files[f.id] = f
        return f.id

    # --- the API's objects --------------------------------------------------------------------------
    def batch_obj(self, b: ServerBatch) -> dict[str, Any]:
        failed = sum(1 for ok, _ in b.results if not ok)
        if b.status in ("expired", "cancelled"):
            failed = len(b.lines) - sum(1 for ok, _ in b.results if ok)
        obj: dict[str, Any] = {
            "id": b.id,
            "object": "batch",
            "endpoint": b.endpoint,
            "errors": {"object": "list", "data": b.errors} if b.status == "failed" else None,
            "input_file_id": b.input_file_id,
            "completion_window": "24h",
            "status": b.status,
            "output_file_id": b.output_file_id,
            "error_file_id": b.error_file_id,
            "created_at": b.created_at,
            "expires_at": b.created_at + WINDOW_S,
            "request_counts": {
                "total": len(b.lines),
                "completed": sum(1 for ok, _ in b.results if ok),
                "failed": failed,
            },
            "metadata": b.metadata,
            "usage": _usage(out for _, out in b.results),
        }
        if b.lines and isinstance(b.lines[0]["body"].get("model"), str):
            obj["model"] = b.lines[0]["body"]["model"]
        for name in ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at"):
            obj[name] = b.stamps.get(name)
        obj["cancelling_at"], obj["cancelled_at"] = b.stamps.get("cancelling_at"), b.stamps.get("cancelled_at")
        return obj

    def _batch(self, batch_id: str) -> ServerBatch:
        b = self.server.batches.get(batch_id)
        if b is None:
            raise _ApiError(_error(404, f"No batch found with id '{batch_id}'.", "invalid_request_error", param="id"))
        return b

    # --- handlers -----------------------------------------------------------------------------------
    async def create(self, request: web.Request) -> web.Response:
        s = self.server
        body = await s._json(request)
        refused = self._refusal(body)
        if refused is not None:
            return refused
        f = s.files[body["input_file_id"]]
        b = ServerBatch(
            s._new_id("batch_"),
            body["endpoint"],
            f.id,
            dict(body["metadata"]) if body.get("metadata") else None,
            s._now(),
            s.clock(),
        )
        knobs = s.batch_knobs
        b.lines, b.errors = validate_lines(f.data, b.endpoint, knobs.max_requests, knobs.max_bytes)
        if knobs.fail_next:
            b.errors = [problem(**{"line": None, "param": None, **knobs.fail_next.pop(0)})]
        if knobs.expire_next:
            b.expire_after = knobs.expire_next.pop(0)
        s.batches[b.id] = b
        return web.json_response(self.batch_obj(b))

    def _refusal(self, body: Any) -> web.Response | None:
        """What `POST /batches` refuses at once (400/404), before any batch exists."""
        s = self.server
        if not isinstance(body, dict):
            return _error(400, "Invalid body: expected an object.", "invalid_request_error")
        if s.spec is not None:
            unknown = sorted(set(body) - s.spec.declared("CreateBatchRequest"))
            if unknown:
                return _error(
                    400,
                    f"Unknown parameter: '{unknown[0]}'.",
                    "invalid_request_error",
                    param=unknown[0],
                    code="unknown_parameter",
                )
            problems = s.spec.validate(body, "CreateBatchRequest")
            if problems:
                return _error(400, f"Invalid request: {problems[0]}", "invalid_request_error", code="invalid_value")
        for key in ("input_file_id", "endpoint", "completion_window"):
            if key not in body:
                return _error(400, f"Missing required parameter: '{key}'.", "invalid_request_error", param=key)
        if body["completion_window"] != "24h":
            return _error(
                400,
                "Invalid 'completion_window': only '24h' is supported.",
                "invalid_request_error",
                param="completion_window",
            )
        if body["endpoint"] not in ENDPOINTS:
            return _error(
                400,
                f"Invalid 'endpoint': this server batches {', '.join(ENDPOINTS)}.",
                "invalid_request_error",
                param="endpoint",
            )
        f = s.files.get(str(body["input_file_id"]))
        if f is None:
            return _error(404, f"No such File object: {body['input_file_id']}", "invalid_request_error", param="id")
        if f.purpose != "batch":
            return _error(
                400,
                f"File {f.id} has purpose {f.purpose!r}; a batch's input file must have purpose 'batch'.",
                "invalid_request_error",
                param="input_file_id",
            )
        return None

    async def retrieve(self, request: web.Request) -> web.Response:
        b = self._batch(request.match_info["batch_id"])
        await self.advance(b)
        return web.json_response(self.batch_obj(b))

    async def cancel(self, request: web.Request) -> web.Response:
        s = self.server
        b = self._batch(request.match_info["batch_id"])
        await self.advance(b)
        if b.status not in ("validating", "in_progress", "finalizing", "cancelling"):
            return _error(
                409 if b.status == "cancelled" else 400,
                f"Cannot cancel a batch with status '{b.status}'.",
                "invalid_request_error",
            )
        if b.status != "cancelling":
            b.status = "cancelling"
            self._stamp(b, "cancelling_at", s.clock())
        return web.json_response(self.batch_obj(b))

    async def list(self, request: web.Request) -> web.Response:
        """`GET /batches`: newest first, paged by `after` and `limit` (1-100, default 20)."""
        s, q = self.server, request.query
        limit_text = q.get("limit", "20")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
            return _error(
                400, "Invalid 'limit': expected an integer from 1 to 100.", "invalid_request_error", param="limit"
            )
        batches = sorted(s.batches.values(), key=lambda b: (b.created_at, b.id), reverse=True)
        if q.get("after"):
            ids = [b.id for b in batches]
            batches = batches[ids.index(q["after"]) + 1 :] if q["after"] in ids else []
        page = batches[: int(limit_text)]
        for b in page:
            await self.advance(b)
        data = [self.batch_obj(b) for b in page]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": len(batches) > len(page),
            }
        )

    async def admin_knobs(self, request: web.Request) -> web.Response:
        """`POST /_refinery/batch_knobs` (the server run as a process): set the knobs from JSON —
        `completion_delay_s`, `finalizing_s`, `max_requests`, `max_bytes`, and lists for `fail_lines`
        (`fail_lines`' arguments), `expire_next_batch` (`finished` counts), `fail_next_batch` (errors);
        answers the knobs as they now are."""
        body = await self.server._json(request)
        if not isinstance(body, dict):
            return _error(400, "Invalid body: expected an object.", "invalid_request_error")
        knobs = self.server.batch_knobs
        for name in ("completion_delay_s", "finalizing_s", "max_requests", "max_bytes"):
            if name in body:
                setattr(knobs, name, body[name])
        for item in body.get("fail_lines") or []:
            knobs.fail_lines(**item)
        for finished in body.get("expire_next_batch") or []:
            knobs.expire_next_batch(int(finished))
        for item in body.get("fail_next_batch") or []:
            knobs.fail_next_batch(**item)
        return web.json_response(asdict(knobs))


def mount_batches(server: OpenAITestServer, router: web.UrlDispatcher, prefix: str) -> BatchesAPI:
    """Add `/batches` (create, list), `/batches/{id}` and `/batches/{id}/cancel` under `prefix`."""
    api = BatchesAPI(server)
    router.add_post(f"{prefix}/batches", api.create)
    router.add_get(f"{prefix}/batches", api.list)
    router.add_get(f"{prefix}/batches/{{batch_id}}", api.retrieve)
    router.add_post(f"{prefix}/batches/{{batch_id}}/cancel", api.cancel)
    router.add_post("/_refinery/batch_knobs", api.admin_knobs)
    return api
