"""The `refinery` command line: demo · init · analyze · run · plan · canary · batch.

Exit codes (also in `refinery --help`):
  0  done
  2  bad usage or bad input (a file that is missing or not what it should be)
  3  authentication, quota or connection problem (fix the key, account or URL)
  4  the analysis failed (rate limits that never cleared, unusable model output, server errors)
  130 interrupted (Ctrl-C or SIGTERM); every artifact written so far is whole, and rerunning the
      same command resumes
Errors are one line on stderr; `--debug` adds the traceback. `--json` makes stdout
machine-readable; progress always goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from refinery.agents.plan import planned_requests
from refinery.agents.staged_failure_analyst import StagedFailureAnalyst
from refinery.agents.stages import compact_json
from refinery.core.tokens import estimate_body_tokens, estimate_tokens
from refinery.errors import (
    EXIT_ACCESS,
    EXIT_FAILED,
    EXIT_USAGE,
    RefineryError,
)
from refinery.inputs import InputFileError, expectation_for, load_expectation, read_files
from refinery.outputs import usage_summary, write_outputs
from refinery.traces import load_trace

EXIT_OK = 0
EXIT_CODES_HELP = """exit codes:
  0  done
  2  bad usage or bad input (missing file, unrecognised trace, bad expectation)
  3  authentication, quota or connection problem (key, account, base URL)
  4  the analysis failed (rate limits that never cleared, unusable output, server errors)
  130 interrupted (Ctrl-C, SIGTERM): rerun the same command to resume"""
def exit_code_for(exc: BaseException) -> int:
    """The exit code an error means (each refinery error class carries its own)."""
    return exc.exit_code if isinstance(exc, RefineryError) else EXIT_FAILED


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own exit code for usage errors is 2 too
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"refinery: error: {message}\n")


MODEL_HELP = "the OpenAI model every stage uses, e.g. gpt-4o, gpt-4.1, o4-mini (default: gpt-4o)"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("refinery-analyst")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from refinery import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")

    trace_inputs = _Parser(add_help=False)
    trace_inputs.add_argument("trace", metavar="TRACE", help="trace file: LangSmith, OTLP/OpenInference, Langfuse or plain JSON/JSONL")
    trace_inputs.add_argument("--prompts", nargs="+", metavar="FILE", default=[], help="the agent's prompt files")
    trace_inputs.add_argument("--evals", nargs="+", metavar="FILE", default=[], help="the agent's eval files")
    trace_inputs.add_argument("--format", choices=["langsmith", "otel", "langfuse", "plain"], help="force the trace format (default: detect)")
    trace_inputs.add_argument("--no-redact", action="store_true", help="upload secrets as they are (redaction is on by default)")

    analysis = _Parser(add_help=False)
    analysis.add_argument("--expect", metavar="FILE", help="what the expert expected: JSON {description, expected_output, business_context, specific_issues} or plain text (default: the task the trace states, if it states one)")
    analysis.add_argument("--out", default="refinery-out", metavar="DIR", help="artifacts directory (default: refinery-out); a rerun resumes from it")
    analysis.add_argument("--model", default="gpt-4o", help=MODEL_HELP)
    analysis.add_argument("--stages", default="1-4", help="stages to run, 1-N (default: 1-4)")
    analysis.add_argument("--timeout", type=float, default=300.0, metavar="S", help="seconds one API request may take (default: 300)")

    parser = _Parser(
        prog="refinery",
        description="Find out why an AI agent run failed: four evidence-backed stages over an OpenAI hosted vector store.",
        epilog="environment: OPENAI_API_KEY (required except for plan), OPENAI_BASE_URL, OPENAI_PROJECT, OPENAI_ORG_ID\n\n" + EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"refinery {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    def command(name: str, summary: str, description: str, parents: list[_Parser]) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, parents=parents, help=summary, description=f"{summary}.\n\n{description}",
            epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = command(
        "demo", "see the whole pipeline work on an example trace, with no key and no network",
        "Starts refinery's own OpenAI-compatible test server in this process on a free loopback port, uploads a\n"
        "packaged example trace, runs the four stages and writes the report. The answers come from the server's\n"
        "stand-in model (a deterministic test double), not from an analysis. Start here after installing.",
        [common],
    )
    p.add_argument("--out", default="refinery-demo", metavar="DIR", help="where the artifacts and report go (default: refinery-demo)")

    p = command(
        "init", "render, upload and index a trace; print the vector store id",
        "Renders the trace as citable files, uploads them to a new OpenAI vector store and waits until they are\n"
        "indexed. Use `refinery analyze --store ID` to run the stages on it later.",
        [common, trace_inputs],
    )
    p.add_argument("--name", help="vector store name (default: refinery-<trace id>)")
    p.add_argument("--expires-days", type=int, default=1, metavar="D", help="delete the store D days after last use (default: 1)")
    p.add_argument("--expect", metavar="FILE", help="also upload the expectations")
    p.add_argument("--timeout", type=float, default=300.0, metavar="S", help="seconds one API request may take (default: 300)")

    p = command(
        "analyze", "run the stages on a store made by `refinery init`",
        "Runs stages 1-N (trace analysis, gap analysis, diagnosis, synthesis) on an existing vector store and\n"
        "writes the artifacts and the report to --out; a rerun resumes from the first missing stage.",
        [common, analysis],
    )
    p.add_argument("--store", required=True, metavar="ID", help="vector store id printed by `refinery init`")

    p = command(
        "run", "analyse one trace end to end (init + analyze)",
        "Uploads the trace, runs the four stages and writes stage artifacts, report.md, report.html and\n"
        "usage.json to --out. Rerunning the same command resumes; the store is deleted after success.\n"
        "No key yet? `refinery demo` shows the same pipeline against the bundled test server.",
        [common, trace_inputs, analysis],
    )
    p.add_argument("--keep-store", action="store_true", help="keep the vector store after a successful run")
    p.add_argument("--expires-days", type=int, default=1, metavar="D", help="store expiry after last use (default: 1)")

    p = command(
        "plan", "show what a run would upload and send (no key, no network)",
        "Renders the trace, prints the files with their sizes and each stage's request with token estimates.\n"
        "Nothing is sent anywhere.",
        [common, trace_inputs],
    )
    p.add_argument("--expect", metavar="FILE", help="the expectation file (default: the task the trace states, if it states one)")
    p.add_argument("--model", default="gpt-4o", help=MODEL_HELP)
    p.add_argument("--show-bodies", action="store_true", help="print the request bodies in full")

    p = command(
        "batch", "analyse many traces under one rate budget",
        "Analyses every trace of a folder (or a JSON manifest) concurrently through one client whose rate budget\n"
        "learns the project's TPM/RPM; one folder per trace, summary.json and summary.md as results arrive.",
        [common],
    )
    p.add_argument("source", metavar="SOURCE", help="a folder of traces (with optional <stem>.expect.json beside each) or a JSON manifest")
    p.add_argument("--expect", metavar="FILE", help="the expectation for traces that have none of their own")
    p.add_argument("--out", default="refinery-batch", metavar="DIR", help="one folder per trace, plus summary.json and summary.md (default: refinery-batch)")
    p.add_argument("--model", default="gpt-4o", help=MODEL_HELP)
    p.add_argument("--concurrency", type=int, default=8, metavar="N", help="analyses in flight at once (default: 8)")
    p.add_argument("--tpm", type=int, metavar="N", help="tokens-per-minute limit (default: learned from the API's headers)")
    p.add_argument("--rpm", type=int, metavar="N", help="requests-per-minute limit (default: learned from the API's headers)")
    p.add_argument("--timeout", type=float, default=300.0, metavar="S", help="seconds one API request may take (default: 300)")

    p = command(
        "canary", "check key, base URL and model with the smallest request",
        "Sends one tiny strict-JSON request and says plainly what is wrong if it fails.",
        [common],
    )
    p.add_argument("--model", default="gpt-4o", help=MODEL_HELP)
    return parser


def _stages(text: str) -> int:
    parts = text.split("-")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise InputFileError(f"--stages {text!r}: expected 1-N with N from 1 to 4") from None
    if len(nums) not in (1, 2) or not 1 <= nums[-1] <= 4 or (len(nums) == 2 and nums[0] != 1):
        raise InputFileError(f"--stages {text!r}: expected 1-N with N from 1 to 4 (stages build on each other)")
    return nums[-1]


def _client(args: argparse.Namespace, **kwargs: Any) -> Any:
    """The API client for a command, from the environment, with the command's timeout."""
    import aiohttp

    from refinery.integrations.responses_client import ResponsesClient

    return ResponsesClient(timeout=aiohttp.ClientTimeout(total=args.timeout, connect=min(30.0, args.timeout)), **kwargs)


