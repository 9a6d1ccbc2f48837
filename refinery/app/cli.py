"""The `refinery` command line: demo · init · analyze · run · plan · canary · batch.

Exit codes (also in `refinery --help`):
  0  done
  2  bad usage or bad input (a file that is missing or not what it should be)
  3  authentication, quota or connection problem (fix the key, account or URL)
  4  the analysis failed (rate limits that never cleared, unusable model output, server errors)
  130 interrupted (Ctrl-C), 143 stopped by SIGTERM (also when SIGINT is ignored, as in a
      background job); every artifact written so far is whole, and rerunning the same command resumes
Errors are one line on stderr; `--debug` adds the traceback. `--json` makes stdout
machine-readable; progress always goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from refinery.app.cli_args import build_parser
from refinery.app.cli_commands import (
    annotated_batch,
    annotated_run,
    batch_source,
    cmd_mcp,
    cmd_patterns,
    emit,
    listed,
    trace_path,
)
from refinery.app.exit_codes import EXIT_OK, EXIT_USAGE, exit_code_for, exit_code_of_many, hint_for
from refinery.app.plan_command import STORE_LINES, _model_options, _scale_options, cmd_plan
from refinery.core.confined import refuse_system_folder
from refinery.errors import InputFileError, RefineryError

if TYPE_CHECKING:
    import asyncio

# asyncio, logging and everything else (the analyst, loaders, redaction, the HTTP client, pydantic's models) is imported
# inside the command that uses it: `refinery --help` and `--version` start in a few tens of
# milliseconds (tests/test_startup.py keeps them out).


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

    from refinery.wire.responses_client import ResponsesClient

    timeout = aiohttp.ClientTimeout(total=args.timeout, connect=min(30.0, args.timeout))
    return ResponsesClient(timeout=timeout, api=getattr(args, "api", "auto"), **kwargs)


def _say(line: str) -> None:
    """A progress line on stderr in one write: `print` writes the text and its line break apart, and a
    signal's exception raised between the two (SIGTERM ends a run where it stands) left the next
    line glued to it."""
    sys.stderr.write(line + "\n")


def _progress(stage: str, status: str, info: dict[str, Any]) -> None:
    detail = " ".join(f"{k}={v}" for k, v in info.items())
    _say(f"refinery: {stage} {status} {detail}".rstrip())


def _indexing(counts: Any) -> None:
    _say(
        f"refinery: indexing {counts.get('completed', 0)}/{counts.get('total', 0)} files "
        f"({counts.get('in_progress', 0)} in progress)"
    )


async def _analysis(
    args: argparse.Namespace, trace: Any, prompts: dict[str, str], evals: dict[str, str], store_id: str | None
) -> int:
    from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
    from refinery.app import analyze_into
    from refinery.app.inputs import expectation_for

    expectation = expectation_for(args.expect, trace)
    out = Path(args.out)
    analyst = StagedFailureAnalyst(
        model=args.model,
        client=_client(args),
        progress_callback=_progress,
        keep_store=getattr(args, "keep_store", False),
        redact=not getattr(args, "no_redact", False),
        expires_after_days=getattr(args, "expires_days", 1),
        max_cost_usd=args.max_cost,
        **_scale_options(args),
    )
    async with analyst, analyst.client:
        done = await analyze_into(
            out,
            trace,
            expectation,
            analyst=analyst,
            prompts=prompts,
            evals=evals,
            trace_file=args.trace if trace is not None else None,
            store_id=store_id,
            until_stage=_stages(args.stages),
            fresh=getattr(args, "fresh", False),
            on_indexing=_indexing,
        )
    result, usage, files = done.result, done.usage, done.files
    summary = (
        result.synthesis.summary if result.synthesis else (result.diagnosis.root_cause if result.diagnosis else "")
    )
    redacted = result.redactions
    redaction_line = (
        ("redacted before upload: " + ", ".join(f"{n} {k}" for k, n in redacted.items()))
        if redacted
        else "redacted before upload: nothing found"
    )
    if getattr(args, "no_redact", False):
        redaction_line = "redaction: off (--no-redact)"
    emit(
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
            **_verdict(result),
            "usage": usage,
        },
    )
    return EXIT_OK


def _verdict(result: Any) -> dict[str, Any]:
    """What `run --json` says of the verdict, as the MCP tool does: failure type, responsible agent,
    decisive step (checked or not), the citations checked and verified, and whether the answers
    are the stand-in model's."""
    from refinery.report.view import is_stand_in

    d = result.diagnosis
    stage3 = result.verification.get("stage3") or {}
    unverified = {u.get("path") for u in stage3.get("unverified", [])}
    checks = [v for v in result.verification.values() if isinstance(v, dict)]
    return {
        "failure_type": d.failure_type.value if d else None,
        "responsible_agent": d.responsible_agent if d else None,
        "decisive_step": {**d.decisive_step.model_dump(), "verified": "decisive_step" not in unverified} if d else None,
        "citations": {
            "cited": sum(v.get("cited", 0) for v in checks),
            "verified": sum(v.get("verified", 0) for v in checks),
        },
        "stand_in_model": is_stand_in(u.model for u in result.usage.values()),
    }


