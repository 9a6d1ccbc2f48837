"""pytest fixtures for tests that talk to `refinery.testing`'s local OpenAI server.

Enable with `pytest_plugins = ["refinery.testing.pytest_plugin"]` in a `conftest.py`.

- `openai_server`: a started `OpenAITestServer` on 127.0.0.1 (random port), stopped after the test;
- `openai_env`: the same, with `OPENAI_API_KEY` / `OPENAI_BASE_URL` pointing at it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from refinery.testing.server import OpenAITestServer


@pytest_asyncio.fixture
async def openai_server() -> AsyncIterator[OpenAITestServer]:
    server = OpenAITestServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def openai_env(
    openai_server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[OpenAITestServer]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-refinery-test")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.delenv("OPENAI_PROJECT", raising=False)
    monkeypatch.delenv("OPENAI_ORG_ID", raising=False)
    yield openai_server
