"""Render a `Trace` as a few stable, citable markdown files. Pure: no I/O.

Why this shape: the model can only cite what `file_search` retrieves, and a citation is only
useful if it leads back to a step of the run. So:

- every run gets a heading carrying its id verbatim (`[run_id: …]`), and long run sections
  repeat a one-line marker with that id every `marker_every_chars` characters, so each chunk
  the vector store cuts (800 tokens, 400 overlap; see `CHUNKING_STRATEGY`) carries the id of
  the run it came from;
- an LLM run shows only the messages that are new since the previous call of the same
  conversation, then its output in full: repeating the whole history per call buried the newest
  observation — where failures show — under copies of the system prompt;
- text is shown as text (never JSON-escaped), so a quote from the trace is found verbatim;
- when a field must be cut, its head and tail are kept, the newest message never is cut, and the
  marker says exactly what was cut;
- the index holds what every run shares once: the task, each agent's system prompt, the tool
  definitions, the failed runs and the run table;
- runs are grouped a fixed number per file under names that say which runs they hold
  (`<trace-id>_runs_001-006.md`), and the output is byte-for-byte deterministic, so a citation
  stays valid across re-renders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from refinery.core.models import DomainExpertExpectation, Trace, TraceRun
from refinery.core.pieces import joined_lines
from refinery.traces.markers import with_markers
from refinery.traces.redact import redact_value
from refinery.traces.shared_context import SharedContext, conversation_chain
from refinery.traces.source_text import FileLayout, cut, run_mark, source, strip_marks
from refinery.traces.text import digest, fence, message_fields, outline, scalar, text_of, truncate, view_text

__all__ = [
    "CHUNKING_STRATEGY",
    "RUN_HEADING",
    "RenderOptions",
    "RenderedFiles",
    "iter_marked_files",
    "render_trace_files",
    "run_sections",
    "safe_name",
    "truncate",
    "with_markers",
]

RenderedFile = tuple[str, str]

# The chunking the files are uploaded with. OpenAI's `auto` strategy is the same today (800/400),
# but it may change; saying it explicitly keeps the marker spacing below in step with it.
CHUNK_SIZE_TOKENS = 800
CHUNK_OVERLAP_TOKENS = 400
CHUNKING_STRATEGY: dict[str, Any] = {
    "type": "static",
    "static": {"max_chunk_size_tokens": CHUNK_SIZE_TOKENS, "chunk_overlap_tokens": CHUNK_OVERLAP_TOKENS},
}
# With windows of 800 tokens every 400, any stretch of text up to 400 tokens long lies wholly inside
# one chunk. A marker every 1,000 characters (≈ 250–330 tokens of English, JSON or code) plus a
# quoted sentence stays under that, so a quote and the id of its run land in one chunk.
DEFAULT_MARKER_EVERY_CHARS = 1000


@dataclass(frozen=True)
class RenderOptions:
    """How a trace is rendered into citable files: runs a file, the longest field kept whole, and
    how often a long field carries a marker naming its run (so any retrieved chunk says whose it is)."""

    runs_per_file: int = 6
    max_field_chars: int = 6000
    marker_every_chars: int = DEFAULT_MARKER_EVERY_CHARS

    def __post_init__(self) -> None:
        if self.runs_per_file < 1:
            raise ValueError("runs_per_file must be at least 1")
        if self.max_field_chars < 100:
            raise ValueError("max_field_chars must be at least 100")
        if self.marker_every_chars < 200:
            raise ValueError("marker_every_chars must be at least 200")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, limit: int = 64) -> str:
    """A file-name-safe form of `text` (ids and names come from third-party exports)."""
    cleaned = _UNSAFE.sub("-", text).strip("-.") or "trace"
    return cleaned[:limit]


def _run_label(seq: int, run: TraceRun) -> str:
    return f"step {run.step}" if run.step is not None else f"Run {seq:03d}"


def _render_messages(
    run: TraceRun,
    label: str,
    messages: list[Any],
    shared: SharedContext,
    opts: RenderOptions,
    chain: list[str],
    lines: list[str],
) -> None:
    """Input messages new since the previous call of the same conversation; the rest by reference.
    `chain` receives the conversation's digests (`_register_output` goes on from them). Each message's
    fields are read once, for its plain view and, when shown, its marked one. The lines go on `lines`."""
    fields = [message_fields(m) for m in messages]
    views = [(f[0], view_text(f)) for f in fields]
    chain += conversation_chain(views)  # digests of the plain text: the same whatever is marked
    known = 0
    earlier: tuple[str, str, int] | None = None
    for k in range(len(chain), 0, -1):
        if chain[k - 1] in shared.history:
            known, earlier = k, shared.history[chain[k - 1]]
            break
    for k, prefix in enumerate(chain, start=1):
        shared.history.setdefault(prefix, (run.id, label, k))
    lines += ["", f"### Input messages ({run.id})"]
    if earlier is not None:
        lines.append(
            f"Messages 0–{known - 1} of {len(views)} are the conversation already shown up to {earlier[1]} [run_id: "
            f"{earlier[0]}]; only the new ones follow."
        )
    for i in range(known, len(views)):
        role, text = views[i]
        if role == "system" and len(text) > 400:
            ref = shared.prompt_label(text, f"{label} [run_id: {run.id}]")
            lines += [f"#### message {i} · system", f"(system prompt {ref}, shown once in the index file)"]
            continue
        newest = i == len(views) - 1
        marked = view_text(fields[i], mark=True)
        lines += [
            f"#### message {i} · {role or 'message'}",
            fence(cut(marked, None if newest else opts.max_field_chars)),
        ]
    if known == len(views) and views:
        lines.append("(no new messages)")


def _register_output(
    run: TraceRun, label: str, chain: list[str], outputs: list[tuple[str, str]], shared: SharedContext
) -> None:
    """Remember the conversation including this call's answer, so the next call, which repeats
    that answer as its latest assistant message, shows only what came after it. `chain`: the
    input messages' digests, as `_render_messages` made them and noted them (the answer's go on
    from the last); `outputs`: the answer's plain views."""
    prev = chain[-1] if chain else ""
    known = len(chain)
    for role, text in outputs:
        prev = digest(prev, role, text)  # as `conversation_chain` goes on
        chain.append(prev)
    for k in range(known, len(chain)):  # the input's are noted (a second `setdefault` of each changed nothing)
        shared.history.setdefault(chain[k], (run.id, label, k + 1))


