"""Helpers the tests share: the fake clock, recorded requests, Responses-shaped replies."""

from __future__ import annotations

import asyncio
import heapq
import html.parser
import json
from pathlib import Path
from typing import Any

import aioresponses

from refinery.testing.openapi_spec import find_shared

BASE = "https://api.test/v1"
# `$REFINERY_SHARED`, else ../shared beside the repository: the rule find_spec uses too
SHARED = find_shared(Path(__file__)) or Path(__file__).resolve().parents[1].parent / "shared"


class FakeClock:
    """A monotonic clock that only moves when `sleep` is awaited; records every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would


def sent(m: aioresponses.aioresponses, method: str = "POST", url: str | None = None) -> list[Any]:
    """The requests aioresponses recorded for (method, url), in order."""
    out = []
    for (meth, u), calls in m.requests.items():
        if meth == method and (url is None or str(u) == url):
            out.extend(calls)
    return out


def json_sent(kwargs: dict[str, Any]) -> Any:
    """The JSON body a recorded request carried: aiohttp's `json=`, or the bytes of a big body
    serialised in refinery's worker (`wire.json_body`)."""
    if kwargs.get("json") is not None:
        return kwargs["json"]
    data = kwargs.get("data")
    return json.loads(data) if isinstance(data, (bytes, bytearray)) else None


def response_json(text: str, *, status: str = "completed", extra_items: list[dict] | None = None, **kw: Any) -> dict:
    """A Responses API object whose answer is `text`, shaped like the real one."""
    output = list(extra_items or [])
    output.append(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    )
    body = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": "gpt-4o-2024-08-06",
        "output": output,
        "usage": {
            "input_tokens": 100,
            "input_tokens_details": {"cached_tokens": 10},
            "output_tokens": 20,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 120,
        },
    }
    body.update(kw)
    return body


class PageDom(html.parser.HTMLParser):
    """What a page's links need: elements by id, in-page link targets, marked elements, scripts."""

    def __init__(self, page: str = "") -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str]] = {}
        self.links: list[str] = []
        self.decisive: list[dict[str, str]] = []
        self.scripts = 0
        if page:
            self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "script":
            self.scripts += 1
        if "id" in a:
            self.by_id[a["id"]] = a
        if a.get("href", "").startswith("#"):
            self.links.append(a["href"][1:])
        if "decisive" in a.get("class", "").split():
            self.decisive.append(a)


def plain_md(text: str) -> str:
    """A Markdown report as read: without the isolates around trace and model strings, brackets unescaped."""
    return text.replace("\u2068", "").replace("\u2069", "").replace("\\[", "[").replace("\\]", "]")


class SimClock:
    """Virtual time for several tasks at once: `sleep` waits until the clock reaches its wake-up
    time, and `run` moves the clock from one wake-up to the next once every task is waiting.
    (FakeClock adds each sleep to the time, as if the tasks took turns; this one lets them overlap,
    as they do on a real clock.)"""

    def __init__(self) -> None:
        self.now = 1000.0
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._waiting, (self.now + max(0.0, seconds), self._seq, future))
        await future

    async def run(self, *tasks: Any) -> list[Any]:
        """Run the coroutines to the end on this clock; their results."""
        running = [asyncio.ensure_future(t) for t in tasks]
        while not all(t.done() for t in running):
            for _ in range(64):  # let every task run until it waits on the clock (no other waits here)
                await asyncio.sleep(0)
            if self._waiting:
                self.now, _, future = heapq.heappop(self._waiting)
                future.set_result(None)
            elif not all(t.done() for t in running):
                raise RuntimeError("a task waits on something other than the clock")
        return [t.result() for t in running]