async def cmd_init(args: argparse.Namespace) -> int:
    from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
    from refinery.app.inputs import load_expectation, read_files
    from refinery.traces import load_trace

    args.trace = await trace_path(args, None)
    trace = load_trace(args.trace, format=args.format, sample=args.sample)
    prompts, evals = read_files(args.prompts), read_files(args.evals)
    expectation = load_expectation(args.expect) if args.expect else None
    analyst = StagedFailureAnalyst(
        client=_client(args),
        progress_callback=_progress,
        keep_store=True,
        redact=not args.no_redact,
        expires_after_days=args.expires_days,
        store="hosted",  # `init` makes the store `analyze --store ID` reads, wherever the endpoint is
    )
    async with analyst, analyst.client:
        store_id, redaction = await analyst.prepare_store(
            trace, expectation, prompts, evals, on_progress=_indexing, name=args.name
        )
    emit(
        args,
        store_id,
        {
            "store_id": store_id,
            "trace_id": trace.trace_id,
            "runs": len(trace.runs),
            "redactions": redaction.as_dict(),
        },
    )
    return EXIT_OK


DEFAULT_OUT = Path("refinery-out")


def default_out(trace_id: str) -> str:
    """The output folder when `--out` is not given: one per trace under refinery-out/, so runs of
    different traces never collide and a rerun of the same trace resumes."""
    from refinery.analysis.output_folder import trace_folder_name

    return str(DEFAULT_OUT / trace_folder_name(trace_id))


async def cmd_analyze(args: argparse.Namespace) -> int:
    args.out = args.out or default_out(args.store)
    return await _analysis(args, None, {}, {}, args.store)


async def cmd_run(args: argparse.Namespace) -> int:
    from refinery.app.inputs import read_files
    from refinery.traces import load_trace
    from refinery.traces.sources import is_source_ref

    ref = is_source_ref(args.trace, project=getattr(args, "project", None))
    if args.out is None and ref is not None:  # a trace by id: its folder holds the fetched copy too
        args.out = default_out(ref.trace_id)
    args.trace = await trace_path(args, Path(args.out) if args.out else None)
    trace = load_trace(args.trace, format=args.format, sample=args.sample)
    args.out = args.out or default_out(trace.trace_id)
    if getattr(args, "annotate", False):
        analyse = lambda: _analysis(args, trace, read_files(args.prompts), read_files(args.evals), None)  # noqa: E731
        return await annotated_run(args, analyse, trace.trace_id, _stages(args.stages))
    return await _analysis(args, trace, read_files(args.prompts), read_files(args.evals), None)


async def cmd_canary(args: argparse.Namespace) -> int:
    from refinery.wire.responses_client import ResponsesClient

    async with ResponsesClient(api=args.api) as client:
        result = await client.canary(args.model)
    base = client.base_url
    choice = result.store or client.store_choice()
    wire = "POST /v1/responses" if result.api == "responses" else "POST /v1/chat/completions"
    emit(
        args,
        f"ok: {args.model} on {result.host} answered {result.reply!r} by {wire}\n"
        f"a run with no --store flag reads with --store {choice.store} ({STORE_LINES[choice.store]}) over "
        f"--api {result.api}: {choice.reason}; {choice.change}",
        {
            "ok": True,
            "model": args.model,
            "base_url": base,
            "backend": result.backend,
            "response_id": result.response_id,
            "api": result.api,
            "store": choice.store,
            "store_reason": choice.reason,
            "store_change": choice.change,
        },
    )
    return EXIT_OK


async def cmd_batch(args: argparse.Namespace) -> int:
    from refinery.analysis.cost_ceiling import CostCeiling
    from refinery.app.batch import analyze_many, discover, failure_line
    from refinery.app.batch_api_command import cmd_batch_api, wants_batch_api

    if wants_batch_api(args):  # the provider's Batch API: rounds of batches, durable in --out
        return await cmd_batch_api(args)

    items = await listed(args) if args.from_platform else discover(batch_source(args), args.expect)
    ceiling = (
        CostCeiling(args.max_cost, args.base_model or args.model) if args.max_cost is not None else None
    )  # one ceiling for the whole batch
    client = _client(args, tpm=args.tpm, rpm=args.rpm)
    async with client:
        summary = await analyze_many(
            items,
            out_dir=args.out,
            model=args.model,
            concurrency=args.concurrency,
            client=client,
            progress=lambda line: print(line, file=sys.stderr),
            cost_ceiling=ceiling,
            name_patterns=not args.no_llm,
            patterns_max_cost_usd=args.max_cost,
            **_model_options(args),
        )
    failed = summary.failed
    human = "\n".join(
        [
            *(failure_line(o) for o in sorted(failed, key=lambda o: o.name)),
            f"{len(summary.outcomes) - len(failed)} done, {len(failed)} failed, {len(summary.skipped)} skipped "
            f"(already done); {summary.total_tokens} tokens; summary: {Path(args.out) / 'summary.md'}",
        ]
    )
    emit(args, human, summary.model_dump(mode="json"))
    # 0 all analysed · 5 some failed · none analysed: their one cause's code (2, 3), else 4
    code = exit_code_of_many(len(summary.outcomes) - len(failed), [o.exit_code for o in failed])
    return await annotated_batch(Path(args.out), items, code) if getattr(args, "annotate", False) else code


