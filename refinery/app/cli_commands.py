"""The CLI's commands around an analysis rather than of one: traces fetched by id (`langsmith:`,
`langfuse:`, `phoenix:`, `batch --from`), failure patterns over finished batches, and the MCP server. Kept
apart from `cli.py`, which runs the analyses themselves."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from refinery.errors import ArtifactsMismatchError, InputFileError

__all__ = [
    "annotated_batch",
    "annotated_run",
    "batch_source",
    "cmd_mcp",
    "cmd_patterns",
    "emit",
    "listed",
    "trace_path",
]

EXIT_OK = 0


def emit(args: argparse.Namespace, human: str, data: dict[str, Any]) -> None:
    """What a command says: the human text, or its JSON with --json (every command's one way)."""
    said = json.dumps(data, indent=2, default=str) if args.json else human
    # a lone surrogate (half an emoji a JavaScript exporter cut) cannot be printed: shown as U+FFFD
    print(said.encode("utf-8", "replace").decode("utf-8") if _has_surrogate(said) else said)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


async def trace_path(args: argparse.Namespace, out: Path | None) -> str:
    """A trace path, fetching a `langsmith:` / `langfuse:` / `phoenix:` reference first: into `out/trace.json`
    (kept: a rerun reads it instead of fetching again), or a private temporary file."""
    from refinery.traces.sources import fetched_copy, is_source_ref, kept_source

    ref = is_source_ref(args.trace, project=getattr(args, "project", None))
    if ref is None:
        return str(args.trace)
    if out is not None and (out / "trace.json").is_file() and not getattr(args, "fresh", False):
        kept = kept_source(out / "trace.json")
        if kept != str(ref):
            raise ArtifactsMismatchError(
                f"{out / 'trace.json'} holds {kept or 'another trace'}, not {ref}; use --fresh or another --out"
            )
    print(f"refinery: trace {ref}", file=sys.stderr)
    return str(await fetched_copy(ref, out))


def _analysed(out: Path, trace_id: str, stages: int) -> bool:
    """Whether `out` holds stages 1…`stages` of this trace (its id as written: redacted or not)."""
    from refinery.analysis.checkpoints import Checkpoints
    from refinery.traces.redact import redact_text

    done = Checkpoints(out)
    return done.finished(trace_id, stages) or done.finished(redact_text(trace_id), stages)


async def annotated_run(
    args: argparse.Namespace, analyse: Callable[[], Awaitable[int]], trace_id: str, stages: int
) -> int:
    """`run --annotate`: the analysis (none when `--out` already holds it), then its diagnosis
    written back to the platform the trace came from; a platform's refusal is one line and its
    exit code, the analysis's results kept."""
    import asyncio

    from refinery.app.annotate import annotate_folder, is_annotated_source

    out = Path(args.out)
    if not await asyncio.to_thread(is_annotated_source, out):  # refused before anything is spent
        raise InputFileError(
            f"{args.trace}: --annotate writes back to the platform a trace was fetched from; give it by id "
            "(phoenix:<id>, langfuse:<id>, langsmith:<id>)"
        )
    if stages < 3:
        raise InputFileError(f"--annotate writes stage 3's diagnosis: give --stages 1-3 or 1-4, not {args.stages}")
    analyse_now = getattr(args, "fresh", False) or not await asyncio.to_thread(_analysed, out, trace_id, stages)
    if analyse_now:
        code = await analyse()
        if code != EXIT_OK:
            return code
    outcome = await annotate_folder(out)
    if analyse_now:  # the analysis has given the command's answer: the annotations are one more line
        print_err(f"refinery: {outcome.line}")
    else:  # no analysis said anything: the annotations are the command's answer
        emit(args, f"{out} already holds this trace's analysis (no new one)\n{outcome.line}", outcome.as_dict())
    return outcome.exit_code


def print_err(line: str) -> None:
    print(line, file=sys.stderr)


async def annotated_batch(out: Path, items: Sequence[Any], code: int) -> int:
    """`batch --annotate`: each trace fetched by id whose folder holds a diagnosis (analysed now or
    before) annotated on its platform; one line each; the batch's exit code unless only annotating failed."""
    import asyncio

    from refinery.app.annotate import annotate_folder, is_annotated_source
    from refinery.errors import RefineryError

    failed: list[int] = []
    for item in items:
        folder = out / item.name
        if not await asyncio.to_thread(is_annotated_source, folder):  # reads the trace's copy: off the loop
            print_err(f"refinery: {item.name}: not annotated (not a trace fetched by id, or not analysed)")
            continue
        try:
            outcome = await annotate_folder(folder)
        except RefineryError as exc:  # no diagnosis in this folder (its analysis failed): said, not fatal
            print_err(f"refinery: {item.name}: not annotated: {exc}")
            continue
        print_err(f"refinery: {item.name}: {outcome.line}")
        if outcome.error is not None:
            failed.append(outcome.exit_code)
    return code if code != EXIT_OK or not failed else failed[0]


def batch_source(args: argparse.Namespace) -> str:
    if not args.source:
        raise InputFileError("refinery batch: give a folder, a manifest or a trace file — or --from PLATFORM")
    return str(args.source)


async def listed(args: argparse.Namespace) -> list[Any]:
    """`--from PLATFORM --since AGE --failed`: that period's failed traces, each analysed by id."""
    from refinery.app.batch import BatchItem
    from refinery.traces.render import safe_name
    from refinery.traces.sources import failed_traces, parse_age

    if args.source:
        raise InputFileError("refinery batch: give SOURCE or --from, not both")
    if not args.failed or not args.since:
        raise InputFileError("refinery batch --from: add --since AGE and --failed (failed traces are what it lists)")
    ids = await failed_traces(args.from_platform, parse_age(args.since), project=args.project)
    print(f"refinery: {len(ids)} failed trace(s) in {args.from_platform} since {args.since}", file=sys.stderr)
    expect = str(args.expect) if args.expect else None
    return [BatchItem(name=safe_name(i), trace=f"{args.from_platform}:{i}", expect=expect) for i in ids]


async def cmd_patterns(args: argparse.Namespace) -> int:
    """The failure patterns across finished batch folders (e.g. a week of nightly runs)."""
    from refinery.analysis.output_folder import digest_of
    from refinery.core.artifacts import read_json, write_json_atomic
    from refinery.patterns.grouping import Pattern, find_patterns

    outcomes = []
    for folder in args.folders:
        data = read_json(Path(folder) / "summary.json")
        if not isinstance(data, dict):
            raise InputFileError(f"{folder}: no summary.json (a folder `refinery batch` wrote)")
        prefix = f"{Path(folder).name}/" if len(args.folders) > 1 else ""
        outcomes += [{**o, "name": prefix + str(o.get("name", n))} for n, o in (data.get("outcomes") or {}).items()]
    patterns = find_patterns(outcomes)
    # kept in the first folder: a rerun over the same diagnoses reuses them, with no model call
    cache = Path(args.folders[0]) / "patterns.json"
    made_of = digest_of(
        [[str(f) for f in args.folders], patterns, [o.get("root_cause") for o in outcomes], args.no_llm]
    )
    kept = read_json(cache)
    if isinstance(kept, dict) and kept.get("of") == made_of:
        patterns = [Pattern.model_validate(p) for p in kept.get("patterns") or []]
    elif not args.no_llm and len(patterns) > 1:
        from refinery.patterns.merge import merge_patterns
        from refinery.wire.responses_client import ResponsesClient

        causes = {p.id: [str(o.get("root_cause")) for o in outcomes if o.get("name") in p.traces][:3] for p in patterns}
        per_trace = {str(o.get("name")): o for o in outcomes if o.get("status") == "done"}  # the model may split
        async with ResponsesClient() as client:
            patterns, note = await merge_patterns(
                client, patterns, causes, model=args.model, max_cost_usd=args.max_cost, per_trace=per_trace
            )
        if note:
            print(f"refinery: {note}", file=sys.stderr)
    write_json_atomic(cache, {"of": made_of, "patterns": [p.model_dump() for p in patterns]})
    from refinery.report.view import STAND_IN, is_stand_in

    stand_in = is_stand_in(m for o in outcomes for m in o.get("answered_by") or [])
    lines = [f"{len(patterns)} pattern(s) over {sum(p.count for p in patterns)} analysed trace(s):"]
    if stand_in:  # patterns made from the stand-in's diagnoses say so, as the batch summary does
        lines.insert(0, STAND_IN)
    lines += [
        f"{i:>3}. {p.count:>4} ({p.share:.0%})  {p.title}  — {', '.join(p.traces[:5])}"
        for i, p in enumerate(patterns, 1)
    ]
    emit(args, "\n".join(lines), {"patterns": [p.model_dump() for p in patterns], "stand_in_model": stand_in})
    return EXIT_OK


async def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve refinery's tools over MCP: stdio, or streamable HTTP on 127.0.0.1 with --http PORT."""
    try:
        from refinery.app.mcp_server import build_server

        server = build_server(
            [Path(r) for r in args.root],
            model=args.model,
            max_cost_usd=args.max_cost,
            store=args.store,
            api=args.api,
            search_calls=max(0, args.search_calls or 0),
        )
    except ModuleNotFoundError as exc:
        raise InputFileError(f"refinery mcp needs the mcp extra: pip install 'refinery-analyst[mcp]' ({exc})") from None
    if args.http:
        await server.run_streamable_http_async(host=args.host, port=args.http)
    else:
        await server.run_stdio_async()
    return EXIT_OK
