"""A local OpenAI-compatible server for end-to-end tests, fault injection and benchmarks.

Like moto for AWS: it implements the part of the API refinery uses — files, vector stores with
file batches and indexing that takes time, and `POST /v1/responses` with `file_search` — in the
shapes of OpenAI's published spec, on 127.0.0.1. Request bodies are validated against the spec's
`CreateResponse` schema (when the spec is found, see `refinery.testing.openapi_spec`) and a
wrong body gets the API's 400 error, so it fails a test the way it would fail in production.

`file_search` is real lexical retrieval (BM25 over chunks, attribute `filters` honoured); the
answer comes from a deterministic stand-in model (`StandInModel`) that emits JSON valid against
the requested strict schema, filled from the retrieved text. It is a test double: it does not
analyse anything.

Run it alone with `python -m refinery.testing.server [--port N]`: the first line on stdout is
the base URL (`http://127.0.0.1:PORT/v1`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web

from refinery.testing.batch_api import BatchKnobs, ServerBatch, mount_batches
from refinery.testing.chat_api import create_chat_completion
from refinery.testing.faults import Fault, RateLimiter, around, drop_mid_body, transport_fault
from refinery.testing.function_tools import responses_search_call
from refinery.testing.openapi_spec import OpenAPISpec, find_spec
from refinery.testing.request_text import admission_cost, request_texts
from refinery.testing.retrieval import Chunk, count_tokens, token_starts
from refinery.testing.standin_model import StandInModel, reasons
from refinery.testing.store_api import (
    DEFAULT_MAX_NUM_RESULTS,
    MAX_BATCH_FILES,
    FilesAndStores,
    _ApiError,
    _error,
    _File,
    _Store,
)
from refinery.testing.strict_rules import strict_violations

log = logging.getLogger("refinery.testing.server")
# The stand-in searches with the start of its prompt (the task and its retrieval protocol), as a
# model writes a short query: not with trace text pasted further down (a Stage 1 reading inline).
SEARCH_QUERY_CHARS = 1000
LOWEST_LEFT = "lowest TPM left at admission"  # in `stats`: the fewest tokens an admission left in the bucket
__all__ = ["DEFAULT_MAX_NUM_RESULTS", "MAX_BATCH_FILES", "OpenAITestServer", "main"]


class OpenAITestServer(FilesAndStores):
    """The server. Configure it at construction; arm faults with `inject`; read `stats`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        spec_path: str | Path | None = None,
        validate_requests: bool = True,
        indexing_delay_s: float = 0.0,
        fail_indexing: Iterable[str] = (),
        rpm: int | None = None,
        tpm: int | None = None,
        latency_s: float = 0.0,
        upload_latency_s: float = 0.0,
        model: StandInModel | None = None,
        clock: Callable[[], float] = time.monotonic,
        reasoning_tokens: int = 0,
        azure: bool = False,
        hosted_store: bool = True,
        responses_api: bool = True,
        chat_api: bool = True,
        strict: bool = True,
        batch_api: bool = True,
        batch_delay_s: float = 0.0,
    ) -> None:
        self.host, self.port = host, port
        # what the server serves, to play vLLM, Ollama & co. (`chat_api`): no Files, Vector Stores
        # or `file_search` (`hosted_store=False`: 404 as vLLM answers, `file_search` refused), no
        # `/responses`, no `/chat/completions`, a schema taken but not held to (`strict=False`)
        self.hosted_store, self.responses_api, self.chat_api, self.strict = (
            hosted_store,
            responses_api,
            chat_api,
            strict,
        )
        self.chat_bodies: list[dict[str, Any]] = []
        self.api_key = api_key
        # Azure OpenAI's v1 API: the same operations under /openai/v1, the key in an `api-key` header
        # (or a Microsoft Entra token as a bearer token)
        self.azure = azure
        self.prefix = "/openai/v1" if azure else "/v1"
        self.indexing_delay_s = indexing_delay_s
        self.fail_indexing = set(fail_indexing)
        self.latency_s = latency_s
        self.upload_latency_s = upload_latency_s
        self.reasoning_tokens = reasoning_tokens  # what a reasoning model thinks with, before its answer
        self.model = model or StandInModel()
        self.clock = clock
        self.limiter = RateLimiter(rpm, tpm, clock)
        self.faults: list[Fault] = []
        self.stats: Counter[str] = Counter()
        self.response_bodies: list[dict[str, Any]] = []
        self.responses: list[
            dict[str, Any]
        ] = []  # what /responses answered, in order (benchmarks read the chunks returned)
        self.files: dict[str, _File] = {}
        self.stores: dict[str, _Store] = {}
        # the Batch API (`refinery.testing.batch_api`): every batch made, and what a test sets on them
        self.batch_api = batch_api
        self.batches: dict[str, ServerBatch] = {}
        self.batch_knobs = BatchKnobs(completion_delay_s=batch_delay_s)
        self._ids = itertools.count(1)
        path = Path(spec_path) if spec_path else (find_spec() if validate_requests else None)
        self.spec: OpenAPISpec | None = OpenAPISpec(path) if path and validate_requests else None
        if validate_requests and self.spec is None:
            log.warning("OpenAI spec not found: request bodies are checked for strict schemas only")
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}{self.prefix}"

    @property
    def azure_endpoint(self) -> str:
        """What `AZURE_OPENAI_ENDPOINT` names: the resource, without the API path."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> "OpenAITestServer":
        spec = self.spec
        if spec is not None:
            await asyncio.get_running_loop().run_in_executor(None, lambda: spec.document)  # load once, off the loop
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "OpenAITestServer":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def inject(self, fault: Fault) -> Fault:
        """Arm a fault; it hits the next `fault.times` matching requests."""
        self.faults.append(fault)
        return fault

    def set_limits(self, rpm: int | None = None, tpm: int | None = None) -> None:
        self.limiter = RateLimiter(rpm, tpm, self.clock)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def _now(self) -> int:
        return int(time.time())

    # --- plumbing -------------------------------------------------------------------------
    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=512 * 1024 * 1024, middlewares=[self._middleware])
        r, v1 = app.router, self.prefix
        if self.responses_api:
            r.add_post(f"{v1}/responses", self.create_response)
        if self.chat_api:
            r.add_post(f"{v1}/chat/completions", self.create_chat_completion)
        r.add_post("/_refinery/faults", self.admin_faults)
        r.add_get("/_refinery/stats", self.admin_stats)
        if not self.hosted_store:
            return app
        r.add_post(f"{v1}/files", self.create_file)
        r.add_get(f"{v1}/files", self.list_files)
        r.add_get(f"{v1}/files/{{file_id}}", self.get_file)
        r.add_get(f"{v1}/files/{{file_id}}/content", self.file_content)
        r.add_delete(f"{v1}/files/{{file_id}}", self.delete_file)
        if self.batch_api:
            mount_batches(self, r, v1)
        r.add_post(f"{v1}/vector_stores", self.create_store)
        r.add_get(f"{v1}/vector_stores", self.list_stores)
        r.add_get(f"{v1}/vector_stores/{{store_id}}", self.get_store)
        r.add_delete(f"{v1}/vector_stores/{{store_id}}", self.delete_store)
        r.add_get(f"{v1}/vector_stores/{{store_id}}/files", self.list_store_files)
        r.add_post(f"{v1}/vector_stores/{{store_id}}/file_batches", self.create_batch)
        r.add_post(f"{v1}/vector_stores/{{store_id}}/search", self.search_store)
        r.add_get(f"{v1}/vector_stores/{{store_id}}/file_batches/{{batch_id}}", self.get_batch)
        r.add_get(f"{v1}/vector_stores/{{store_id}}/file_batches/{{batch_id}}/files", self.list_batch_files)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        self.stats[
            f"{request.method} "
            f"{request.match_info.route.resource.canonical if request.match_info.route.resource else request.path}"
        ] += 1
        if not request.path.startswith("/_refinery/"):
            auth = request.headers.get("Authorization", "")
            key = request.headers.get("api-key") if self.azure else None  # Azure: the key's own header
            given = key if key is not None else auth[7:] if auth.startswith("Bearer ") else ""
            self.stats["auth api-key" if key is not None else "auth bearer"] += 1
            if not given.strip():
                return _error(401, "You didn't provide an API key.", "invalid_request_error", code=None)
            if self.api_key is not None and given != self.api_key:
                return _error(401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key")
        fault = self._take_fault(f"{request.method} {request.path}", "")  # a fault armed on any request
        if fault is not None:
            return await around(fault, request, lambda: self._answer(request, handler), self._transport_fault)
        return await self._answer(request, handler)

    async def _answer(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except _ApiError as exc:
            return exc.response

    async def _json(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            raise _ApiError(
                _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
            ) from None

    async def opened(
        self, path: str, raw: bytes, *, online: bool
    ) -> tuple[Any, Fault | None, web.StreamResponse | None]:
        """A model call's first steps, alike on every endpoint: a fault armed for `path` is taken
        (online only: a batch's lines have knobs of their own) and, if it acts on the exchange, acts;
        then the body is parsed. `(body, fault, None)` — the fault's content kind is the caller's to
        play — or `(None, None, the answer to give instead)`."""
        fault = self._take_fault(path, raw.decode("utf-8", "replace")) if online else None
        early = await self._transport_fault(fault)
        if early is not None:
            return None, None, early
        try:
            return json.loads(raw), fault, None
        except ValueError:
            return None, None, _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")

    def _take_fault(self, path: str, body_text: str) -> Fault | None:
        for fault in self.faults:
            if fault.applies(path, body_text):
                fault.times -= 1
                self.stats[f"fault {fault.kind}"] += 1
                return fault
        return None

    async def _transport_fault(self, fault: Fault | None) -> web.StreamResponse | None:
        """Faults that act on the exchange rather than the content."""
        return await transport_fault(fault, self.limiter)

    # --- responses ------------------------------------------------------------------------
    def _validate(self, body: Any) -> web.Response | None:
        if not isinstance(body, dict):
            return _error(400, "Invalid body: expected an object.", "invalid_request_error")
        if self.spec is not None:
            problems = self.spec.validate(body)
            if problems:
                first = problems[0]
                where, _, what = first.partition(": ")
                if "unknown parameter" in what:
                    name = what.split("[")[-1].strip("]'\" ")
                    return _error(
                        400,
                        f"Unknown parameter: '{where + '.' if where != '(root)' else ''}{name}'.",
                        "invalid_request_error",
                        param=name,
                        code="unknown_parameter",
                    )
                return _error(
                    400,
                    f"Invalid value at '{where}': {what}",
                    "invalid_request_error",
                    param=where.replace("/", "."),
                    code="invalid_value",
                )
        fmt = (body.get("text") or {}).get("format") or {}
        if fmt.get("type") == "json_schema" and fmt.get("strict"):
            problems = strict_violations(fmt.get("schema"))
            if problems:
                return _error(
                    400,
                    f"Invalid schema for response_format '{fmt.get('name')}': {problems[0]}",
                    "invalid_request_error",
                    param="text.format.schema",
                    code="invalid_json_schema",
                )
        if "model" not in body:
            return _error(400, "Missing required parameter: 'model'.", "invalid_request_error", param="model")
        if not self.hosted_store and any(t.get("type") == "file_search" for t in body.get("tools") or []):
            return _error(400, "file_search is not supported by this server", "invalid_request_error", param="tools")
        thinks = reasons(str(body["model"]))
        for param, bad in (("temperature", thinks), ("reasoning.effort", not thinks)):
            head, _, rest = param.partition(".")
            if bad and head in body and (not rest or rest in (body.get(head) or {})):
                return _error(
                    400,
                    f"Unsupported parameter: '{param}' is not supported with this model.",
                    "invalid_request_error",
                    param=param,
                    code="unsupported_parameter",
                )
        return None

    async def create_response(self, request: web.Request) -> web.StreamResponse:
        return await self.answer_response(await request.read(), request)

    async def answer_response(self, raw: bytes, request: web.Request | None = None) -> web.StreamResponse:
        """`POST /responses` on the body `raw`. Without a `request` it is a batch's line: answered by
        the same logic, outside the online rate limits, latency and armed faults (a batch has its own
        quota, and its own knobs: `refinery.testing.batch_api`)."""
        online = request is not None
        body, fault, answer = await self.opened("/v1/responses", raw, online=online)
        if answer is not None:
            return answer
        invalid = self._validate(body)
        if invalid is not None:
            self.stats["400 invalid body"] += 1
            return invalid
        self.response_bodies.append(body)
        system, user = request_texts(body)
        cost = admission_cost(body)
        max_out = body.get("max_output_tokens")
        admitted, rl_headers, rl_body = self.limiter.admit(cost, str(body.get("model"))) if online else (True, {}, {})
        if not admitted:
            self.stats["429 rate_limit_exceeded"] += 1
            self.stats["429 request too large"] += int(
                bool(self.limiter.tpm and cost > self.limiter.tpm)
            )  # never admissible
            return web.json_response(rl_body, status=429, headers=rl_headers)
        if self.limiter.tokens and online:  # how near this admission came to a 429: the bucket's level after it
            left = int(self.limiter.tokens.level)
            self.stats[LOWEST_LEFT] = min(self.stats.get(LOWEST_LEFT, left), left)
        if self.latency_s and online:
            await asyncio.sleep(self.latency_s)
        called = responses_search_call(self, body)  # a request offering search_trace: the stand-in searches first
        if called is not None:
            return web.json_response(called)

        output: list[dict[str, Any]] = []
        retrieved: list[tuple[Chunk, float]] = []
        include = set(body.get("include") or [])
        for tool in body.get("tools") or []:
            if tool.get("type") != "file_search":
                continue
            hits = self._search(tool, user[:SEARCH_QUERY_CHARS])
            retrieved.extend(hits)
            output.append(
                {
                    "id": self._new_id("fs_"),
                    "type": "file_search_call",
                    "status": "completed",
                    "queries": [user[:200]],
                    "results": [
                        {
                            "file_id": c.file_id,
                            "filename": c.filename,
                            "score": s,
                            "text": c.text,
                            "attributes": dict(c.attributes),
                        }
                        for c, s in hits
                    ]
                    if "file_search_call.results" in include
                    else None,
                }
            )
        chunks = [c for c, _ in retrieved]
        fmt = (body.get("text") or {}).get("format") or {}
        # a reasoning model thinks first, and its thinking counts against max_output_tokens
        thinking = min(self.reasoning_tokens, int(max_out)) if reasons(str(body["model"])) and max_out else 0
        room = int(max_out) - thinking if max_out else None
        if fmt.get("type") == "json_schema":
            limit = room or 0
            fits = (lambda text: count_tokens(text) <= limit) if limit else None  # noqa: E731
            answer_text = json.dumps(self.model.answer(fmt["schema"], chunks, user, fits=fits), ensure_ascii=False)
        else:
            answer_text = "PONG" if "PONG" in user else StandInModel.disclaimer
        status: str = "completed"
        incomplete: dict[str, str] | None = None
        content: list[dict[str, Any]] | None = None
        kind = fault.kind if fault else None
        if kind == "refusal":
            content = [{"type": "refusal", "refusal": "I'm sorry, I can't help with that request."}]
        elif kind == "not_json":
            answer_text = "Here is the analysis you asked for: the agent failed because of the tool call."
        elif kind == "schema_violation":
            answer_text = json.dumps({"unexpected": "shape", "note": "this JSON breaks the requested schema"})
        out_tokens = count_tokens(answer_text)
        if room == 0:  # the whole budget went to reasoning: no answer at all
            answer_text, out_tokens = "", 0
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        elif kind == "incomplete" or (room is not None and out_tokens > room):
            budget = max(1, min(out_tokens // 2, room or 16))
            starts = token_starts(answer_text)  # cut at a token boundary, as a model stops mid-answer
            answer_text = answer_text[: starts[budget]] if budget < len(starts) else answer_text
            out_tokens = count_tokens(answer_text)
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        if thinking:
            output.append({"id": self._new_id("rs_"), "type": "reasoning", "summary": []})
        if content is None:
            annotations: list[dict[str, Any]] = []
            seen: set[str] = set()
            for c in chunks:
                if c.file_id not in seen:
                    seen.add(c.file_id)
                    annotations.append(
                        {
                            "type": "file_citation",
                            "file_id": c.file_id,
                            "filename": c.filename,
                            "index": len(answer_text),
                        }
                    )
            content = [{"type": "output_text", "text": answer_text, "annotations": annotations, "logprobs": []}]
        if room != 0:  # a model that spent its whole budget thinking answers no message at all
            output.append(
                {
                    "id": self._new_id("msg_"),
                    "type": "message",
                    "role": "assistant",
                    "status": "incomplete" if incomplete else "completed",
                    "content": content,
                }
            )
        in_tokens = count_tokens(system + user) + sum(count_tokens(c.text) for c in chunks)
        now = self._now()
        resp = {
            "id": self._new_id("resp_"),
            "object": "response",
            "created_at": now,
            "status": status,
            "completed_at": now if status == "completed" else None,
            "error": None,
            "incomplete_details": incomplete,
            "instructions": body.get("instructions"),
            "max_output_tokens": max_out,
            "model": f"{body['model']}-standin",
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {
                "effort": (body.get("reasoning") or {}).get("effort", "medium")
                if reasons(str(body["model"]))
                else None,
                "summary": None,
            },
            "store": True,
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": body.get("tools") or [],
            "top_p": 1.0,
            "truncation": "disabled",
            "metadata": {},
            "usage": {
                "input_tokens": in_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": out_tokens + thinking,
                "output_tokens_details": {"reasoning_tokens": thinking},
                "total_tokens": in_tokens + out_tokens + thinking,
            },
        }
        if online:
            self.limiter.charge(in_tokens + out_tokens + thinking, cost)
        self.stats["tokens used"] += in_tokens + out_tokens + thinking
        self.responses.append(resp)
        payload = json.dumps(resp).encode()
        headers = {**self.limiter.headers(), "x-request-id": self._new_id("req_")}
        if kind == "drop_connection" and request is not None:
            return await drop_mid_body(request, payload, headers)
        return web.Response(body=payload, content_type="application/json", headers=headers)

    async def create_chat_completion(self, request: web.Request) -> web.StreamResponse:
        return await create_chat_completion(self, request)

    # --- admin (for the subprocess form) ---------------------------------------------------
    async def admin_faults(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        items = body if isinstance(body, list) else [body]
        for item in items:
            self.inject(Fault(**item))
        return web.json_response({"armed": len(items)})

    async def admin_stats(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.stats))


if __name__ == "__main__":  # `python -m refinery.testing.server`: the command line is `server_cli`
    from refinery.testing.server_cli import main

    sys.exit(main())