async def cmd_demo(args: argparse.Namespace) -> int:
    """The whole pipeline on the packaged example, against the bundled server: no key, no network."""
    from refinery.app.demo import STAND_IN_NOTICE, run_demo

    demo = await run_demo(args.out, progress=_progress, on_indexing=_indexing)
    report = demo.out / "report.html"
    meta = demo.result.stage_metadata
    resumed = [k for k in ("stage1", "stage2", "stage3", "stage4") if (meta.get(k) or {}).get("resumed")]
    if len(resumed) == 4:
        did = f"demo: resumed the analysis already in {demo.out} (all four stages were there; nothing was asked again)"
    elif resumed:
        did = (
            f"demo: resumed in {demo.out}: {', '.join(resumed)} were there; ran the rest against refinery's local "
            f"test server ({demo.server_url})"
        )
    else:
        did = f"demo: ran upload, indexing and four stages against refinery's local test server ({demo.server_url})"
    human = f"{did}.\n{STAND_IN_NOTICE}\n\nreport: {report} (and {demo.out / 'report.md'})"
    emit(
        args,
        human,
        {
            "out": str(demo.out),
            "report": str(report),
            "files": demo.files,
            "stand_in_model": True,
            "resumed_stages": resumed,
            "notice": STAND_IN_NOTICE,
        },
    )
    return EXIT_OK


async def cmd_eval(args: argparse.Namespace) -> int:
    from refinery.app.eval_runner import eval_labels, eval_trail, eval_who_and_when
    from refinery.eval.report import render_eval_md

    if not args.score and not args.out:
        raise InputFileError("refinery eval: give --out DIR (where the runs and eval.json go), or --score PRED_DIR")
    client = None if args.score else _client(args)
    common = {
        "out": args.out,
        "limit": args.limit,
        "model": args.model,
        "client": client,
        "store": args.store,
        "search_calls": max(0, args.search_calls or 0),
        "concurrency": args.concurrency,
        "predictions_dir": args.score,
        "progress": lambda line: print(line, file=sys.stderr),
    }
    try:
        if args.benchmark == "who-and-when":
            result = await eval_who_and_when(args.data, with_answer=args.with_answer, **common)
        else:
            if args.annotations is None and not args.score and args.benchmark != "labels":
                raise InputFileError(
                    f"refinery eval {args.benchmark}: give TRACES and the labels folder (only --score can do without "
                    f"the traces)"
                )
            traces, annotations = (None, args.data) if args.annotations is None else (args.data, args.annotations)
            if args.benchmark == "labels":
                result = await eval_labels(traces, annotations, step_base=args.step_base, **common)
            else:
                result = await eval_trail(traces, annotations, **common)
    finally:
        if client is not None:
            await client.close()
    emit(
        args,
        render_eval_md(result),
        {k: v for k, v in result.items() if k != "scores"} | {"scores": _without_rows(result["scores"])},
    )
    if args.score:  # scored from predictions on disk: nothing was analysed here
        return EXIT_OK
    # 0 all analysed · 5 some failed · none analysed: their one cause's code (2, 3), else 4
    return exit_code_of_many(result.get("analysed", 0), list((result.get("failed_exit_codes") or {}).values()))


def _without_rows(scores: dict[str, Any]) -> dict[str, Any]:
    """Scores for stdout: every figure, not the per-item rows (those are in eval.json)."""
    trim = lambda s: {k: v for k, v in s.items() if k != "rows"}  # noqa: E731
    if "subsets" not in scores:  # one set of labels, no subsets
        return trim(scores)
    return {"subsets": {n: trim(s) for n, s in scores["subsets"].items()}, "overall": trim(scores["overall"])}


COMMANDS = {
    "demo": cmd_demo,
    "eval": cmd_eval,
    "batch": cmd_batch,
    "patterns": cmd_patterns,
    "mcp": cmd_mcp,
    "init": cmd_init,
    "analyze": cmd_analyze,
    "run": cmd_run,
    "plan": cmd_plan,
    "canary": cmd_canary,
}