def _fields(title: str, rid: str, value: Mapping[str, Any], limit: int | None, lines: list[str]) -> None:
    """Inputs or outputs as one block of `key: value` text on `lines`; each field cut on its own (head
    and tail) to `limit` characters (None: whole). A lone `content` field is shown as its bare text."""
    if len(value) == 1 and "content" in value:
        parts = [text_of(value["content"], mark=True)]
    else:
        parts = [outline({key: item}, mark=True) for key, item in value.items()]
    body = "\n".join([cut(part, limit) for part in parts]) if limit is not None else "\n".join(parts)
    lines += ["", f"### {title} ({rid})", fence(body)]


def _render_run(seq: int, run: TraceRun, opts: RenderOptions, shared: SharedContext) -> str:
    """One run's section. Its lines are few strings each made once (the heading, the label and the
    fixed lines in one format each), and a field's value is looked at once: this is done for every
    run of a trace, tens of thousands in a big one."""
    rid, step, name = run.id, run.step, run.name
    if step is not None:
        label = f"step {step}"
        head = (
            f"## Step {step}: {name} [run_id: {rid}]\n\n- run_id: {rid}\n"
            f"- step: {step} (0-based, as numbered in the source)\n- agent: {name}"
        )
    else:
        label = f"Run {seq:03d}"
        head = f"## Run {seq:03d}: {name} [run_id: {rid}]\n\n- run_id: {rid}\n- name: {name}"
    lines = [f"{run_mark(rid)}{head}\n- type: {run.run_type.value}\n- status: {run.stated_status}"]
    if run.parent_run_id:
        lines.append(f"- parent_run_id: {run.parent_run_id}")
    if run.start_time:
        lines.append(f"- start_time: {run.start_time.isoformat()}")
    if run.end_time:
        lines.append(f"- end_time: {run.end_time.isoformat()}")
    duration = run.duration_ms  # a property: worked out once
    if duration is not None:
        lines.append(f"- duration_ms: {duration:.0f}")
    if run.dotted_order:
        lines.append(f"- dotted_order: {run.dotted_order}")
    meta = run.metadata
    if meta:
        meta = dict(meta)
        for key in ("model", "span_kind", "role"):
            if key in meta:
                simple = scalar(meta[key])
                if simple is not None:
                    lines.append(f"- {key}: {simple}")
                    del meta[key]
        if isinstance(meta.get("tokens"), dict):
            lines.append("- tokens: " + ", ".join(f"{k} {v}" for k, v in meta.pop("tokens").items()))

    inputs = run.inputs
    tools = messages = None
    if "tools" in inputs or "messages" in inputs:
        inputs = dict(inputs)
        tools = inputs.pop("tools", None)
        messages = inputs.pop("messages", None)
    if isinstance(tools, list) and tools:
        lines.append(f"- tools offered: {', '.join(shared.tool_names(tools))} (definitions in the index file)")
    if run.error:
        lines += ["", f"### Error ({rid})", fence(source(run.error, opts.max_field_chars))]
    chain: list[str] = []  # the input conversation's digests
    if isinstance(messages, list) and messages:
        _render_messages(run, label, messages, shared, opts, chain, lines)
    elif messages is not None:
        inputs["messages"] = messages
    if inputs:
        _fields("Inputs", rid, inputs, opts.max_field_chars, lines)
    outputs = run.outputs or {}
    if "messages" in outputs:
        out_messages = outputs["messages"]
        outputs = {k: v for k, v in outputs.items() if k != "messages"}
        if isinstance(out_messages, list) and out_messages:
            lines += ["", f"### Output messages ({rid})"]
            answer = [message_fields(msg) for msg in out_messages]  # read once: marked here, plain for the digests
            for i, fields in enumerate(answer):
                lines += [f"#### output {i} · {fields[0] or 'message'}", fence(view_text(fields, mark=True))]
            if isinstance(messages, list):
                _register_output(run, label, chain, [(f[0], view_text(f)) for f in answer], shared)
        elif out_messages is not None:
            outputs["messages"] = out_messages  # shown last, with the other fields
    if outputs:
        _fields("Outputs", rid, outputs, None, lines)
    if meta:
        events = meta.pop("events", None)
        if events:
            lines += ["", f"### Events ({rid})", fence(cut(outline(events, mark=True), opts.max_field_chars))]
        if meta:
            lines += ["", f"### Metadata ({rid})", fence(cut(outline(meta, mark=True), opts.max_field_chars))]
    return with_markers("\n".join(lines), f"[run_id: {rid} · {label} · continued]", opts.marker_every_chars)


