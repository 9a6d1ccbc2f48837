"""Everything a report shows, gathered once from the analysis and the trace, so the Markdown and
the HTML cannot disagree. Pure.

Why the trace is gathered too: a claim is only easy to check when its evidence is one click
away. So each run becomes a row of the run tree (depth, start and duration where the trace has
times), every citation resolves to a run, and each cited run's rendered (redacted) text is kept
so the report can embed it beside the claim.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from refinery.analysis.stage_results import StagedAnalysisResult
from refinery.core.gc_freeze import survivors_frozen
from refinery.core.models import Trace
from refinery.traces.redact import redact_text
from refinery.traces.render import run_sections, safe_name

_RUN_REF = re.compile(r"\brun\s*#?\s*0*(\d+)\b", re.IGNORECASE)
_STEP_REF = re.compile(r"\bstep[\s#-]*(\d+)\b", re.IGNORECASE)  # a step log's own numbering (run id step-<n>)
_RUN_FILE = re.compile(r"_runs_(\d+)-(\d+)\.md$")
_MARKER_LINES = re.compile(r"^(?:`{3,}\n)?\[run_id: [^\]]+ · continued\]\n(?:`{3,}\n)?", re.M)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


STAND_IN = (
    "These answers come from refinery's stand-in model (a test double: a deterministic heuristic, no model read "
    "the trace); they show the pipeline, not an analysis."
)


MAX_UNCITED_FAILED = 500  # failed runs nobody cited whose text a report embeds (a big trace's may be many)


def is_stand_in(models: Iterable[str | None]) -> bool:
    """Whether any answer came from the test server's stand-in model (it names itself so)."""
    return any("standin" in str(m or "") for m in models)


@dataclass(slots=True)  # one a run: slots keep a big trace's rows small
class RunRow:
    seq: int
    run_id: str
    name: str
    status: str
    run_type: str = ""
    depth: int = 0
    start_ms: float | None = None  # from the trace's start
    duration_ms: float | None = None
    cited: bool = False
    decisive: bool = False
    text: str | None = None  # the run's rendered, redacted section, for cited and failed runs
    step: int | None = None  # the source's own step number (a step log's), shown instead of the sequence
    agent: str = ""  # the agent it ran under: the nearest agent run holding it (itself, for an agent run)

    @property
    def anchor(self) -> str:
        return "run-" + safe_name(self.run_id, 120)

    @property
    def number(self) -> str:
        """How the timeline numbers the run: the trace's own step where it has one (a step log's
        run `step-0` is step 0, not #1), else its place in the trace."""
        return f"step {self.step}" if self.step is not None else f"#{self.seq}"

    @property
    def title(self) -> str:
        """How a cited run is titled: its agent (when it ran under another), its step and its name —
        "RefundBot › #3 lookup_order"; the id goes beside it."""
        own = f"{self.number} {self.name}"
        return f"{self.agent} › {own}" if self.agent and self.agent != self.name else own


@dataclass
class Cite:
    file: str
    section: str
    run: RunRow | None

    @property
    def label(self) -> str:
        """What the link shows: the citation as written, and the run it opens when the citation
        does not name it (a whole file, a range) — the link opens that one run's text."""
        cited = f"{self.file} § {self.section}" if self.section else self.file
        if self.run is not None and self.run.run_id not in cited:
            return f"{cited} → run {self.run.run_id}"
        return cited


@dataclass
class ReportView:
    trace_id: str
    summary: str
    runs: list[RunRow]
    findings: list[dict[str, Any]] = field(default_factory=list)
    expectations: list[dict[str, Any]] = field(default_factory=list)
    chains: list[dict[str, Any]] = field(default_factory=list)
    diagnosis: dict[str, Any] | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    localisation: dict[str, Any] | None = (
        None  # responsible agent, decisive step, errors (each with its run and whether it verified)
    )
    verification: dict[str, dict[str, Any]] = field(default_factory=dict)  # per stage: cited, verified, unverified
    stand_in: bool = False
    reading: str = ""  # how the stages read the trace and over which wire ("store none (inline) · chat completions")

    @property
    def cited_runs(self) -> list[RunRow]:
        """The runs whose text the report embeds: cited ones, and failed ones (cited or not)."""
        return [r for r in self.runs if r.text]

    @property
    def total(self) -> dict[str, Any]:
        return dict(self.usage.get("total") or {})

    @property
    def cost_text(self) -> str:
        cost = self.total.get("estimated_cost_usd")
        return "n/a" if cost is None else f"${cost:.4f} (estimate)"


def missed(check: dict[str, Any]) -> str:
    """A stage's unverified citations, the first five, in one line ("—" when none)."""
    return "; ".join(f"{u['path']}: {u['problem']}" for u in check["unverified"][:5]) or "—"