async def amain(argv: Sequence[str] | None = None) -> int:
    """The CLI as a coroutine (tests and hosts with a running loop call this)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return await _command(args)


async def _command(args: argparse.Namespace) -> int:
    """A parsed command run, its errors as one line and an exit code."""
    import logging
    import traceback

    from refinery.traces.redact import extra_patterns
    from refinery.traces.sources import temporary_folders

    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="refinery: %(levelname)s %(name)s: %(message)s"
    )
    try:
        if getattr(args, "out", None):  # before anything is fetched, rendered or written
            refuse_system_folder(args.out)
        # a trace fetched without --out is removed with the command; --redact-pattern in every redaction of it
        with temporary_folders(), extra_patterns(getattr(args, "redact_pattern", None) or ()):
            return await COMMANDS[args.command](args)
    except BrokenPipeError:
        raise  # the reader of stdout has gone: `main` ends quietly
    except (RefineryError, OSError) as exc:
        code = exit_code_for(exc) if isinstance(exc, RefineryError) else EXIT_USAGE
        if args.debug:
            traceback.print_exc()
        hint = hint_for(exc)
        print(f"refinery: error: {exc}" + (f" — {hint}" if hint else ""), file=sys.stderr)
        if getattr(args, "json", False):  # a script reading stdout learns what happened too
            print(json.dumps({"error": {"type": type(exc).__name__, "message": str(exc), "exit_code": code}}, indent=2))
        return code


EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT): 128 + 2
EXIT_TERMINATED = 143  # SIGTERM (a job runner, `kill`, a CI timeout): 128 + 15, as a shell reports it
INTERRUPTED = "refinery: interrupted; rerun the same command to resume"


class Terminated(BaseException):
    """Raised by the signal handler into code that is running (rendering a big trace): it passes
    every `except Exception`, so the code unwinds through its `finally`s and `async with`s."""


class _Stop:
    """SIGTERM (and Ctrl-C) as a job runner sends them, whatever the signal dispositions inherited.

    Why not SIGINT's handling: a background job started from a non-interactive shell (cron, CI,
    `nohup … &`) begins with SIGINT ignored, so a SIGTERM turned into SIGINT was ignored too, and
    asyncio's own Ctrl-C handling cancels only at the next `await` (after rendering ends).
    While the command runs, its task is cancelled (its connections close, what it holds is released):
    at once while the loop waits, else at the coroutine's next `await` (rendering runs in refinery's
    worker thread, so that is soon). Nothing is raised into the code that runs when the signal comes:
    that may be asyncio's or aiohttp's own (a socket's `send`), which logs and swallows any exception
    but `KeyboardInterrupt` and `SystemExit` ("Fatal write error on socket transport", a traceback).
    `Terminated` is raised only before the loop runs or once the command has ended."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.task: asyncio.Task[int] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signum = signum
        task, loop = self.task, self.loop
        if task is None or loop is None or task.done():
            raise Terminated  # before the loop runs, or after the command ended
        loop.call_soon_threadsafe(task.cancel)

    @property
    def exit_code(self) -> int:
        return EXIT_TERMINATED if self.signum == signal.SIGTERM else EXIT_INTERRUPTED

    async def run(self, args: argparse.Namespace) -> int:
        import asyncio

        self.task, self.loop = asyncio.current_task(), asyncio.get_running_loop()  # type: ignore[assignment]
        return await _command(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. SIGTERM ends it with exit 143, Ctrl-C with 130 — during rendering too, and
    whether or not SIGINT was ignored when the process started (a background job's SIGINT stays
    ignored). Artifacts are only ever replaced whole; the same command resumes.

    The arguments are parsed before asyncio is imported: `--help`, `--version` and a usage error
    answer without it (a fifth of a bare start-up)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    import asyncio

    stop = _Stop()
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, stop)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # an ignored SIGINT stays ignored
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, stop)
    try:
        return asyncio.run(stop.run(args))
    except (Terminated, KeyboardInterrupt, asyncio.CancelledError):
        print(INTERRUPTED, file=sys.stderr)
        return stop.exit_code
    except BrokenPipeError:  # `refinery plan … | head`: the reader has gone; end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return EXIT_OK
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def entry() -> None:
    """The `refinery` command as a process: `main`'s exit code. A SIGINT or SIGTERM that comes once
    `main` has returned (the run is over; the interpreter is tearing down) has nothing left to stop:
    it is ignored, not raised into the teardown (a traceback from `logging`'s exit handler after a
    finished run)."""
    try:
        code = main()
    except KeyboardInterrupt:  # Ctrl-C in the instant between `main` putting the handlers back and here
        code = EXIT_INTERRUPTED
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    entry()
