"""Shared fixtures: aiohttp/aioresponses compatibility, a fake clock, the spec, an API factory."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import aiohttp
import aioresponses.core
import pytest

from refinery.testing.openapi_spec import OpenAPISpec, find_shared, find_spec
from refinery.wire.transport import ApiSettings, OpenAITransport, RetryPolicy
from tests.helpers import BASE, FakeClock

pytest_plugins = ["refinery.testing.pytest_plugin"]

# --- ../shared: skipped without it on a developer's machine, required where CI says so -----------
# With REFINERY_REQUIRE_SHARED=1 (.ci/run sets it) a missing shared folder ends the run at once, and
# a test that skips for want of a shared file fails instead: CI never passes green on skips.
REQUIRE_SHARED = os.environ.get("REFINERY_REQUIRE_SHARED") == "1"
SHARED_NEEDED = (
    "openai-spec/openapi.json",
    "trace-samples",
    "eval-data",
    "tools/strict_lint.py",
    "tools/validate_body.py",
    "seed/refactor-plan.md",
)
SHARED_SKIP = ("shared", "spec not found", "eval-data", "trace-samples")


def pytest_sessionstart(session: pytest.Session) -> None:
    if not REQUIRE_SHARED:
        return
    shared = find_shared(Path(__file__))
    missing = [p for p in SHARED_NEEDED if shared is None or not (shared / p).exists()]
    if missing:
        pytest.exit(f"REFINERY_REQUIRE_SHARED=1 and ../shared lacks {', '.join(missing)} (at {shared})", returncode=1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SHARED and report.skipped and any(w in str(report.longrepr) for w in SHARED_SKIP):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped for want of a shared file, which REFINERY_REQUIRE_SHARED=1 requires: {report.longrepr}"
        )


# --- aioresponses on aiohttp >= 3.14 ------------------------------------------------------------
# aiohttp 3.14 (a security release, GHSA-jg22-mg44-37j8) added a required keyword argument
# `stream_writer` to `ClientResponse.__init__`; aioresponses 0.7.9 does not pass it and fails with
# "ClientResponse.__init__() missing 1 required keyword-only argument: 'stream_writer'"
# (pnuckowski/aioresponses#289, fixed upstream but not released). Supply a do-nothing writer only
# when aiohttp's signature asks for one, so this shim disappears by itself once unnecessary.
_NEEDS_STREAM_WRITER = "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters


class _NullStreamWriter:
    """The two attributes `ClientResponse` reads from a stream writer."""

    output_size = 0
    buffer_size = 0


class _CompatClientResponse(aiohttp.ClientResponse):
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _NullStreamWriter())
        super().__init__(method, url, **kwargs)


@pytest.fixture(autouse=True)
def _aioresponses_stream_writer_compat(monkeypatch: pytest.MonkeyPatch) -> None:
    if _NEEDS_STREAM_WRITER:
        monkeypatch.setattr(aioresponses.core, "ClientResponse", _CompatClientResponse)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings() -> ApiSettings:
    return ApiSettings(api_key="sk-test-key", base_url=BASE, project="proj_1", organization="org_1")


@pytest.fixture
def make_transport(settings: ApiSettings, clock: FakeClock):
    def factory(**retry: Any) -> OpenAITransport:
        return OpenAITransport(settings, retry=RetryPolicy(**retry), sleep=clock.sleep, clock=clock, rng=lambda: 0.5)

    return factory


@pytest.fixture
def mocked():
    with aioresponses.aioresponses() as m:
        yield m


@pytest.fixture(scope="session")
def spec() -> OpenAPISpec:
    path = find_spec(Path(__file__))
    if path is None:
        pytest.skip("OpenAI spec not found (../shared/openai-spec/openapi.json)")
    return OpenAPISpec(path)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_PROJECT", "OPENAI_ORG_ID"):
        monkeypatch.delenv(var, raising=False)
