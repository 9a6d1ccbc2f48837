"""One analysis of one trace: its layout (Stage 1 groups, file attributes) and its mutable state.

Why apart from the analyst: an analyst is configuration (model, budgets, where artifacts go) and
may analyse many traces, in turn or at once, sharing one client. What belongs to one trace — its
checkpoint folder, its rendered files (the spool), its store, groups, usage, stage metadata,
redaction count and citation checks — lives in an `AnalysisRun` made by the call that analyses it
and passed down (as openai-agents passes a run's context), so two analyses never mix their state,
each counts exactly the calls it made, and nothing of it outlives the analysis.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from refinery.analysis.verification import RunTexts, Verification
from refinery.core.dismantle import emptied
from refinery.traces.redact import RedactionReport
from refinery.traces.spool import SpooledFiles, file_names, file_stats
from refinery.wire.response_output import CallUsage

if TYPE_CHECKING:  # imported for types only: checkpoints and the store keeper import this module
    from refinery.analysis.checkpoints import Checkpoints
    from refinery.analysis.store_keeper import StoreKeeper
    from refinery.analysis.trace_search import TraceSearch


@dataclass(frozen=True)
class StageGroup:
    """A slice of the trace's run files analysed by one Stage 1 call."""

    number: int
    first_run: int
    last_run: int
    files: tuple[str, ...]


DEFAULT_GROUP_TOKENS = 24_000


def plan_groups(
    files: Sequence[tuple[str, str]],
    files_per_group: int,
    group_tokens: int = DEFAULT_GROUP_TOKENS,
) -> list[StageGroup]:
    """The Stage 1 groups for a rendering: consecutive run files, as many as fit `group_tokens`
    of rendered text (sized by tokens, not runs: one LLM span can outweigh a hundred tool calls),
    at most `files_per_group` a group, at least one. Which files hold runs, and how many, is the
    renderer's word (each file's `FileLayout`), not read from names or headings."""
    layout = getattr(files, "layout", None)
    if layout is None:
        raise TypeError("plan_groups needs rendered files with their layouts (RenderedFiles or SpooledFiles)")
    run_files, runs_before = [], [0]  # (name, tokens) of each run file; the runs in the files before each
    for i, (name, _, tokens) in enumerate(file_stats(files)):
        runs = len(layout(i).run_ids)
        if runs:
            run_files.append((name, tokens))
            runs_before.append(runs_before[-1] + runs)
    groups: list[StageGroup] = []
    start = 0
    while start < len(run_files):
        end, size = start, 0
        while (
            end < len(run_files)
            and end - start < files_per_group
            and (end == start or size + run_files[end][1] <= group_tokens)
        ):
            size += run_files[end][1]
            end += 1
        first, last = runs_before[start] + 1, runs_before[end]
        groups.append(StageGroup(len(groups) + 1, first, last, tuple(n for n, _ in run_files[start:end])))
        start = end
    return groups


def group_filter(group: StageGroup) -> dict[str, Any]:
    """The `file_search` attribute filter restricting retrieval to one Stage 1 group's files."""
    return {"type": "eq", "key": "group", "value": group.number}


def file_attributes(files: Sequence[tuple[str, str]], groups: list[StageGroup]) -> dict[str, dict[str, Any]]:
    """Vector store attributes per file: its kind, and its Stage 1 group for run files."""
    group_of = {name: g.number for g in groups for name in g.files}
    attrs: dict[str, dict[str, Any]] = {}
    for name in file_names(files):
        if name in group_of:
            attrs[name] = {"kind": "trace", "group": group_of[name]}
        elif name.endswith("_index.md"):
            attrs[name] = {"kind": "index", "group": 0}
        elif name.endswith("_expectations.md"):
            attrs[name] = {"kind": "expectations", "group": 0}
        elif "_eval_" in name:
            attrs[name] = {"kind": "eval", "group": 0}
        else:
            attrs[name] = {"kind": "prompt", "group": 0}
    return attrs