# The run heading `_render_run` writes: readers of the rendered files (citation checks, the
# report) find each run's section by it.
RUN_HEADING = re.compile(r"^## (?:Run \d+|Step \d+): .*? \[run_id: ([^\]]+)\]$", re.M)


def run_sections(text: str) -> Iterator[tuple[str, str]]:
    """(run id, its section) for each run of a rendered file, in order."""
    heads = list(RUN_HEADING.finditer(text))
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        yield m.group(1), text[m.start() : end]


# --- files ------------------------------------------------------------------------------------
def trace_file_name(trace: Trace, first: int, last: int) -> str:
    return f"{safe_name(trace.trace_id)}_runs_{first:03d}-{last:03d}.md"


@dataclass
class _Tally:
    """What the index lists about all runs, gathered while the runs are rendered: one pass over
    them (a big chat log's runs are made from the file each time they are read)."""

    rows: list[str] = field(default_factory=list)  # the run table
    failed_ids: list[str] = field(default_factory=list)
    failed_rows: list[str] = field(default_factory=list)  # failed, or with exception events
    agent_steps: dict[str, list[int]] = field(default_factory=dict)

    def add(self, seq: int, run: TraceRun, file_name: str) -> None:
        step = f"{seq:03d}" + (f" (step {run.step})" if run.step is not None else "")
        self.rows.append(
            f"| {step} | {run.id} | {_cell(run.name)} | {run.run_type.value} | {run.stated_status} | {file_name} |"
        )
        if run.step is not None:
            self.agent_steps.setdefault(run.name, []).append(run.step)
        if run.is_failed:
            self.failed_ids.append(run.id)
        events = run.metadata.get("events") if run.metadata else None
        exceptions = events and any(isinstance(e, dict) and e.get("name") == "exception" for e in events)
        if run.is_failed or exceptions:
            what = (run.error or "exception event on a run whose status is not error").strip().splitlines()[0][:300]
            self.failed_rows.append(f"- {_run_label(seq, run)} [run_id: {run.id}] {run.name}: {what}")

    def agents(self) -> list[str]:
        return [
            f"- {name}: steps {', '.join(map(str, steps[:40]))}{' …' if len(steps) > 40 else ''}"
            for name, steps in self.agent_steps.items()
        ]