def _progress(stage: str, status: str, info: dict[str, Any]) -> None:
    detail = " ".join(f"{k}={v}" for k, v in info.items())
    print(f"refinery: {stage} {status} {detail}".rstrip(), file=sys.stderr)


def _indexing(counts: Any) -> None:
    print(f"refinery: indexing {counts.get('completed', 0)}/{counts.get('total', 0)} files ({counts.get('in_progress', 0)} in progress)", file=sys.stderr)


def _emit(args: argparse.Namespace, human: str, data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else human)


async def _analysis(args: argparse.Namespace, trace: Any, prompts: dict[str, str], evals: dict[str, str], store_id: str | None) -> int:
    expectation = expectation_for(args.expect, trace)
    until = _stages(args.stages)
    out = Path(args.out)
    analyst = StagedFailureAnalyst(
        model=args.model,
        client=_client(args),
        progress_callback=_progress,
        artifacts_dir=out,
        keep_store=getattr(args, "keep_store", False),
        redact=not getattr(args, "no_redact", False),
        expires_after_days=getattr(args, "expires_days", 1),
    )
    async with analyst, analyst.client:
        result = await analyst.analyze(trace, expectation, prompts, evals, store_id=store_id, until_stage=until, on_progress=_indexing)
    usage = usage_summary(result, args.model, analyst.redaction.as_dict())
    files = write_outputs(out, result, trace, usage)
    summary = result.synthesis.summary if result.synthesis else (result.diagnosis.root_cause if result.diagnosis else "")
    redacted = analyst.redaction.as_dict()
    redaction_line = ("redacted before upload: " + ", ".join(f"{n} {k}" for k, n in redacted.items())) if redacted else "redacted before upload: nothing found"
    if getattr(args, "no_redact", False):
        redaction_line = "redaction: off (--no-redact)"
    _emit(
        args,
        f"{summary}\n\nreport: {out / 'report.md'} and {out / 'report.html'}\n{redaction_line}",
        {
            "trace_id": result.trace_id,
            "store_id": result.store_id,
            "out": str(out),
            "files": files,
            "summary": summary,
            "root_cause": result.diagnosis.root_cause if result.diagnosis else None,
            "confidence": result.diagnosis.confidence.value if result.diagnosis else None,
            "usage": usage,
        },
    )
    return EXIT_OK


