"""`refinery batch … --batch-api`, `refinery batch OUT --status` and `refinery batch OUT --cancel`.

Kept apart from `cli.py`: the Batch API's client, its transport and the engine are loaded only
when asked for, and the command line's one `batch` command stays one entry.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from refinery.app.cli_commands import batch_source, emit, listed
from refinery.app.exit_codes import EXIT_OK, exit_code_of_many
from refinery.errors import UserInputError

__all__ = ["cmd_batch_api", "wants_batch_api"]


def wants_batch_api(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "batch_api", False) or getattr(args, "status", False) or getattr(args, "cancel", False))


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")  # one write: a signal between text and line break glued lines


def _folder(args: argparse.Namespace) -> Path:
    """The output folder `--status` and `--cancel` read: SOURCE when given, else `--out`."""
    return Path(args.source or args.out)


def _transport(args: argparse.Namespace) -> Any:
    import aiohttp

    from refinery.wire.transport import OpenAITransport

    timeout = aiohttp.ClientTimeout(total=args.timeout, connect=min(30.0, args.timeout))
    return OpenAITransport(timeout=timeout, tpm=args.tpm, rpm=args.rpm)


def _poll(args: argparse.Namespace) -> Any:
    from refinery.app.batch_api_submit import Poll

    return Poll(first=args.poll_every, most=max(args.poll_every, 300.0))


async def cmd_batch_api(args: argparse.Namespace) -> int:
    from refinery.app import batch_api_run as engine
    from refinery.app.batch import discover, failure_line
    from refinery.app.plan_command import _model_options

    if args.status:
        status = await engine.batch_status(_folder(args))
        lines = [f"run {status['run_id']}: {status['rounds']} round(s)"]
        lines += [
            f"  {b['part']}: {b['batch_id'] or '(not made)'} {b['status']}, {b['requests']} requests "
            f"{b['counts'] or ''}{'; files left: ' + ', '.join(b['files_left']) if b['files_left'] else ''}"
            for b in status["batches"]
        ]
        lines += [f"  {name}: {where}" for name, where in sorted(status["traces"].items())]
        emit(args, "\n".join(lines), status)
        return EXIT_OK
    if getattr(args, "api", None) == "chat":
        raise UserInputError("--batch-api sends /v1/responses lines; it does not take --api chat")
    from refinery.wire.batch_api import BatchAPI

    transport = _transport(args)
    async with transport:
        api = BatchAPI(transport)
        if args.cancel:
            cancelled = await engine.cancel_batches(_folder(args), api, poll=_poll(args), emit=_say)
            emit(
                args,
                f"cancelled {len(cancelled)} batch(es): {', '.join(cancelled) or 'none open'}",
                {"cancelled": cancelled},
            )
            return EXIT_OK
        items = await listed(args) if args.from_platform else discover(batch_source(args), args.expect)
        from refinery.analysis.cost_ceiling import CostCeiling
        from refinery.wire.responses_client import ResponsesClient

        ceiling = CostCeiling(args.max_cost, args.base_model or args.model) if args.max_cost is not None else None
        summary = await engine.analyze_by_batch(
            items,
            out_dir=args.out,
            api=api,
            model=args.model,
            concurrency=args.concurrency,
            progress=_say,
            poll=_poll(args),
            fallback=transport if args.sync_retry else None,
            patterns_client=None if args.no_llm else ResponsesClient(transport=transport),
            patterns_max_cost_usd=args.max_cost,
            cost_ceiling=ceiling,
            **_model_options(args),
        )
    failed = summary.failed
    human = "\n".join(
        [
            *(failure_line(o) for o in sorted(failed, key=lambda o: o.name)),
            f"{len(summary.outcomes) - len(failed)} done, {len(failed)} failed through the Batch API; "
            f"{summary.total_tokens} tokens; summary: {Path(args.out) / 'summary.md'}",
        ]
    )
    emit(args, human, summary.model_dump(mode="json"))
    return exit_code_of_many(len(summary.outcomes) - len(failed), [o.exit_code for o in failed])