async def _silent(stage: str, status: str, **info: Any) -> None:
    """No one listens: an analysis made without an analyst (a plan, a test)."""


@dataclass
class AnalysisRun:
    """The state of one trace's analysis."""

    trace_id: str | None = None
    store_id: str | None = None
    groups: list[StageGroup] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # rendered file names
    file_ids: list[str] = field(default_factory=list)  # uploaded file ids (for cleanup)
    created_store: bool = False  # this run's artifacts made the store: it deletes it when done
    usage: dict[str, CallUsage] = field(default_factory=dict)  # per stage, every call counted
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # per stage: versions, tokens, timing
    texts: RunTexts | None = None  # each run's rendered text, to check citations against (None: no trace at hand)
    verification: dict[str, Verification] = field(default_factory=dict)  # per stage
    redaction: RedactionReport = field(
        default_factory=RedactionReport
    )  # what was redacted from what this analysis sent
    keep_store: bool = False  # a store this analysis did not make (`refinery init`): never deleted by it
    checkpoints: Checkpoints | None = None  # this analysis's artifacts folder (None: nothing written)
    keeper: StoreKeeper | None = None  # this analysis's store: made, reused, deleted
    spool: SpooledFiles | None = None  # the files it rendered, on disk until it is released
    emit: Callable[..., Awaitable[None]] = _silent  # tells who listens that a stage started or ended
    reading: str = "hosted"  # how stages read the trace: "hosted" (a store, file_search) or "none" (inline)
    failed_runs: tuple[str, ...] = ()  # the runs the trace says failed (read inline by stages 2-4 with no store)
    search: TraceSearch | None = None  # `search_trace` over the run files (no store, search_calls > 0)

    def parts(self) -> tuple[Checkpoints, StoreKeeper]:
        """Its checkpoints and store keeper (every run an analyst makes has both)."""
        if self.checkpoints is None or self.keeper is None:
            raise TypeError(
                "an AnalysisRun made by StagedFailureAnalyst is needed (it has checkpoints and a store keeper)"
            )
        return self.checkpoints, self.keeper

    def release(self) -> None:
        """Delete the rendered files from disk (the spool); what was read from them stays."""
        if self.spool is not None:
            self.spool.close()
        if self.search is not None:
            self.search.close()

    def let_go(self) -> None:
        """What only this analysis used — its file names and ids, groups, citation index — emptied a
        piece at a time, in refinery's worker, before the analysis ends: freed with it in one
        cascade, a 100 MB trace's index held the host's loop (`core.dismantle`). The spool is left
        alone: the result hands it on."""
        emptied(self.files, self.file_ids, self.groups)
        if self.texts is not None:
            self.texts.let_go()

    def ended(self) -> None:
        """Over, with nothing that hands its files on (the three-call interface's last call):
        released, then let go of."""
        self.release()
        self.let_go()


OPEN_ANALYSES_KEPT = 64  # three-call analyses a host began and has not finished, at most


class OpenAnalyses:
    """The three-call interface's analyses between `analyze_trace` and `diagnose_failure`, by
    trace id. Bounded: a host that begins analyses and never finishes them loses the oldest (its
    files released; `compare_to_expected` then rebuilds it from the store id it carries) instead
    of keeping every one for the analyst's life."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._runs: dict[str, AnalysisRun] = {}

    def put(self, trace_id: str, run: AnalysisRun) -> None:
        self._runs.pop(trace_id, None)
        self._runs[trace_id] = run
        while len(self._runs) > self.limit:
            oldest = next(iter(self._runs))
            self._runs.pop(oldest).release()

    def get(self, trace_id: str) -> AnalysisRun | None:
        return self._runs.get(trace_id)

    def pop(self, trace_id: str) -> AnalysisRun | None:
        return self._runs.pop(trace_id, None)

    def __len__(self) -> int:
        return len(self._runs)
