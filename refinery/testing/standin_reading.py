"""What the stand-in model reads of a request: the runs, which of them failed and how, and what the
earlier stages concluded. Pure, and the test server's own (it imports nothing else of refinery).

The stand-in reads as a careful heuristic would, from the request text alone: a run's section
(`## Run 003: lookup_order [run_id: …]`) with its `- status:`, `- type:`, `- agent:` and
`- parent_run_id:` lines and its `### Error` block; the index's "Failed runs" list; the
expectations file's clauses; and the JSON of the earlier stages pasted into a later stage's
prompt. The run that failed is the first one the trace states failed (an error status), else the
first whose output reads like an error; its agent is the `- agent:` it names, else the nearest
enclosing agent run, else the run itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from refinery.testing.retrieval import Chunk

__all__ = ["Reading", "RunSeen", "prompt_documents", "read_request", "runs_in"]

_RUN_HEADING = re.compile(
    r"^## (?:Run|Step) (\d+): (.*?) \[run_id: ([^\]]+)\]\n(.*?)(?=^## (?:Run|Step) |\Z)", re.M | re.S
)
_FIELD_LINE = re.compile(r"^- ([a-z_]+): (.+)$", re.M)
_FIELD = re.compile(r"^[\w.\-]+: (.+)$")
_FILE_LINE = re.compile(r"^- file: (\S+)$", re.M)
_FAILED_LINE = re.compile(r"^- (?:Run|Step) (\d+) \[run_id: ([^\]]+)\] (.*?): (.+)$", re.M)
_SECTION = re.compile(r"^### (.+?)(?: \([^)]*\))?$")
# an output line that reads like an error: an error's own words, an exception's name, a failure said
_READS_LIKE_ERROR = re.compile(
    r"^(?:error|exception|traceback|fatal)\b|\b[A-Z]\w*(?:Error|Exception)\b|\b(?:failed|timed out|not found|"
    r"permission denied|unauthori[sz]ed|forbidden)\b",
    re.I,
)
_PRIOR = re.compile(r"^Stage ([1-3]) Results:\s*$", re.M)


@dataclass(frozen=True)
class RunSeen:
    """One run as its section shows it. `failed`: the trace states it (error status); `error`: the
    error as the trace writes it (one line) — for a run that does not state one, an output line that
    reads like an error."""

    seq: int
    name: str
    run_id: str
    failed: bool
    filename: str
    ok: bool = False
    quote: str = ""  # a line of the run's own text, for fields that quote evidence
    kind: str = ""
    parent: str = ""
    agent: str = ""
    error: str = ""
    inputs: str = ""
    outputs: str = ""
    tool_calls: tuple[str, ...] = ()


@dataclass
class Reading:
    """Everything the stand-in knows about the request it answers."""

    runs: list[RunSeen]
    failures: list[RunSeen]  # the runs that failed, in trace order: stated errors first found, then the rest
    clauses: list[str] = field(default_factory=list)  # the expectations, one clause each
    files: list[str] = field(default_factory=list)
    prior: dict[str, Any] = field(default_factory=dict)  # earlier stages' JSON, by stage number

    @property
    def failure(self) -> RunSeen | None:
        """The decisive run: the first stated failure, else the first output that reads like an error."""
        stated = [r for r in self.failures if r.failed]
        return (stated or self.failures or [None])[0]

    def agent_of(self, run: RunSeen) -> str:
        """A run's agent: the one it names, else the nearest enclosing agent run, else its own name."""
        if run.agent:
            return run.agent
        by_id = {r.run_id: r for r in self.runs}
        seen: set[str] = set()
        parent = by_id.get(run.parent)
        while parent is not None and parent.run_id not in seen:
            if parent.kind in ("agent", "chain") or parent.agent:
                return parent.agent or parent.name
            seen.add(parent.run_id)
            parent = by_id.get(parent.parent)
        return run.name