async def cmd_init(args: argparse.Namespace) -> int:
    trace = load_trace(args.trace, format=args.format)
    prompts, evals = read_files(args.prompts), read_files(args.evals)
    expectation = load_expectation(args.expect) if args.expect else None
    analyst = StagedFailureAnalyst(client=_client(args), progress_callback=_progress, keep_store=True, redact=not args.no_redact, expires_after_days=args.expires_days)
    async with analyst, analyst.client:
        store_id = await analyst.prepare(trace, expectation, prompts, evals, on_progress=_indexing, name=args.name)
    _emit(args, store_id, {"store_id": store_id, "trace_id": trace.trace_id, "runs": len(trace.runs), "redactions": analyst.redaction.as_dict()})
    return EXIT_OK


async def cmd_analyze(args: argparse.Namespace) -> int:
    return await _analysis(args, None, {}, {}, args.store)


async def cmd_run(args: argparse.Namespace) -> int:
    trace = load_trace(args.trace, format=args.format)
    return await _analysis(args, trace, read_files(args.prompts), read_files(args.evals), None)


async def cmd_plan(args: argparse.Namespace) -> int:
    """What a run would upload and send, with sizes — built offline, so it needs no key."""
    trace = load_trace(args.trace, format=args.format)
    expectation = expectation_for(args.expect, trace)
    prompts, evals = read_files(args.prompts), read_files(args.evals)
    # No client is built: the analyst makes one only when it first talks to the API, which
    # `plan` never does (its test runs with no key and fails on any request).
    analyst = StagedFailureAnalyst(model=args.model, redact=not args.no_redact)
    files = analyst.render(trace, expectation, prompts, evals)
    bodies = planned_requests(analyst, trace, files, expectation)
    file_rows = [{"name": n, "bytes": len(t.encode()), "estimated_tokens": estimate_tokens(t)} for n, t in files]
    body_rows = [
        {"call": name, "bytes": len(compact_json(b).encode()), "estimated_input_tokens": estimate_body_tokens(b), "max_output_tokens": b["max_output_tokens"], "body": b if (args.json or args.show_bodies) else None}
        for name, b in bodies
    ]
    data = {"trace_id": trace.trace_id, "runs": len(trace.runs), "failed_runs": len(trace.get_failed_runs()), "files": file_rows, "requests": body_rows, "redactions": analyst.redaction.as_dict(), "note": "estimates exclude prior-stage JSON and file_search chunks"}
    lines = [f"trace {trace.trace_id}: {len(trace.runs)} runs, {len(trace.get_failed_runs())} failed", "", "files to upload:"]
    lines += [f"  {r['name']}  {r['bytes']} bytes  ~{r['estimated_tokens']} tokens" for r in file_rows]
    lines += ["", "requests (POST /v1/responses):"]
    lines += [f"  {r['call']}: ~{r['estimated_input_tokens']} input tokens{' + retrieved chunks' if not r['call'].startswith('stage4') else ''}, up to {r['max_output_tokens']} output" for r in body_rows]
    if args.show_bodies:
        lines += ["", *[f"--- {r['call']}\n{json.dumps(r['body'], indent=2)}" for r in body_rows]]
    redactions = analyst.redaction.as_dict()
    lines += ["", f"redacted: {redactions}" if redactions else "redacted: nothing found" if not args.no_redact else "redaction: off (--no-redact)"]
    _emit(args, "\n".join(lines), data)
    return EXIT_OK


