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
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from refinery.analysis.plan import measure, plan_summary, planned_requests
from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
from refinery.app.cli_args import build_parser
from refinery.app.cli_commands import batch_source, cmd_mcp, cmd_patterns, emit, listed, trace_path
from refinery.app.exit_codes import EXIT_ACCESS, EXIT_FAILED, EXIT_OK, EXIT_USAGE, exit_code_for, hint_for
from refinery.app.inputs import InputFileError, expectation_for, load_expectation, read_files
from refinery.core.models import Trace
from refinery.errors import RefineryError
from refinery.traces import load_trace, load_traces
from refinery.traces.spool import file_stats

PLAN_JSON_BODY_BYTES = 1 << 19  # `plan --json` includes request bodies up to this much JSON (512 KB)


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


def _progress(stage: str, status: str, info: dict[str, Any]) -> None:
    detail = " ".join(f"{k}={v}" for k, v in info.items())
    print(f"refinery: {stage} {status} {detail}".rstrip(), file=sys.stderr)


def _indexing(counts: Any) -> None:
    print(
        f"refinery: indexing {counts.get('completed', 0)}/{counts.get('total', 0)} files "
        f"({counts.get('in_progress', 0)} in progress)",
        file=sys.stderr,
    )


async def _analysis(
    args: argparse.Namespace, trace: Any, prompts: dict[str, str], evals: dict[str, str], store_id: str | None
) -> int:
    from refinery.app import analyze_into

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
            "usage": usage,
        },
    )
    return EXIT_OK


async def cmd_init(args: argparse.Namespace) -> int:
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


async def cmd_analyze(args: argparse.Namespace) -> int:
    return await _analysis(args, None, {}, {}, args.store)


async def cmd_run(args: argparse.Namespace) -> int:
    args.trace = await trace_path(args, Path(args.out))
    trace = load_trace(args.trace, format=args.format, sample=args.sample)
    return await _analysis(args, trace, read_files(args.prompts), read_files(args.evals), None)


