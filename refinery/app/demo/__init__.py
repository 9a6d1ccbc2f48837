"""`refinery demo`: the whole pipeline on an example trace, with no key and no network.

Why: a newcomer should see refinery work — upload, indexing, four stages, the report — before
spending money or finding a key. The demo starts refinery's own OpenAI-compatible test server
in this process on a free loopback port and points a client at it. The answers come from that
server's stand-in model, a deterministic test double whose heuristic names the run that failed,
quotes its error and names its agent: they show the pipeline and what a diagnosis looks like, not
an analysis, and the demo says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from refinery.analysis.staged_failure_analyst import StagedAnalysisResult, StagedFailureAnalyst
from refinery.app import analyze_into
from refinery.app.inputs import load_expectation
from refinery.testing.openapi_spec import find_spec
from refinery.testing.server import OpenAITestServer
from refinery.traces import load_trace
from refinery.wire.responses_client import ResponsesClient

STAND_IN_NOTICE = (
    "These answers come from refinery's stand-in model, a deterministic test double: no model read the "
    "trace; a simple heuristic named the first run that failed, quoted its error and named its agent. "
    "They show the pipeline working (upload, indexing, four stages, report) and what a diagnosis looks "
    "like; they are not an analysis. For a real one: export OPENAI_API_KEY and run "
    "`refinery run TRACE --expect FILE`."
)
DEMO_KEY = "sk-refinery-demo-local"  # accepted by the local server only; never a real key


def example_paths() -> tuple[Path, Path]:
    """The example trace and expectation shipped in the package."""
    here = resources.files(__name__)
    return Path(str(here / "example_trace.json")), Path(str(here / "example_expectation.json"))


@dataclass
class DemoResult:
    result: StagedAnalysisResult
    out: Path
    files: list[str]
    server_url: str


async def run_demo(
    out: str | Path = "refinery-demo",
    *,
    progress: Callable[[str, str, dict[str, Any]], Any] | None = None,
    on_indexing: Callable[[Any], None] | None = None,
) -> DemoResult:
    """Run the four stages on the example trace against an in-process local server."""
    trace_path, expect_path = example_paths()
    trace, expectation = load_trace(trace_path), load_expectation(expect_path)
    out = Path(out)
    # The spec check needs OpenAI's OpenAPI document, which an installed package does not ship.
    async with OpenAITestServer(api_key=DEMO_KEY, validate_requests=find_spec() is not None) as server:
        async with ResponsesClient(api_key=DEMO_KEY, base_url=server.base_url) as client:
            analyst = StagedFailureAnalyst(
                client=client,
                progress_callback=progress,
                poll_timeout_s=60,
                store="hosted",  # the server plays OpenAI
            )
            done = await analyze_into(
                out,
                trace,
                expectation,
                analyst=analyst,
                trace_file=trace_path,
                on_indexing=on_indexing,
                usage_notes={"stand_in_model": STAND_IN_NOTICE},
            )
        return DemoResult(done.result, out, done.files, server.base_url)