async def cmd_canary(args: argparse.Namespace) -> int:
    from refinery.integrations.responses_client import ResponsesClient

    async with ResponsesClient() as client:
        result = await client.canary(args.model)
    base = client.base_url
    _emit(args, f"ok: {args.model} at {base} answered {result.reply!r}", {"ok": True, "model": args.model, "base_url": base, "response_id": result.response_id})
    return EXIT_OK


async def cmd_batch(args: argparse.Namespace) -> int:

    from refinery.batch import analyze_many, discover

    items = discover(args.source, args.expect)
    client = _client(args, tpm=args.tpm, rpm=args.rpm)
    async with client:
        summary = await analyze_many(items, out_dir=args.out, model=args.model, concurrency=args.concurrency, client=client, progress=lambda line: print(line, file=sys.stderr))
    failed = summary.failed
    human = f"{len(summary.outcomes) - len(failed)} done, {len(failed)} failed, {len(summary.skipped)} skipped (already done); {summary.total_tokens} tokens; summary: {Path(args.out) / 'summary.md'}"
    _emit(args, human, summary.model_dump(mode="json"))
    if not failed:
        return EXIT_OK
    codes = {o.exit_code for o in failed}
    # every trace failed for one reason of access (key, quota, connection): say so; else "failed"
    return EXIT_ACCESS if codes == {EXIT_ACCESS} and len(failed) == len(summary.outcomes) else EXIT_FAILED


async def cmd_demo(args: argparse.Namespace) -> int:
    """The whole pipeline on the packaged example, against the bundled server: no key, no network."""
    from refinery.demo import STAND_IN_NOTICE, run_demo

    demo = await run_demo(args.out, progress=_progress, on_indexing=_indexing)
    report = demo.out / "report.html"
    human = (
        f"demo: ran upload, indexing and four stages against refinery's local test server ({demo.server_url}).\n"
        f"{STAND_IN_NOTICE}\n\nreport: {report} (and {demo.out / 'report.md'})"
    )
    _emit(args, human, {"out": str(demo.out), "report": str(report), "files": demo.files, "stand_in_model": True, "notice": STAND_IN_NOTICE})
    return EXIT_OK


COMMANDS = {"demo": cmd_demo, "batch": cmd_batch, "init": cmd_init, "analyze": cmd_analyze, "run": cmd_run, "plan": cmd_plan, "canary": cmd_canary}


async def amain(argv: Sequence[str] | None = None) -> int:
    """The CLI as a coroutine (tests and hosts with a running loop call this)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="refinery: %(levelname)s %(name)s: %(message)s")
    try:
        return await COMMANDS[args.command](args)
    except (RefineryError, OSError) as exc:
        code = exit_code_for(exc) if isinstance(exc, RefineryError) else EXIT_USAGE
        if args.debug:
            traceback.print_exc()
        print(f"refinery: error: {exc}", file=sys.stderr)
        return code


EXIT_INTERRUPTED = 130
INTERRUPTED = "refinery: interrupted; rerun the same command to resume"


def _sigterm_as_sigint(signum: int, frame: object) -> None:
    """SIGTERM ends a run the way Ctrl-C does: asyncio cancels the running command, which closes
    its connections; artifacts are only ever replaced whole, so nothing is left half-written."""
    signal.raise_signal(signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    previous = signal.signal(signal.SIGTERM, _sigterm_as_sigint)
    try:
        return asyncio.run(amain(argv))
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
