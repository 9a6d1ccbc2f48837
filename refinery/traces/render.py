"""Render a `Trace` as a few stable, citable markdown files. Pure: no I/O.

Why this shape: the model can only cite what `file_search` retrieves, and a citation is only
useful if it leads back to a step of the run. So every run gets a heading carrying its id
verbatim, runs are grouped a fixed number per file under names that say which runs they hold
(`<trace-id>_runs_001-006.md`), an index maps run ids to files, and the output is byte-for-byte
deterministic so a citation stays valid across re-renders. Oversize fields are cut with a marker
that says how much was cut, so the model never mistakes a truncated value for the whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from refinery.core.models import DomainExpertExpectation, Trace, TraceRun

if TYPE_CHECKING:
    from refinery.traces.redact import RedactionReport

RenderedFile = tuple[str, str]


@dataclass(frozen=True)
class RenderOptions:
    runs_per_file: int = 6
    max_field_chars: int = 6000

    def __post_init__(self) -> None:
        if self.runs_per_file < 1:
            raise ValueError("runs_per_file must be at least 1")
        if self.max_field_chars < 100:
            raise ValueError("max_field_chars must be at least 100")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, limit: int = 64) -> str:
    """A file-name-safe form of `text` (ids and names come from third-party exports)."""
    cleaned = _UNSAFE.sub("-", text).strip("-.") or "trace"
    return cleaned[:limit]


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… [truncated: {len(text) - limit} of {len(text)} characters cut]"


def _dump(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}\n{text}\n{fence}"


def run_status(run: TraceRun) -> str:
    return "error" if run.is_failed else "success"


def _render_run(seq: int, run: TraceRun, opts: RenderOptions) -> str:
    lines = [f"## Run {seq:03d}: {run.name} [run_id: {run.id}]", ""]
    lines.append(f"- run_id: {run.id}")
    lines.append(f"- name: {run.name}")
    lines.append(f"- type: {run.run_type.value}")
    lines.append(f"- status: {run_status(run)}")
    if run.parent_run_id:
        lines.append(f"- parent_run_id: {run.parent_run_id}")
    if run.start_time:
        lines.append(f"- start_time: {run.start_time.isoformat()}")
    if run.end_time:
        lines.append(f"- end_time: {run.end_time.isoformat()}")
    if run.duration_ms is not None:
        lines.append(f"- duration_ms: {run.duration_ms:.0f}")
    if run.dotted_order:
        lines.append(f"- dotted_order: {run.dotted_order}")
    for title, value in (("Inputs", run.inputs), ("Outputs", run.outputs), ("Metadata", run.metadata)):
        if value:
            lines += ["", f"### {title} ({run.id})", _fence(truncate(_dump(value), opts.max_field_chars))]
    if run.error:
        lines += ["", f"### Error ({run.id})", _fence(truncate(run.error, opts.max_field_chars))]
    return "\n".join(lines)


def trace_file_name(trace: Trace, first: int, last: int) -> str:
    return f"{safe_name(trace.trace_id)}_runs_{first:03d}-{last:03d}.md"


def render_trace_files(
    trace: Trace,
    *,
    options: RenderOptions | None = None,
    prompts: Mapping[str, str] | None = None,
    evals: Mapping[str, str] | None = None,
    expectation: DomainExpertExpectation | None = None,
) -> list[RenderedFile]:
    """The files to upload for `trace`: run files, index, prompts, evals, expectations.

    Order and bytes depend only on the inputs. Run files come first, in run order.
    """
    opts = options or RenderOptions()
    tid = safe_name(trace.trace_id)
    files: list[RenderedFile] = []
    index_rows: list[str] = []
    runs = trace.runs
    for start in range(0, len(runs), opts.runs_per_file):
        chunk = runs[start : start + opts.runs_per_file]
        first, last = start + 1, start + len(chunk)
        name = trace_file_name(trace, first, last)
        header = [
            f"# Trace {trace.trace_id} — runs {first:03d} to {last:03d} of {len(runs)}",
            "",
            f"- trace_id: {trace.trace_id}",
            f"- project: {trace.project_name or '(none)'}",
            f"- file: {name}",
            "",
        ]
        body = [_render_run(first + i, run, opts) for i, run in enumerate(chunk)]
        files.append((name, "\n".join(header) + "\n\n".join(body) + "\n"))
        for i, run in enumerate(chunk):
            index_rows.append(f"| {first + i:03d} | {run.id} | {_cell(run.name)} | {run.run_type.value} | {run_status(run)} | {name} |")

    failed = trace.get_failed_runs()
    index = [
        f"# Trace {trace.trace_id} — index",
        "",
        f"- trace_id: {trace.trace_id}",
        f"- project: {trace.project_name or '(none)'}",
        f"- runs: {len(runs)}",
        f"- failed runs: {len(failed)}" + (f" ({', '.join(r.id for r in failed)})" if failed else ""),
    ]
    if trace.start_time:
        index.append(f"- start_time: {trace.start_time.isoformat()}")
    if trace.end_time:
        index.append(f"- end_time: {trace.end_time.isoformat()}")
    if runs:
        index += ["", "| seq | run_id | name | type | status | file |", "|---|---|---|---|---|---|", *index_rows]
    else:
        index += ["", "This trace has no runs."]
    if trace.metadata:
        index += ["", "## Trace metadata", _fence(truncate(_dump(trace.metadata), opts.max_field_chars))]
    files.append((f"{tid}_index.md", "\n".join(index) + "\n"))

    for kind, contents in (("prompt", prompts), ("eval", evals)):
        for fname in sorted(contents or {}):
            text = (contents or {})[fname]
            files.append(
                (
                    f"{tid}_{kind}_{safe_name(fname)}.md",
                    f"# {kind.title()} file: {fname}\n\n{_fence(truncate(text, opts.max_field_chars * 4))}\n",
                )
            )
    if expectation is not None:
        files.append((f"{tid}_expectations.md", f"# Expected behaviour (domain expert)\n\n{expectation.as_text()}\n"))
    return files


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:80]


def upload_files_for(
    trace: Trace,
    *,
    options: RenderOptions | None = None,
    prompts: Mapping[str, str] | None = None,
    evals: Mapping[str, str] | None = None,
    expectation: DomainExpertExpectation | None = None,
    redact: bool = True,
) -> tuple[list[RenderedFile], RedactionReport]:
    """The rendered files as they may leave the machine: redacted unless `redact=False`."""
    from refinery.traces.redact import RedactionReport, redact_files

    report = RedactionReport()
    files = render_trace_files(trace, options=options, prompts=prompts, evals=evals, expectation=expectation)
    return (redact_files(files, report) if redact else files), report