def _index_files(trace: Trace, tally: _Tally, shared: SharedContext, opts: RenderOptions) -> Iterator[tuple[str, str]]:
    """The index: one file, or — past `INDEX_LINES` lines (a trace of tens of thousands of runs)
    — that many lines a file, the first named as always and each part after it
    `<trace-id>_partNNN_index.md` (read as the index wherever the index is), the table's heading
    repeated where a part starts inside it.

    Why: a 100 MB chat log's index is 22 M characters; made, redacted, stripped of marks and read
    back as one string, each whole copy (88 MB when a character is past Latin-1) was one C call that
    held the host's event loop 50–160 ms, and no request could read more than a fraction of it."""
    tid = safe_name(trace.trace_id)
    lines, table = _index(trace, tally, shared, opts)
    if len(lines) <= INDEX_LINES:
        yield f"{tid}_index.md", joined_lines(lines, "\n")
        return
    starts = range(0, len(lines), INDEX_LINES)
    names = [f"{tid}_index.md", *(f"{tid}_part{k:03d}_index.md" for k in range(2, len(starts) + 1))]
    for k, start in enumerate(starts):
        part = lines[start : start + INDEX_LINES]
        if k:
            heading = [f"# Trace {trace.trace_id} — index, part {k + 1} of {len(starts)}", ""]
            part = heading + (_TABLE_HEAD if table[0] <= start < table[1] else []) + part
        if k + 1 < len(starts):
            part = [*part, "", f"(the index goes on in {names[k + 1]})"]
        yield names[k], joined_lines(part, "\n")


INDEX_LINES = 16_384  # lines of an index file: about 2 M characters of its table of runs
_TABLE_HEAD = ["| seq | run_id | name | type | status | file |", "|---|---|---|---|---|---|"]


def _index(
    trace: Trace, tally: _Tally, shared: SharedContext, opts: RenderOptions
) -> tuple[list[str], tuple[int, int]]:
    """The index's lines, and where its table's rows are among them (start, end)."""
    runs = trace.runs
    failed = tally.failed_ids
    meta = {k: v for k, v in trace.metadata.items() if k not in ("labels", "task", "task_source", "system_prompts")}
    index = [
        f"# Trace {trace.trace_id} — index",
        "",
        f"- trace_id: {trace.trace_id}",
        f"- project: {trace.project_name or '(none)'}",
        f"- runs: {len(runs)}",
        f"- failed runs: {len(failed)}"
        + (f" ({', '.join(failed[:50])}{' …' if len(failed) > 50 else ''})" if failed else ""),
    ]
    if trace.start_time:
        index.append(f"- start_time: {trace.start_time.isoformat()}")
    if trace.end_time:
        index.append(f"- end_time: {trace.end_time.isoformat()}")
    task = trace.metadata.get("task")
    if task:
        where = trace.metadata.get("task_source")
        index += ["", "## Task", *([f"(found in {where})"] if where else []), fence(str(task))]
    agents = tally.agents()
    if agents:
        index += ["", "## Agents (as named in the trace) and their steps", *agents]
    prompts = trace.metadata.get("system_prompts") or {}
    if prompts or shared.prompts:
        index += ["", "## System prompts"]
        for agent in sorted(prompts):
            index += [f"### System prompt of {agent}", fence(str(prompts[agent]))]
        for label, text in shared.prompts.values():
            index += [f"### System prompt {label}", fence(text)]
    if shared.tools:
        index += ["", "## Tool definitions"]
        for name, tool in shared.tools.values():
            index += [f"### Tool {name}", fence(outline(tool))]
    fails = tally.failed_rows
    if fails:
        index += ["", "## Failed runs (status error or exception events)", *fails]
    table = (0, 0)
    if runs:
        index += ["", *_TABLE_HEAD]
        table = (len(index), len(index) + len(tally.rows))
        index += tally.rows
    else:
        index += ["", "This trace has no runs."]
    if meta:
        index += ["", "## Trace metadata", fence(truncate(outline(meta), opts.max_field_chars))]
    return index, table