def clean(text: str) -> str:
    """Model text without the list markers it sometimes starts lines with ("- The lookup failed")."""
    lines = [_BULLET.sub("", line) for line in str(text).strip().splitlines()]
    return "\n".join(line for line in lines if line.strip())


def items(text: str) -> list[str]:
    """A field the model wrote as a bulleted list, as its items (one item when it is prose)."""
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    if len(lines) > 1 and all(_BULLET.match(line) for line in lines):
        return [_BULLET.sub("", line).strip() for line in lines]
    return [clean(text)]


def sections(files: Iterable[tuple[str, str]], wanted: Collection[str] | None = None) -> dict[str, str]:
    """Each run's rendered section by run id (only the `wanted` ones, when given: a big trace's
    files are read one at a time and only what the report shows is kept), without the repeated
    run-id markers, redacted (files uploaded with `redact=False` are not)."""
    out: dict[str, str] = {}
    layout = getattr(files, "layout", None)
    for i, (_, text) in enumerate(files):
        runs = ((rid, text[start:end]) for rid, start, end in layout(i).sections()) if layout else run_sections(text)
        for rid, section in runs:
            if wanted is None or rid in wanted:
                out[rid] = redact_text(_MARKER_LINES.sub("", section).strip())
    return out


def reading_line(meta: dict[str, dict[str, Any]]) -> str:
    """How the stages read the trace and over which wire, from their metadata ('' when unrecorded)."""
    last = next((meta[k] for k in ("stage4", "stage3", "stage2", "stage1") if meta.get(k, {}).get("reading")), None)
    if last is None:
        return ""
    store = "hosted vector store (file_search)" if last["reading"] == "hosted" else "no store (read inline)"
    wire = "chat completions" if last.get("api") == "chat" else "responses"
    return f"{store} · {wire}"


def _rows(result: StagedAnalysisResult, trace: Trace | None) -> list[RunRow]:
    """A row for every run, in one pass over the runs (a big chat log's runs are made from the
    file each time they are read), each distinct name held once. Names and ids are redacted as
    the uploaded files were: a report is shared further than the trace."""
    if trace is None:
        if result.trace_analysis is None:
            return []
        return [RunRow(e.sequence, e.run_id, e.run_name, e.status) for e in result.trace_analysis.timeline]
    origin = trace.start_time or min((r.start_time for r in trace.runs if r.start_time), default=None)
    rows: list[RunRow] = []
    parent_of: dict[str, str] = {}
    names: dict[str, str] = {}
    for i, r in enumerate(trace.runs, start=1):
        if i % 1024 == 0:
            survivors_frozen()  # a big trace's rows live until the report is written (`core.gc_freeze`)
        rid = redact_text(r.id)
        if r.parent_run_id is not None and r.parent_run_id != r.id:
            parent_of[rid] = redact_text(r.parent_run_id)
        start = (r.start_time - origin).total_seconds() * 1000 if origin and r.start_time else None
        name = names.get(r.name)
        if name is None:
            name = names[r.name] = redact_text(r.name)
        row = RunRow(i, rid, name, r.stated_status, r.run_type.value, 0, start, r.duration_ms, step=r.step)
        rows.append(row)
    known = {row.run_id: row for row in rows}
    parent = {k: v for k, v in parent_of.items() if v in known}
    for row in rows:
        depth, seen, node = 0, {row.run_id}, row.run_id
        agent = row.name if row.run_type == "agent" else ""
        while node in parent and parent[node] not in seen and depth < 50:
            node = parent[node]
            seen.add(node)
            depth += 1
            if not agent and known[node].run_type == "agent":
                agent = known[node].name
        row.depth, row.agent = depth, agent
    return rows


def _longest_first(ids: Iterable[str]) -> list[str]:
    """`sorted(ids, key=len, reverse=True)` (a stable sort: equal lengths in their order), made by
    grouping by length in a loop: the sort of a 100 MB trace's 200,000 run ids was one C call that
    held the host's loop about 50 ms."""
    by_length: dict[int, list[str]] = {}
    for rid in ids:
        by_length.setdefault(len(rid), []).append(rid)
    return [rid for length in sorted(by_length, reverse=True) for rid in by_length[length]]


class CitationResolver:
    """The run a citation (file, section) points at: a run id in the section, else `step-N`,
    `Run N` or the run file's first run. One index of the rows, shared with `gather`."""

    def __init__(self, rows: list[RunRow], first_run_of_file: Mapping[str, str] | None = None) -> None:
        """`first_run_of_file`: the renderer's word on which run opens each run file (from the
        files' layouts); without a rendering at hand, the run file's name says it."""
        self.by_id = {r.run_id: r for r in rows}
        self._first_run_of_file = first_run_of_file or {}
        self._by_seq = {r.seq: r for r in rows}
        self._ids_longest_first = _longest_first(self.by_id)

    def __call__(self, file: str, section: str) -> RunRow | None:
        for rid in self._ids_longest_first:
            if rid and rid in section:
                return self.by_id[rid]
        m = _STEP_REF.search(section)
        if m and f"step-{m.group(1)}" in self.by_id:
            return self.by_id[f"step-{m.group(1)}"]
        m = _RUN_REF.search(section)
        if m and int(m.group(1)) in self._by_seq:
            return self._by_seq[int(m.group(1))]
        if file in self._first_run_of_file:
            return self.by_id.get(self._first_run_of_file[file])
        m = None if self._first_run_of_file else _RUN_FILE.search(file)
        if m and int(m.group(1)) in self._by_seq:
            return self._by_seq[int(m.group(1))]
        return None