def _fenced(section: str) -> list[tuple[str, str]]:
    """(the `###` heading it is under, line) for each line inside a fenced block — where the trace's
    own text is shown, never a heading field, a marker or a note."""
    fence: str | None = None
    heading = ""
    lines = []
    for line in section.splitlines():
        text = line.strip()
        if fence is None and (m := _SECTION.match(text)):
            heading = m.group(1).lower()
        elif fence is None and text.startswith("```") and set(text) == {"`"}:
            fence = text
        elif fence is not None and text == fence:
            fence = None
        elif fence is not None and text and not text.startswith("[run_id:"):
            lines.append((heading, text))
    return lines


def _first(lines: Sequence[tuple[str, str]], *, under: tuple[str, ...] = (), whole: bool = False) -> str:
    """The first content line long enough to quote (else the first at all), as a `key: value`
    field's value (`whole`: the line as it stands), under the headings that start with one of
    `under` (any heading when empty)."""
    best = ""
    for heading, text in lines:
        if under and not heading.startswith(under):
            continue
        m = None if whole else _FIELD.match(text)  # a rendered field's value is what the trace said
        value = m.group(1) if m else text
        if value.endswith(":"):  # a key whose value is on the lines below
            continue
        if len(value) > 8:
            return value[:160]
        best = best or value[:160]
    return best


def _reads_like_error(line: str) -> bool:
    field = _FIELD.match(line)  # `output: Error: …` reads like an error by its value
    return bool(_READS_LIKE_ERROR.search(line) or (field and _READS_LIKE_ERROR.search(field.group(1))))


def _run(m: re.Match[str], filename: str) -> RunSeen:
    body = m.group(4)
    fields = dict(reversed(_FIELD_LINE.findall(body.split("\n### ", 1)[0])))
    lines = _fenced(body)
    failed = fields.get("status") == "error"
    error = _first(lines, under=("error",), whole=True) if failed else ""
    if not error and not failed:
        outs = [t for h, t in lines if h.startswith("output")]
        error = next((t[:160] for t in outs if _reads_like_error(t)), "")
    calls = re.findall(r"^\s+name: (\S+)$", body.split("tool_calls:", 1)[1], re.M) if "tool_calls:" in body else []
    return RunSeen(
        int(m.group(1)),
        m.group(2),
        m.group(3),
        failed,
        filename,
        fields.get("status") == "ok",
        _first(lines),
        fields.get("type", ""),
        fields.get("parent_run_id", ""),
        fields.get("agent", ""),
        error,
        _first(lines, under=("input",)),
        _first(lines, under=("output",)),
        tuple(dict.fromkeys(calls)),
    )


def runs_in(chunks: Sequence[Chunk]) -> list[RunSeen]:
    """The runs whose headings appear in the chunks, in trace order, once each (the longest
    section seen of each: chunks overlap and cut sections short)."""
    seen: dict[str, tuple[int, RunSeen]] = {}
    for c in chunks:
        for m in _RUN_HEADING.finditer(c.text):
            rid = m.group(3)
            if rid not in seen or len(m.group(4)) > seen[rid][0]:
                seen[rid] = (len(m.group(4)), _run(m, c.filename))
    return sorted((r for _, r in seen.values()), key=lambda r: r.seq)


def prompt_documents(user_text: str) -> list[Chunk]:
    """Rendered trace files given in the prompt itself (a Stage 1 that reads its group inline):
    each from its `- file: NAME` header line to the next, read like a retrieved chunk."""
    heads = list(_FILE_LINE.finditer(user_text))
    docs = []
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(user_text)
        docs.append(Chunk(f"prompt:{m.group(1)}", m.group(1), user_text[m.start() : end], {}))
    return docs


def _prior(user_text: str) -> dict[str, Any]:
    """The earlier stages' JSON pasted into the prompt (`Stage 1 Results:` and its JSON line)."""
    found: dict[str, Any] = {}
    decoder = json.JSONDecoder()
    for m in _PRIOR.finditer(user_text):
        start = m.end()
        while start < len(user_text) and user_text[start].isspace():
            start += 1
        try:
            found[m.group(1)] = decoder.raw_decode(user_text, start)[0]
        except ValueError:
            continue
    return found