class RenderedFiles(Sequence[tuple[str, str]]):
    """Rendered files in memory: (name, text) pairs, each with its `FileLayout` (which runs it
    holds and which of its text is theirs), as `traces.spool.SpooledFiles` keeps them on disk."""

    def __init__(self, files: Iterable[tuple[str, str, FileLayout]] = ()) -> None:
        self._files = list(files)

    def __len__(self) -> int:
        return len(self._files)

    @overload
    def __getitem__(self, index: int) -> tuple[str, str]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, str]]: ...
    def __getitem__(self, index: int | slice) -> tuple[str, str] | list[tuple[str, str]]:
        if isinstance(index, slice):
            return [(n, t) for n, t, _ in self._files[index]]
        name, text, _ = self._files[index]
        return name, text

    def layout(self, index: int) -> FileLayout:
        return self._files[index][2]

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self._files]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RenderedFiles({[n for n, _, _ in self._files]!r})"


def render_trace_files(
    trace: Trace,
    *,
    options: RenderOptions | None = None,
    prompts: Mapping[str, str] | None = None,
    evals: Mapping[str, str] | None = None,
    expectation: DomainExpertExpectation | None = None,
) -> RenderedFiles:
    """The files to upload for `trace`: run files, index, prompts, evals, expectations.

    Order and bytes depend only on the inputs. Run files come first, in run order.
    """
    marked = iter_marked_files(trace, options=options, prompts=prompts, evals=evals, expectation=expectation)
    return RenderedFiles((name, *strip_marks(text)) for name, text in marked)


def iter_marked_files(
    trace: Trace,
    *,
    options: RenderOptions | None = None,
    prompts: Mapping[str, str] | None = None,
    evals: Mapping[str, str] | None = None,
    expectation: DomainExpertExpectation | None = None,
) -> Iterator[RenderedFile]:
    """The files with their source marks still in (`traces.source_text`), one at a time, so a
    caller (redaction, the spool) can hold one copy of the rendering and strip the marks after
    redacting."""
    opts = options or RenderOptions()
    tid = safe_name(trace.trace_id)
    tally = _Tally()
    shared = SharedContext({}, {}, {})
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
            "",
        ]
        body = [_render_run(first + i, run, opts, shared) for i, run in enumerate(chunk)]
        yield name, "\n".join(header) + "\n\n".join(body) + "\n"
        for i, run in enumerate(chunk):
            tally.add(first + i, run, name)

    yield from _index_files(trace, tally, shared, opts)

    for kind, contents in (("prompt", prompts), ("eval", evals)):
        for fname in sorted(contents or {}):
            text = (contents or {})[fname]
            yield (
                f"{tid}_{kind}_{safe_name(fname)}.md",
                f"# {kind.title()} file: {fname}\n\n{fence(truncate(redact_value(text), opts.max_field_chars * 4))}\n",
            )
    if expectation is not None:
        yield f"{tid}_expectations.md", f"# Expected behaviour (domain expert)\n\n{expectation.as_text()}\n"


def _cell(text: str) -> str:
    """A table cell: redacted before it is cut (a token cut short is no longer recognised)."""
    return redact_value(text).replace("|", "\\|").replace("\n", " ")[:80]