citation_resolver = CitationResolver  # the name the report package has exported


def _first_runs(files: Iterable[tuple[str, str]] | None) -> dict[str, str]:
    """The first run of each rendered run file, from the files' layouts (no text read)."""
    layout, names = getattr(files, "layout", None), getattr(files, "names", None)
    if layout is None or names is None:
        return {}
    return {name: layout(i).run_ids[0] for i, name in enumerate(names) if layout(i).run_ids}


def gather(
    result: StagedAnalysisResult,
    trace: Trace | None = None,
    usage: dict[str, Any] | None = None,
    files: Iterable[tuple[str, str]] | None = None,
) -> ReportView:
    """The view of one analysis. With `files` (the trace as rendered and redacted for upload),
    each cited run's text is embedded."""
    rows = _rows(result, trace)
    resolve = CitationResolver(rows, _first_runs(files))
    by_id = resolve.by_id

    def cites(found: list[Any]) -> list[Cite]:
        out = [Cite(c.file, c.section_or_lines, resolve(c.file, c.section_or_lines)) for c in found]
        for c in out:
            if c.run is not None:
                c.run.cited = True
        return out

    view = ReportView(trace_id=redact_text(result.trace_id), summary="", runs=rows, usage=usage or {})
    view.stand_in = is_stand_in(u.model for u in result.usage.values())
    view.reading = reading_line(result.stage_metadata)
    if result.synthesis is not None:
        view.summary = clean(result.synthesis.summary)
        view.findings = [
            {"title": clean(f.title), "detail": clean(f.detail), "severity": f.severity, "cites": cites(f.citations)}
            for f in result.synthesis.top_findings
        ]
        view.actions = [
            {**a.model_dump(), "action": clean(a.action), "rationale": clean(a.rationale)}
            for a in sorted(result.synthesis.actions_next, key=lambda a: a.priority)
        ]
    if result.gap_analysis is not None:
        view.expectations = [
            {"clause": clean(c.clause), "status": c.status, "gap": clean(c.gap), "cites": cites(c.citations)}
            for c in result.gap_analysis.expectations
        ]
    if result.diagnosis is not None:
        d = result.diagnosis
        view.diagnosis = {
            "root_cause": clean(d.root_cause),
            "failure_type": d.failure_type.value,
            "confidence": d.confidence.value,
            "detailed_analysis": items(d.detailed_analysis),
            "affected_components": [clean(c) for c in d.affected_components],
            "remediations": [
                {**r.model_dump(), "action": clean(r.action), "rationale": clean(r.rationale)} for r in d.remediations
            ],
        }
        view.chains = [
            {
                "confidence": c.confidence.value,
                "links": [
                    (name, clean(getattr(c, name).description), cites(getattr(c, name).citations))
                    for name in ("symptom", "mechanism", "cause")
                ],
            }
            for c in d.causal_chains
        ]
        if not view.summary:
            view.summary = clean(d.root_cause)
        check = result.verification.get("stage3")
        bad = {u["path"] for u in (check or {}).get("unverified", [])}

        def verified(path: str) -> bool | None:  # None: not checked (no trace at hand)
            return None if check is None else path not in bad

        decisive = by_id.get(d.decisive_step.run_id)
        if decisive is not None:
            decisive.decisive = decisive.cited = True
        errors = []
        for i, e in enumerate(d.errors):
            row = by_id.get(e.run_id)
            if row is not None:
                row.cited = True
            errors.append(
                {
                    **e.model_dump(mode="json"),
                    "description": clean(e.description),
                    "run": row,
                    "verified": verified(f"errors[{i}]"),
                }
            )
        view.localisation = {
            "responsible_agent": d.responsible_agent,
            "decisive_step": {
                **d.decisive_step.model_dump(),
                "reason": clean(d.decisive_step.reason),
                "run": decisive,
                "verified": verified("decisive_step"),
            },
            "errors": errors,
        }
    view.verification = dict(result.verification)
    if files is not None:
        failed = [row.run_id for row in rows if row.status == "error" and not row.cited][:MAX_UNCITED_FAILED]
        texts = sections(files, {row.run_id for row in rows if row.cited} | set(failed))
        for row in rows:
            row.text = texts.get(row.run_id)
    return view
