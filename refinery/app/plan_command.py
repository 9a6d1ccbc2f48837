"""`refinery plan`: what a run would upload, send and cost, built offline (no key, no network).

Apart from `cli.py` because it is a command of its own with its own report (the table of calls,
tokens and cost per stage; the other Stage 1 reading for comparison), and the options it shares
with `run` and `batch` (`_model_options`, `_scale_options`) live beside it. The analyst, loaders and
redaction are imported when the command runs: `cli.py` imports this module for every command, `--help`
included.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from refinery.app.cli_commands import emit, trace_path
from refinery.app.exit_codes import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
    from refinery.core.models import Trace

__all__ = ["STORE_LINES", "cmd_plan"]

PLAN_JSON_BODY_BYTES = 1 << 19  # `plan --json` includes request bodies up to this much JSON (512 KB)


async def cmd_plan(args: argparse.Namespace) -> int:
    """What a run would upload, send and cost — built offline, so it needs no key. A file holding
    several traces (an eval log's samples) is planned trace by trace, unless `--sample` picks one."""
    from refinery.traces import load_trace, load_traces

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
    from refinery.analysis.inline_reading import choose_reading
    from refinery.analysis.plan import measure, plan_summary, planned_requests
    from refinery.analysis.staged_failure_analyst import StagedFailureAnalyst
    from refinery.app.inputs import expectation_for, read_files
    from refinery.core.pricing import BATCH_PRICE_FACTOR, batch_prices
    from refinery.traces.spool import file_stats

    expectation = expectation_for(args.expect, trace)
    prompts, evals = read_files(args.prompts), read_files(args.evals)
    # No client is built: the analyst makes one only when it first talks to the API, which
    # `plan` never does (its test runs with no key and fails on any request).
    # `--store auto` planned as the run will read: decided from the endpoint's address, no request
    choice = choose_reading(_model_options(args)["store"], None, False, getattr(args, "api", "auto"))
    batch_api = getattr(args, "batch_api", False)  # read inline, priced at the Batch API's rate
    options = {**_scale_options(args), "store": choice.store}
    if batch_api:
        options.update(store="none", search_calls=0)
    analyst = StagedFailureAnalyst(model=args.model, redact=not args.no_redact, **options)
    files, redaction = analyst.rendering(trace, expectation, prompts, evals)
    # Bodies are measured one at a time; --json keeps them up to 512 KB (read inline, a big trace's
    # Stage 1 bodies hold the whole trace), --show-bodies all of them.
    keep = None if args.show_bodies else (PLAN_JSON_BODY_BYTES if args.json else 0)
    calls = measure(planned_requests(analyst, trace, files, expectation), keep, files)
    plan = plan_summary(
        analyst,
        trace,
        files,
        calls,
        latency_s=args.latency,
        expectation=expectation,
        prices=batch_prices() if batch_api else None,
    )
    if batch_api:
        plan["priced_at"] = f"Batch API rate ({BATCH_PRICE_FACTOR:.0%} of the listed price)"
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
        "task": {"text": _shown_task(args, trace), "found_in": trace.metadata.get("task_source")},
        "stage1_reading": analyst.stage1_reading,
        "store_reason": choice.reason,
    }
    if args.compare_reading:
        other = StagedFailureAnalyst(
            model=args.model,
            redact=not args.no_redact,
            **{**options, "stage1_reading": _other_reading(analyst)},
        )
        data["stage1_other_reading"] = {
            "reading": other.stage1_reading,
            **plan_summary(other, trace, files, measure(planned_requests(other, trace, files, expectation), 0, files))[
                "stages"
            ]["stage1"],
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
        f"reading: {choice.reason}; {choice.change}",
        _task_line(_shown_task(args, trace), trace, args.expect),
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
        _naive_line(plan["naive_prompt"]),
        "",
        f"estimated cost (worst case): {cost}; duration at {plan['latency_s']:g} s a call: "
        f"~{total['estimated_duration_s']:.0f} s plus indexing"
        if not batch_api
        else f"estimated cost (worst case) at the {plan['priced_at']}: {cost}; results within 24 h a stage",
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
}


def _naive_line(naive: dict[str, Any]) -> str:
    """The naive one-prompt baseline beside the plan's own input tokens."""
    ratio = f"{naive['planned_vs_naive']:.2f} ×" if naive["planned_vs_naive"] is not None else "n/a"
    return (
        f"naive    {1:>5}  {naive['input_tokens']:>12}  (the whole rendered trace and the instructions in one "
        f"prompt; this plan sends {ratio} that, worst case)"
    )


def _shown_task(args: argparse.Namespace, trace: Trace) -> str | None:
    """The trace's task as `plan` may print it: redacted like everything else it shows (it is the
    trace's own text), unless redaction is off."""
    from refinery.traces.redact import RedactionReport, redact_text

    task = trace.metadata.get("task")
    if task is None or args.no_redact:
        return task
    return redact_text(str(task), RedactionReport())


def _task_line(task: str | None, trace: Trace, expect: str | None) -> str:
    """Where the trace's task was found (the expectation defaults to it without --expect)."""
    where = trace.metadata.get("task_source") or "the log's question / task field"
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
