"""What every analyst shares: a lazily built client, progress events, redaction of what is sent.

Both analysts are built the way hosts build them (`model=…, seed=…, progress_callback=…`) and
may be constructed where no key exists yet (at import time, in a test); the client is made from
the environment only when the first request needs it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from refinery.core.interfaces import FailureAnalyst
from refinery.core.models import DomainExpertExpectation, Trace
from refinery.integrations.responses_client import ResponsesClient
from refinery.traces.redact import RedactionReport, redact_text

ProgressCallback = Callable[[str, str, dict[str, Any]], Any]


class AnalystBase(FailureAnalyst):
    def __init__(
        self,
        model: str,
        seed: int | None,
        progress_callback: ProgressCallback | None,
        client: ResponsesClient | None,
        redact: bool,
    ) -> None:
        self.model = model
        self.seed = seed  # recorded in metadata, never sent: the Responses API takes no seed
        self.progress_callback = progress_callback
        self._client = client
        self._owns_client = client is None
        self.redact = redact
        self.redaction = RedactionReport()
        self.redact_patterns: tuple[re.Pattern[str], ...] = ()  # an organisation's own shapes, compiled

    def sent_id(self, trace_id: str) -> str:
        """A trace id as this analyst sends and writes it: it names the uploaded files, the store
        and every artifact, so with redaction on a secret inside it is redacted (the rest stays)."""
        return redact_text(trace_id, RedactionReport(), self.redact_patterns) if self.redact else trace_id

    def sent_trace(self, trace: Trace) -> Trace:
        """The trace with its id as sent (`sent_id`); the same object when nothing changes."""
        tid = self.sent_id(trace.trace_id)
        return trace if tid == trace.trace_id else trace.model_copy(update={"trace_id": tid})

    @property
    def client(self) -> ResponsesClient:
        if self._client is None:
            self._client = ResponsesClient()
        return self._client

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
        if self.progress_callback is None:
            return
        result = self.progress_callback(stage, status, info)
        if inspect.isawaitable(result):
            await result

    def expectation_text(self, expectation: DomainExpertExpectation, report: RedactionReport | None = None) -> str:
        """The expectation as it may be sent: redacted unless redaction is off (counted in `report`,
        an analysis's own, else the analyst's last)."""
        text = expectation.as_text()
        return (
            redact_text(text, report if report is not None else self.redaction, self.redact_patterns)
            if self.redact
            else text
        )
