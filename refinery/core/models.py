"""The data that crosses refinery's boundaries, as pydantic v2 models.

Host orchestrators already use these names and fields, so fields are only ever added, never
renamed. Each analysis result also keeps its citations and the raw JSON of the stage that
produced it, so nothing the model said is lost in the conversion to these shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal, overload

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidatorFunctionWrapHandler,
    WrapSerializer,
    WrapValidator,
)


class RunType(str, Enum):
    LLM = "llm"
    CHAIN = "chain"
    TOOL = "tool"
    RETRIEVER = "retriever"
    EMBEDDING = "embedding"
    PROMPT = "prompt"
    PARSER = "parser"
    AGENT = "agent"  # OpenTelemetry / OpenInference agent spans
    UNKNOWN = "unknown"  # spans whose kind cannot be told


class FailureType(str, Enum):
    PROMPT_ISSUE = "prompt_issue"
    CONTEXT_ISSUE = "context_issue"
    MODEL_LIMITATION = "model_limitation"
    ORCHESTRATION_ISSUE = "orchestration_issue"
    RETRIEVAL_ISSUE = "retrieval_issue"
    OUTPUT_PARSING_ISSUE = "output_parsing_issue"


class Confidence(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class TraceRun(BaseModel):
    """One step of an agent run (a LangSmith run, an OpenTelemetry span, a Langfuse observation)."""

    id: str
    name: str
    run_type: RunType = RunType.UNKNOWN
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    error: str | None = None
    parent_run_id: str | None = None
    trace_id: str = ""
    dotted_order: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    step: int | None = None  # the source's own step number (chat/step logs: list index, 0-based)
    # The status the source states ("ok" / "error"); None when it states none (a chat or step
    # log, an OTel span left UNSET, a Langfuse observation at DEFAULT level). Never guessed.
    status: Literal["ok", "error"] | None = None

    @property
    def duration_ms(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds() * 1000.0

    @property
    def is_failed(self) -> bool:
        return bool(self.error) or self.status == "error"

    @property
    def stated_status(self) -> str:
        """`error`, `ok` or `not stated`: only what the source says, so the model is never told
        that a step it knows nothing about succeeded."""
        return "error" if self.is_failed else (self.status or "not stated")


_RUN_DEFAULTS = {name: None if f.default_factory else f.default for name, f in TraceRun.model_fields.items()}
_RUN_FACTORIES = [(name, f.default_factory) for name, f in TraceRun.model_fields.items() if f.default_factory]
_FACTORY_NAMES = frozenset(name for name, _ in _RUN_FACTORIES)
_new_object = object.__new__
# A model's four slots, each set through its own descriptor: `object.__setattr__` looks the name up
# on every call, a third of what making a big log's run cost on every pass
_set_values = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def run_from_checked(fields: dict[str, Any]) -> TraceRun:
    """The run `TraceRun(**fields)` validates, made without validating: for a loader whose own
    checks already give each field its type (str ids and names, a `RunType`, datetimes, dicts with
    text keys made for this run). Why: a big trace's runs are made again on every pass over them
    (`LazyRuns`), and validation was half of what making a chat step's run cost. What
    `model_construct` does, without its per-field walk; the fields not given take their defaults.
    """
    values = {**_RUN_DEFAULTS, **fields}
    if not fields.keys() >= _FACTORY_NAMES:
        for name, make in _RUN_FACTORIES:  # `inputs`, `metadata`: a new dict for each run, as validation makes
            if name not in fields:
                values[name] = make()  # type: ignore[call-arg]
    return run_from_values(values, set(fields))


def run_from_values(values: dict[str, Any], given: set[str]) -> TraceRun:
    """`run_from_checked` for a loader that writes out every field's value itself, in the fields'
    order (`values` becomes the run's own), with the names of those it was given (`given`, the
    run's own set): what a big log's most common step makes on every pass, with no dict merged."""
    run = _new_object(TraceRun)
    _set_values(run, values)
    _set_fields_set(run, given)
    _set_extra(run, None)
    _set_private(run, None)
    return run


class LazyRuns(Sequence[TraceRun]):
    """A trace's runs, each made from its source entry when it is first read by index.

    Why: a chat log's steps are small (a few hundred bytes each) and a `TraceRun` costs about
    2 KB of Python objects, so a 100 MB log held as runs took 500 MB. Loaders use this for entries
    left in the trace file (`traces.json_stream.LazyArray`).

    It behaves as the list a small trace has for what a host reads or sets: `runs[i]` is made
    once and then kept, so `runs[0] is runs[0]` and a change to it (`runs[0].error = …`) stays,
    also for later iteration and slices. A pass over the runs (iteration or a slice, as the
    renderer reads them) makes the runs not kept and drops them again: memory for one at a time.
    """

    def __init__(
        self, entries: Sequence[Any], convert: Callable[[int, Any], TraceRun], facts: bytes | None = None
    ) -> None:
        self._entries = entries
        self._convert = convert
        self._kept: dict[int, TraceRun] = {}  # runs handed out by index: the same object each time
        # What the loader's own pass learnt of each run (`run_fact`): its type and whether it failed,
        # so looking for the failed runs or the first agent makes only those, not every run again.
        self._facts = facts

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, index: int) -> TraceRun: ...
    @overload
    def __getitem__(self, index: slice) -> list[TraceRun]: ...
    def __getitem__(self, index: int | slice) -> TraceRun | list[TraceRun]:
        if isinstance(index, slice):  # like a pass: kept runs as kept, the others made and not kept
            ids = range(*index.indices(len(self)))
            return [self._kept.get(i) or self._convert(i, e) for i, e in zip(ids, self._entries[index])]
        i = range(len(self))[index]
        if i not in self._kept:
            self._kept[i] = self._convert(i, self._entries[i])
        return self._kept[i]

    def __iter__(self) -> Iterator[TraceRun]:
        convert, kept = self._convert, self._kept
        for i, entry in enumerate(self._entries):
            run = kept.get(i) if kept else None  # (a run kept while the pass runs counts too)
            yield run if run is not None else convert(i, entry)

    def made(self, index: int) -> TraceRun:
        """Run `index` as a pass reads it: the kept one, else made and not kept."""
        kept = self._kept.get(index)
        return kept if kept is not None else self._convert(index, self._entries[index])

    def failed(self) -> list[TraceRun]:
        """The failed runs, in order: where the loader's pass recorded them, only those are made."""
        if self._facts is None:
            return [r for r in self if r.is_failed]
        facts, kept = self._facts, self._kept
        wanted = [
            i
            for i in range(len(self))
            if (kept[i].is_failed if i in kept else facts[i] & _FAILED)  # a host's change to a kept run counts
        ]
        reading = getattr(self._entries, "reading", None)  # entries left in a file: one handle for them all
        if reading is None:
            return [self.made(i) for i in wanted]
        with reading() as read:
            return [run if (run := kept.get(i)) is not None else self._convert(i, read(i)) for i in wanted]

    def indices_of(self, run_type: RunType, limit: int) -> Iterable[int]:
        """The indices below `limit` that may hold a run of `run_type`: those the loader's pass saw of
        that type, and the kept runs (a host may have changed one); without facts, all of them."""
        end = min(limit, len(self))
        if self._facts is None:
            return range(end)
        code = _TYPE_CODES[run_type]
        return [i for i in range(end) if i in self._kept or self._facts[i] & ~_FAILED == code]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # equal to a list, so unhashable like one

    def __repr__(self) -> str:
        return f"LazyRuns({len(self)} runs)"


_FAILED = 0x80
_TYPE_CODES = {t: n for n, t in enumerate(RunType)}


def fact_of(run_type: RunType, failed: bool) -> int:
    """A run's byte among `LazyRuns`' facts: its type, and 0x80 when it failed."""
    return _TYPE_CODES[run_type] | (_FAILED if failed else 0)


def run_fact(run: TraceRun) -> int:
    """`fact_of` a run already made."""
    return fact_of(run.run_type, run.is_failed)


def _runs_as_given(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    return value if isinstance(value, LazyRuns) else list(handler(value))  # a list, as it always was


def _runs_as_list(value: Any, handler: SerializerFunctionWrapHandler) -> Any:
    return handler(list(value) if isinstance(value, LazyRuns) else value)


class Trace(BaseModel):
    """One agent run: its steps in execution order.

    `runs` is a list, except for a trace loaded from a big chat log, where it is a read-only
    `LazyRuns` (see there); read it as a sequence and both work.
    """

    trace_id: str
    project_name: str = ""
    runs: Annotated[Sequence[TraceRun], WrapValidator(_runs_as_given), WrapSerializer(_runs_as_list)] = Field(
        default_factory=list
    )
    start_time: datetime | None = None
    end_time: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    def get_root_run(self) -> TraceRun | None:
        """The run without a parent (the first one when there are several)."""
        ids = {r.id for r in self.runs}
        for run in self.runs:
            if run.parent_run_id is None or run.parent_run_id not in ids:
                return run
        return None

    def get_failed_runs(self) -> list[TraceRun]:
        if isinstance(self.runs, LazyRuns):
            return self.runs.failed()
        return [r for r in self.runs if r.is_failed]

    @property
    def duration_ms(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds() * 1000.0


class DomainExpertExpectation(BaseModel):
    """What a domain expert expected the agent to do."""

    description: str
    expected_output: str | None = None
    business_context: str | None = None
    specific_issues: list[str] = Field(default_factory=list)

    def as_text(self) -> str:
        """The expectation as the plain text the stages quote."""
        lines = [f"Description: {self.description}"]
        if self.expected_output:
            lines.append(f"Expected output: {self.expected_output}")
        if self.business_context:
            lines.append(f"Business context: {self.business_context}")
        if self.specific_issues:
            lines.append("Specific issues:")
            lines.extend(f"- {issue}" for issue in self.specific_issues)
        return "\n".join(lines)


class Citation(BaseModel):
    """Where a claim comes from: a rendered file and a section (run id, heading or lines)."""

    model_config = ConfigDict(frozen=True)

    file: str
    section: str | None = None


class _Result(BaseModel):
    citations: list[Citation] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict, description="The stage's JSON, as the model returned it")


class TraceAnalysis(_Result):
    trace_id: str
    execution_flow: list[dict[str, Any]] = Field(default_factory=list)
    context_at_each_step: dict[str, Any] = Field(default_factory=dict)
    data_transformations: list[dict[str, Any]] = Field(default_factory=list)
    error_propagation_path: list[str] = Field(default_factory=list)
    identified_issues: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class GapAnalysis(_Result):
    behavioral_differences: list[dict[str, Any]] = Field(default_factory=list)
    missing_context: list[str] = Field(default_factory=list)
    incorrect_assumptions: list[str] = Field(default_factory=list)
    suggested_focus_areas: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Diagnosis(_Result):
    failure_type: FailureType
    root_cause: str
    evidence: list[str] = Field(default_factory=list)
    affected_components: list[str] = Field(default_factory=list)
    confidence: Confidence
    detailed_analysis: str = ""
    remediations: list[dict[str, Any]] = Field(default_factory=list)
    next_actions: list[dict[str, Any]] = Field(default_factory=list)
    top_findings: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    # localisation as data (who, where, which runs), checkable against the trace and a benchmark
    responsible_agent: str | None = None
    decisive_step: dict[str, Any] | None = None  # {"run_id": …, "reason": …}
    errors: list[dict[str, Any]] = Field(
        default_factory=list
    )  # {"run_id", "category", "evidence", "impact", "description", "verified"?}


class CompleteAnalysis(BaseModel):
    trace_analysis: TraceAnalysis
    gap_analysis: GapAnalysis
    diagnosis: Diagnosis

    def get_summary(self) -> dict[str, Any]:
        """The few facts a dashboard or a log line needs."""
        d = self.diagnosis
        return {
            "trace_id": self.trace_analysis.trace_id,
            "failure_type": d.failure_type.value,
            "root_cause": d.root_cause,
            "responsible_agent": d.responsible_agent,
            "decisive_step": (d.decisive_step or {}).get("run_id"),
            "confidence": d.confidence.value,
            "failed_steps": len(self.trace_analysis.error_propagation_path),
            "behavioral_differences": len(self.gap_analysis.behavioral_differences),
            "top_findings": [f.get("title", "") for f in d.top_findings],
            "next_actions": [a.get("action", "") for a in d.next_actions],
        }