async def cmd_plan(args: argparse.Namespace) -> int:
    """What a run would upload, send and cost — built offline, so it needs no key. A file holding
    several traces (an eval log's samples) is planned trace by trace, unless `--sample` picks one."""
    args.trace = await trace_path(args, None)
    traces = (
        [load_trace(args.trace, format=args.format, sample=args.sample)]
        if args.sample
        else load_traces(args.trace, format=args.format)
    )
    planned = [_plan(args, t) for t in traces]
    if len(planned) == 1:
        text, data, over = planned[0]
        emit(args, text, data)
    else:
        total = sum(d["total"]["estimated_cost_usd"] or 0.0 for _, d, _ in planned)
        text = "\n\n".join(f"== sample {d['sample_id']} ==\n{t}" for t, d, _ in planned)
        text += f"\n\n{len(planned)} traces; estimated cost of all (worst case): ~${total:.2f}"
        emit(args, text, {"traces": [d for _, d, _ in planned], "estimated_cost_usd": round(total, 4)})
        over = sum(o for _, _, o in planned)
    if args.strict and over:
        print(f"refinery: error: --strict: {over} request(s) would exceed the context budget", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _plan(args: argparse.Namespace, trace: Trace) -> tuple[str, dict[str, Any], int]:
    """One trace's plan: its text, its JSON, and how many requests would exceed the budget."""
    expectation = expectation_for(args.expect, trace)
    prompts, evals = read_files(args.prompts), read_files(args.evals)
    # No client is built: the analyst makes one only when it first talks to the API, which
    # `plan` never does (its test runs with no key and fails on any request).
    analyst = StagedFailureAnalyst(model=args.model, redact=not args.no_redact, **_scale_options(args))
    files, redaction = analyst.rendering(trace, expectation, prompts, evals)
    # Bodies are measured one at a time; --json keeps them up to 512 KB (read inline, a big trace's
    # Stage 1 bodies hold the whole trace), --show-bodies all of them.
    keep = None if args.show_bodies else (PLAN_JSON_BODY_BYTES if args.json else 0)
    calls = measure(planned_requests(analyst, trace, files, expectation), keep)
    plan = plan_summary(analyst, trace, files, calls, latency_s=args.latency)
    data = {
        **plan,
        "files": [{"name": n, "bytes": size, "estimated_tokens": tokens} for n, size, tokens in file_stats(files)],
        "requests": [
            {
                "call": c.name,
                "estimated_input_tokens": c.input_tokens,
                "max_output_tokens": c.max_output_tokens,
                "body": c.body,
            }
            for c in calls
        ],
        "bodies_omitted": sum(c.body is None for c in calls) if args.json else None,
        "redactions": redaction.as_dict(),
        "task": {"text": trace.metadata.get("task"), "found_in": trace.metadata.get("task_source")},
        "stage1_reading": analyst.stage1_reading,
    }
    if args.compare_reading:
        other = StagedFailureAnalyst(
            model=args.model,
            redact=not args.no_redact,
            **{**_scale_options(args), "stage1_reading": _other_reading(analyst)},
        )
        data["stage1_other_reading"] = {
            "reading": other.stage1_reading,
            **plan_summary(other, trace, files, measure(planned_requests(other, trace, files, expectation)))["stages"][
                "stage1"
            ],
        }
    total = plan["total"]
    cost = (
        "unknown (no price for this model)"
        if total["estimated_cost_usd"] is None
        else f"~${total['estimated_cost_usd']:.2f}"
    )
    lines = [
        f"trace {trace.trace_id}: {plan['runs']} runs ({plan['failed_runs']} failed) → {plan['files']} files, "
        f"~{plan['file_tokens']} tokens; "
        f"stage 1 in {plan['groups']} group(s)",
        f"model {plan['model']}: input budget {plan['input_budget']} tokens a request; stage 1 reads its runs "
        f"{analyst.stage1_reading}; {STORE_LINES[analyst.store]}",
        _task_line(trace, args.expect),
        "",
        "stage    calls  input tokens  output tokens  largest request  est. cost",
    ]
    for key, row in plan["stages"].items():
        c = "n/a" if row["estimated_cost_usd"] is None else f"${row['estimated_cost_usd']:.3f}"
        lines.append(
            f"{key:<8} {row['calls']:>5}  {row['input_tokens']:>12}  {row['output_tokens']:>13}  "
            f"{row['largest_request']:>15}  {c:>9}"
        )
    lines += [
        f"total    {total['calls']:>5}  {total['input_tokens']:>12}  {total['output_tokens']:>13}",
        "",
        f"estimated cost (worst case): {cost}; duration at {plan['latency_s']:g} s a call: "
        f"~{total['estimated_duration_s']:.0f} s plus indexing",
        f"({plan['notes']})",
    ]
    lines += [f"warning: {w}" for w in plan["warnings"]]
    if args.compare_reading:
        here, there = plan["stages"]["stage1"], data["stage1_other_reading"]
        lines += ["", f"stage 1 read {analyst.stage1_reading} (this plan) vs {there['reading']}:"]
        for how, row in ((analyst.stage1_reading, here), (there["reading"], there)):
            c = "n/a" if row["estimated_cost_usd"] is None else f"${row['estimated_cost_usd']:.3f}"
            lines.append(
                f"  {how:<7} {row['calls']:>4} calls  {row['input_tokens']:>10} input tokens  "
                f"{row['output_tokens']:>8} output  {c:>9}"
            )
    if args.verbose:
        lines += [
            "",
            "files to upload:",
            *[f"  {r['name']}  {r['bytes']} bytes  ~{r['estimated_tokens']} tokens" for r in data["files"]],
        ]
        lines += [
            "",
            "requests (POST /v1/responses):",
            *[
                f"  {r['call']}: ~{r['estimated_input_tokens']} input tokens before retrieval, up to "
                f"{r['max_output_tokens']} output"
                for r in data["requests"]
            ],
        ]
    if args.show_bodies:
        lines += ["", *[f"--- {c.name}\n{json.dumps(c.body, indent=2)}" for c in calls]]
    redactions = redaction.as_dict()
    lines += [
        "",
        f"redacted: {redactions}"
        if redactions
        else "redacted: nothing found"
        if not args.no_redact
        else "redaction: off (--no-redact)",
    ]
    data["sample_id"] = trace.metadata.get("sample_id") or trace.trace_id
    return "\n".join(lines), data, sum("over the budget" in w for w in plan["warnings"])


STORE_LINES = {
    "hosted": "store hosted (uploaded, file_search)",
    "none": "store none (nothing uploaded: each stage reads inline)",
    "auto": "store auto: hosted where the endpoint has Files and Vector Stores (this plan), else none "
    "(see it with --store none)",
}


def _task_line(trace: Trace, expect: str | None) -> str:
    """Where the trace's task was found (the expectation defaults to it without --expect)."""
    task, where = trace.metadata.get("task"), trace.metadata.get("task_source") or "the log's question / task field"
    if not task:
        return "task: the trace states none" + ("" if expect else " (give --expect)")
    short = " ".join(str(task).split())
    short = short if len(short) <= 100 else short[:97] + "…"
    return f"task (from {where}): {short}" + ("" if expect else " — the expectation is to accomplish it")


def _other_reading(analyst: StagedFailureAnalyst) -> str:
    return "search" if analyst.stage1_reading == "inline" else "inline"


def _model_options(args: argparse.Namespace) -> dict[str, Any]:
    """How stage 1 reads and how hard a reasoning model thinks: `run`, `analyze`, `plan`, `batch`."""
    return {
        "stage1_reading": getattr(args, "stage1_reading", "inline"),
        "reasoning_effort": getattr(args, "reasoning_effort", None),
        "base_model": getattr(args, "base_model", None),
        "store": getattr(args, "store", "auto") if getattr(args, "command", None) != "analyze" else "hosted",
        "search_calls": max(0, getattr(args, "search_calls", 0) or 0),
    }


def _scale_options(args: argparse.Namespace) -> dict[str, Any]:
    """The analyst options for big traces that `plan`, `run` and `batch` share."""
    options: dict[str, Any] = {"stage1_concurrency": getattr(args, "concurrency", None) or 4, **_model_options(args)}
    if getattr(args, "context_window", None):
        options["context_window"] = args.context_window
    return options


async def cmd_canary(args: argparse.Namespace) -> int:
    from refinery.wire.responses_client import ResponsesClient

    async with ResponsesClient(api=args.api) as client:
        result = await client.canary(args.model)
    base = client.base_url
    offer = result.offer
    store = "hosted" if offer is not None and offer.hosted_store else "none"
    wire = "POST /v1/responses" if result.api == "responses" else "POST /v1/chat/completions"
    emit(
        args,
        f"ok: {args.model} on {result.host} answered {result.reply!r} by {wire}\n"
        f"files and vector stores: {'yes' if store == 'hosted' else 'no'} → a run reads with --store {store} "
        f"({STORE_LINES[store]}) over --api {result.api}",
        {
            "ok": True,
            "model": args.model,
            "base_url": base,
            "backend": result.backend,
            "response_id": result.response_id,
            "api": result.api,
            "offer": offer.as_dict() if offer is not None else None,
            "store": store,
        },
    )
    return EXIT_OK


async def cmd_batch(args: argparse.Namespace) -> int:
    from refinery.analysis.cost_ceiling import CostCeiling
    from refinery.app.batch import analyze_many, discover

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
    human = (
        f"{len(summary.outcomes) - len(failed)} done, {len(failed)} failed, {len(summary.skipped)} skipped "
        f"(already done); {summary.total_tokens} tokens; summary: {Path(args.out) / 'summary.md'}"
    )
    emit(args, human, summary.model_dump(mode="json"))
    if not failed:
        return EXIT_OK
    codes = {o.exit_code for o in failed}
    # every trace failed for one reason of access (key, quota, connection): say so; else "failed"
    return EXIT_ACCESS if codes == {EXIT_ACCESS} and len(failed) == len(summary.outcomes) else EXIT_FAILED


async def cmd_demo(args: argparse.Namespace) -> int:
    """The whole pipeline on the packaged example, against the bundled server: no key, no network."""
    from refinery.app.demo import STAND_IN_NOTICE, run_demo

    demo = await run_demo(args.out, progress=_progress, on_indexing=_indexing)
    report = demo.out / "report.html"
    human = (
        f"demo: ran upload, indexing and four stages against refinery's local test server ({demo.server_url}).\n"
        f"{STAND_IN_NOTICE}\n\nreport: {report} (and {demo.out / 'report.md'})"
    )
    emit(
        args,
        human,
        {
            "out": str(demo.out),
            "report": str(report),
            "files": demo.files,
            "stand_in_model": True,
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
    return EXIT_OK


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
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="refinery: %(levelname)s %(name)s: %(message)s"
    )
    try:
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
    except BrokenPipeError:  # `refinery plan … | head`: the reader has gone; end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return EXIT_OK
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