def _clauses(chunks: Sequence[Chunk]) -> list[str]:
    """The expectation's clauses: each `Label: text` line and each listed issue of the expectations file."""
    out: list[str] = []
    for c in chunks:
        if not c.text.lstrip().startswith("# Expected behaviour"):
            continue
        for line in c.text.splitlines():
            text = line.strip()
            if text.startswith("- "):
                out.append(text[2:])
            elif ": " in text and not text.startswith("#") and not text.endswith(":"):
                out.append(text)
    return list(dict.fromkeys(out))


def _from_prior(prior: dict[str, Any]) -> list[RunSeen]:
    """Failures the earlier stages named, for a stage that sees no run sections: Stage 3's decisive
    step (with its agent and error), else Stage 1's runs with an error status."""
    timeline = {str(e.get("run_id")): e for e in (prior.get("1") or {}).get("timeline", []) if isinstance(e, dict)}
    diagnosis = prior.get("3") or {}
    step = str((diagnosis.get("decisive_step") or {}).get("run_id") or "")
    if step:
        quoted = [e for e in diagnosis.get("errors") or [] if e.get("run_id") == step]
        agent = str(diagnosis.get("responsible_agent") or "")
        error = str(quoted[0].get("evidence", "")) if quoted else ""
        entry = timeline.get(step, {})
        cited = (entry.get("citations") or [{}])[0]
        seq = int(entry.get("sequence") or 0)
        name = str(entry.get("run_name") or agent or step)
        return [RunSeen(seq, name, step, True, str(cited.get("file", "")), agent=agent, error=error)]
    events = (prior.get("1") or {}).get("events", [])
    flagged = {str(e.get("run_id")) for e in events if isinstance(e, dict) and e.get("kind") in ("failure", "anomaly")}
    # stated errors, else outputs Stage 1 found reading like an error, else the events' own words
    entries = [e for e in timeline.values() if e.get("status") == "error"] or [
        e for rid, e in timeline.items() if rid in flagged
    ]
    if not entries:  # flagged runs the timeline left out
        entries = [
            {"run_id": e.get("run_id"), "run_name": e.get("run_id"), "key_outputs": e.get("description", ""), **e}
            for e in events
            if isinstance(e, dict) and e.get("run_id") and e.get("kind") in ("failure", "anomaly")
        ]
    return [
        RunSeen(
            int(e.get("sequence") or 0),
            str(e.get("run_name", "")),
            str(e.get("run_id")),
            e.get("status") == "error",
            str(((e.get("citations") or [{}])[0]).get("file", "")),
            error=str(e.get("key_outputs", "")),
        )
        for e in entries
    ]


def read_request(chunks: Sequence[Chunk], user_text: str) -> Reading:
    """The stand-in's reading of one request: its retrieved chunks and its prompt."""
    chunks = [*chunks, *prompt_documents(user_text)]
    runs = runs_in(chunks)
    by_id = {r.run_id: r for r in runs}  # the runs seen, and the failed runs only listed
    listed: dict[str, RunSeen] = {}  # the index's "Failed runs" list: the error of a run not seen whole
    for c in chunks:
        for m in _FAILED_LINE.finditer(c.text):
            listed.setdefault(
                m.group(2), RunSeen(int(m.group(1)), m.group(3), m.group(2), True, c.filename, error=m.group(4)[:160])
            )
    for rid, seen in listed.items():
        run = by_id.get(rid)
        if run is not None and run.failed and not run.error:
            by_id[rid] = replace(run, error=seen.error)
        elif run is None:
            by_id[rid] = seen
    runs = [by_id[r.run_id] for r in runs]
    prior = _prior(user_text)
    known = sorted(by_id.values(), key=lambda r: r.seq)
    failures = [r for r in known if r.failed or r.error] or _from_prior(prior)
    files = list(dict.fromkeys(c.filename for c in chunks))
    return Reading(runs, failures, _clauses(chunks), files, prior)
