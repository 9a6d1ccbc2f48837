"""What every analyst shares: a lazily built client, progress events, redaction of what is sent.

Both analysts are built the way hosts build them (`model=…, seed=…, progress_callback=…`) and
may be constructed where no key exists yet (at import time, in a test); the client is made from
the environment only when the first request needs it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

from refinery.core.interfaces import FailureAnalyst
from refinery.core.models import DomainExpertExpectation, Trace
from refinery.traces.redact import RedactionReport, redact_text
from refinery.wire.responses_client import ResponsesClient
from refinery.wire.structured_model import StructuredModel

ProgressCallback = Callable[[str, str, dict[str, Any]], Any]
Emit = Callable[..., Awaitable[None]]  # `await emit(stage, status, **info)`


class AnalystBase(FailureAnalyst):
    def __init__(
        self,
        model: str,
        seed: int | None,
        progress_callback: ProgressCallback | None,
        client: ResponsesClient | StructuredModel | None,
        redact: bool,
    ) -> None:
        self.model = model
        self.seed = seed  # recorded in metadata, never sent: the Responses API takes no seed
        self.progress_callback = progress_callback
        self._client = client
        self._owns_client = client is None
        self.redact = redact
        self.redact_patterns: tuple[re.Pattern[str], ...] = ()  # an organisation's own shapes, compiled
        self.api = "responses"  # the wire of a client built here (`StagedFailureAnalyst(api=…)`)

    def sent_id(self, trace_id: str) -> str:
        """A trace id as this analyst sends and writes it: it names the uploaded files, the store
        and every artifact, so with redaction on a secret inside it is redacted (the rest stays)."""
        return redact_text(trace_id, RedactionReport(), self.redact_patterns) if self.redact else trace_id

    def sent_trace(self, trace: Trace) -> Trace:
        """The trace with its id as sent (`sent_id`); the same object when nothing changes."""
        tid = self.sent_id(trace.trace_id)
        return trace if tid == trace.trace_id else trace.model_copy(update={"trace_id": tid})

    @property
    def client(self) -> ResponsesClient | StructuredModel:
        """What executes the requests: a `ResponsesClient` (built from the environment when none
        was given), or any `StructuredModel` (a `FunctionModel` in tests)."""
        if self._client is None:
            self._client = ResponsesClient(api=self.api)
        return self._client

    @property
    def wire(self) -> str | None:
        """The wire requests go by, `responses` or `chat`, once known: `api` when it names one,
        else what the client found on its first call (None before it, or for a model with none).
        Never builds a client."""
        if self._client is None:
            return None if self.api == "auto" else self.api
        wire = getattr(self._client, "wire", None)
        return wire if isinstance(wire, str) else None

    async def __aenter__(self) -> "AnalystBase":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client this analyst built (a client passed in is the caller's)."""
        if self._owns_client and self._client is not None:
            await self._client.close()

    async def _emit(self, stage: str, status: str, **info: Any) -> None:
        """Tell the progress callback (sync or async) that a stage started or ended."""
        await _tell(self.progress_callback, stage, status, info)

    def _emitter(self, progress: ProgressCallback | None) -> Emit:
        """One analysis's `emit`: the analyst's progress callback, then the analysis's own."""
        if progress is None:
            return self._emit

        async def emit(stage: str, status: str, **info: Any) -> None:
            await _tell(self.progress_callback, stage, status, info)
            await _tell(progress, stage, status, info)

        return emit

    def expectation_text(self, expectation: DomainExpertExpectation, report: RedactionReport) -> str:
        """The expectation as it may be sent: redacted unless redaction is off (counted in `report`,
        the analysis's own)."""
        text = expectation.as_text()
        return redact_text(text, report, self.redact_patterns) if self.redact else text


async def _tell(callback: ProgressCallback | None, stage: str, status: str, info: dict[str, Any]) -> None:
    if callback is None:
        return
    result = callback(stage, status, info)
    if inspect.isawaitable(result):
        await result
