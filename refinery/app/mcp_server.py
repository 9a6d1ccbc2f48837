"""`refinery mcp`: refinery as tools other agents call, over the Model Context Protocol.

Why: people now debug with coding agents, and what those agents need is a door — "get the trace,
run the root-cause analysis, return root cause, spans and next action". The tools are the CLI's
own paths (the same key handling, redaction, output-folder lock, cost ceiling), answering with
data instead of printing: stdout is the protocol's channel over stdio.

Every path a caller gives is confined to the folders the server was started with (`--root`): a
calling agent cannot make it read or write anywhere else. The path is resolved (links followed)
before it is checked, and the files refinery adds to a folder are never followed when they are
links (`core.confined`): a `report.md`, `.refinery.lock`, `files/` or `stage3_diagnosis.json`
linked to a file outside the root is refused, not read or written. Needs the `mcp` extra
(`pip install 'refinery-analyst[mcp]'`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from refinery.analysis.inline_reading import choose_reading
from refinery.analysis.plan import measure, plan_summary, planned_requests
from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.app import analyze_into
from refinery.app.inputs import expectation_for
from refinery.core.artifacts import read_json
from refinery.core.confined import read_text_nofollow, within
from refinery.core.offload import off_loop
from refinery.errors import RefineryError, UserInputError
from refinery.patterns.grouping import find_patterns
from refinery.report.view import is_stand_in
from refinery.traces import load_trace
from refinery.traces.sources import fetched_copy, is_source_ref, temporary_folders

try:  # the optional extra; at module level, where the SDK resolves the tools' annotations
    from mcp.server.mcpserver import Context
except ImportError:  # pragma: no cover - without the extra `refinery mcp` says what to install
    Context = Any  # type: ignore[misc,assignment]

__all__ = ["build_server", "confined"]


def confined(path: str, roots: list[Path]) -> Path:
    """`path` resolved, when it lies inside one of `roots`; else a refusal naming the roots."""
    return within(path, roots)


F = TypeVar("F", bound=Callable[..., Any])


def _refusals(fn: F) -> F:
    """A refinery error (a path outside the roots, a bad trace, no key) as the tool's error result,
    which the calling agent reads, not a protocol failure."""
    from mcp.server.mcpserver.exceptions import ToolError

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except RefineryError as exc:
                raise ToolError(str(exc)) from None

        return run_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RefineryError as exc:
            raise ToolError(str(exc)) from None

    return run  # type: ignore[return-value]


def build_server(
    roots: list[Path],
    *,
    model: str = "gpt-4o",
    max_cost_usd: float | None = None,
    store: str = "auto",
    api: str = "auto",
    search_calls: int = 0,
) -> Any:
    """The MCP server with refinery's tools, paths confined to `roots`; `store`, `api` and
    `search_calls` as on the command line (a tool call may name its own `store` and `search_calls`)."""
    from mcp.server.mcpserver import MCPServer  # the optional extra: imported only when serving

    roots = [r.resolve() for r in roots]
    default_store, default_searches = store, max(0, search_calls)

    def _searches(asked: int | None) -> int:
        return default_searches if asked is None else max(0, asked)

    server = MCPServer(
        "refinery",
        instructions="Why did an AI agent run fail? plan_trace estimates an analysis; analyze_trace runs it and "
        "returns the verdict, the responsible agent, the decisive step and the errors with checked citations.",
    )

    async def _trace_file(trace: str, folder: Path | None) -> Path:
        """A path inside the roots, or a trace fetched by id (into `folder`, else a temporary file)."""
        ref = is_source_ref(trace)
        return confined(trace, roots) if ref is None else await fetched_copy(ref, folder)

    @server.tool()
    @_refusals
    async def plan_trace(
        trace: str, expect: str | None = None, store: str | None = None, search_calls: int | None = None
    ) -> dict[str, Any]:
        """What analysing a trace (a path, or `langsmith:<id>` / `langfuse:<id>` / `phoenix:<id>`) would send and cost:
        calls, input tokens, estimated cost (no model call); `store`: hosted, none (read inline) or auto (planned as
        the run will read: hosted on OpenAI's and Azure's API hosts, else none); `search_calls`: with no store, the
        search_trace calls a request may make."""
        reading = choose_reading(store or default_store, None, False, api)
        with temporary_folders():  # a trace fetched by id is removed once planned
            path = await _trace_file(trace, None)
            expect_path = confined(expect, roots) if expect else None

            def planned(_stop: object) -> dict[str, Any]:  # parsing and rendering: off the event loop
                loaded = load_trace(path)
                expectation = expectation_for(expect_path, loaded)
                analyst = StagedFailureAnalyst(
                    model=model, store=reading.store, search_calls=_searches(search_calls), api=api
                )
                files = analyst.render(loaded, expectation)
                try:
                    calls = measure(planned_requests(analyst, loaded, files, expectation))
                    return plan_summary(analyst, loaded, files, calls)
                finally:
                    close = getattr(files, "close", None)
                    if close is not None:
                        close()

            plan = await off_loop(planned)
        keys = ("trace_id", "runs", "failed_runs", "groups", "model", "store", "total")
        return {**{k: plan[k] for k in keys}, "store_reason": reading.reason}

    @server.tool()
    @_refusals
    async def analyze_trace(
        trace: str,
        out: str,
        expect: str | None = None,
        store: str | None = None,
        search_calls: int | None = None,
        annotate: bool = False,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """Run the four stages on a trace (a path, or `langsmith:<id>` / `langfuse:<id>` / `phoenix:<id>`); write the
        artifacts and report into `out`; return the verdict. Progress is reported stage by stage. `store`: hosted
        (upload, file_search), none (nothing uploaded: read inline) or auto (hosted on OpenAI's and Azure's API
        hosts, else none); `search_calls`: with no store, the search_trace calls a request may make (the server
        must take function tools). `annotate` (a trace by id only): also write the verdict, decisive step and
        verified errors back to that platform as refinery.verdict / refinery.decisive_step / refinery.error; the
        answer's `annotations` says what was written, or the platform's one-line refusal."""
        folder = confined(out, roots)
        if annotate and is_source_ref(trace) is None:
            raise UserInputError(
                f"{trace}: annotate writes back to the platform a trace was fetched from; give it by id"
            )
        path = await _trace_file(trace, folder)
        loaded = await off_loop(lambda _stop: load_trace(path))
        expectation = expectation_for(confined(expect, roots) if expect else None, loaded)
        steps = ["prepare", "stage1", "stage2", "stage3", "stage4"]

        async def progress(stage: str, status: str, info: dict[str, Any]) -> None:
            if ctx is not None and status == "end" and stage in steps:
                await ctx.report_progress(steps.index(stage) + 1, len(steps), f"{stage} done")

        async with StagedFailureAnalyst(
            model=model,
            max_cost_usd=max_cost_usd,
            store=store or default_store,
            api=api,
            search_calls=_searches(search_calls),
        ) as analyst:
            done = await analyze_into(folder, loaded, expectation, analyst=analyst, trace_file=path, progress=progress)
        result, usage = done.result, done.usage
        annotations = None
        if annotate:
            from refinery.app.annotate import annotate_folder  # only when asked: the server starts without it

            annotations = (await annotate_folder(folder)).as_dict()
        d, verification = result.diagnosis, result.verification.get("stage3") or {}
        bad = {u["path"] for u in verification.get("unverified", [])}
        return {
            "trace_id": result.trace_id,
            "failure_type": d.failure_type.value if d else None,
            "confidence": d.confidence.value if d else None,
            "root_cause": d.root_cause if d else None,
            "responsible_agent": d.responsible_agent if d else None,
            "decisive_step": {**d.decisive_step.model_dump(), "verified": "decisive_step" not in bad} if d else None,
            "errors": [
                {**e.model_dump(mode="json"), "verified": f"errors[{i}]" not in bad} for i, e in enumerate(d.errors)
            ]
            if d
            else [],
            "next_actions": [a.action for a in result.synthesis.actions_next] if result.synthesis else [],
            "report": str(folder / "report.md"),
            "reading": (result.stage_metadata.get("stage3") or {}).get("reading"),
            "cost_usd": usage["total"].get("estimated_cost_usd"),
            # answers from refinery's test double are labelled as such, as `run --json` labels them
            "stand_in_model": is_stand_in(u.model for u in result.usage.values()),
            **({"annotations": annotations} if annotations is not None else {}),
        }

    @server.tool()
    @_refusals
    def read_report(out: str) -> str:
        """The Markdown report of an analysis folder."""
        report = confined(out, roots) / "report.md"
        if not report.is_file() and not report.is_symlink():
            raise UserInputError(f"{out}: no report.md (is it an analysis's output folder?)")
        return read_text_nofollow(report)  # a link in its place is refused

    @server.tool()
    @_refusals
    def list_runs(folder: str) -> list[dict[str, Any]]:
        """The analyses under a folder: each subfolder (or the folder itself) holding a diagnosis."""
        base = confined(folder, roots)
        found = []
        for stage3 in sorted(base.rglob("stage3_diagnosis.json")):
            data = read_json(stage3, follow=False) or {}  # a link in its place is refused
            output = data.get("output") or {}
            found.append(
                {
                    "folder": str(stage3.parent),
                    "trace_id": data.get("trace_id"),
                    "failure_type": output.get("failure_type"),
                    "root_cause": output.get("root_cause"),
                }
            )
        return found

    @server.tool(name="find_patterns")
    @_refusals
    def find_patterns_in(folders: list[str]) -> list[dict[str, Any]]:
        """The failure patterns across finished `refinery batch` folders, largest first."""
        outcomes = []
        for f in folders:
            summary = read_json(confined(f, roots) / "summary.json", follow=False) or {}
            outcomes += list((summary.get("outcomes") or {}).values())
        return [p.model_dump() for p in find_patterns(outcomes)]

    return server
