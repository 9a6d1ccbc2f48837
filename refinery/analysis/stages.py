"""The four stages as one table, and the pure functions that turn a stage into a request.

Why a table: every fact about a stage (its output model and schema, its prompt, its artifact,
its output budget, whether it searches the store) used to live in parallel dicts keyed
"stage1"…"stage4", with stage 4 special-cased by string, and the prompts were filled in three
places (the staged analyst, the simple analyst and `refinery plan`). Now a stage is one frozen
value, `stage_user_text` is the only place prompts are filled, and `build_request` is the only
place a stage becomes a request body. Pure: no I/O, no client.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from refinery.analysis.staged_schemas import STAGE_MODELS, STAGE_SCHEMAS
from refinery.core.context_windows import chunk_allowance
from refinery.prompts.system_prompts import (
    STAGE1,
    STAGE1_GROUP_NOTE,
    STAGE1_INLINE_NOTE,
    STAGE1_STATUS_NOTE,
    STAGE1_WHOLE_NOTE,
    STAGE2,
    STAGE3,
    STAGE3_LOCALISATION_NOTE,
    STAGE4,
    SYSTEM,
    PromptTemplate,
)
from refinery.traces.render import CHUNK_OVERLAP_TOKENS, CHUNK_SIZE_TOKENS
from refinery.wire.responses_request_builder import build_responses_body, build_responses_body_no_tools


@dataclass(frozen=True)
class Stage:
    key: str  # "stage1" … "stage4": artifact, schema and usage keys
    number: int
    title: str
    output_model: type[BaseModel]
    schema: Mapping[str, Any]
    prompt: PromptTemplate
    artifact: str
    max_output_tokens: int
    searches: bool  # bound to the vector store with file_search
    note: PromptTemplate | None = None  # appended to the prompt (the plan's prompts stay word for word)

    @property
    def schema_name(self) -> str:
        return f"{self.key}_output"

    @property
    def prompt_ref(self) -> str:
        """The version of every text this stage sends, as recorded in its artifact."""
        return self.prompt.ref + (f"+{self.note.ref}" if self.note else "")


STAGES: tuple[Stage, ...] = (
    Stage(
        "stage1",
        1,
        "trace analysis",
        STAGE_MODELS["stage1"],
        STAGE_SCHEMAS["stage1"],
        STAGE1,
        "stage1_trace_analysis.json",
        2000,
        True,
        STAGE1_STATUS_NOTE,
    ),
    Stage(
        "stage2",
        2,
        "gap analysis",
        STAGE_MODELS["stage2"],
        STAGE_SCHEMAS["stage2"],
        STAGE2,
        "stage2_gap_analysis.json",
        1500,
        True,
    ),
    Stage(
        "stage3",
        3,
        "diagnosis",
        STAGE_MODELS["stage3"],
        STAGE_SCHEMAS["stage3"],
        STAGE3,
        "stage3_diagnosis.json",
        2500,
        True,
        STAGE3_LOCALISATION_NOTE,
    ),
    Stage(
        "stage4",
        4,
        "synthesis",
        STAGE_MODELS["stage4"],
        STAGE_SCHEMAS["stage4"],
        STAGE4,
        "stage4_synthesis.json",
        1000,
        False,
    ),
)
STAGE_BY_KEY: dict[str, Stage] = {s.key: s for s in STAGES}
PLANNED_STORE = "vs_PLANNED"  # a placeholder store id for requests built only to be measured
STAGE_ARTIFACTS: dict[str, str] = {s.key: s.artifact for s in STAGES}

# `file_search` result counts sized to the store (issue 37). A pass that returns a large share of a
# small store costs as much as reading it inline and adds little a few passages would not: one pass
# returns about a twentieth of the store's chunks, at least two (one result cannot tell two
# candidate passages apart) and at most eight (the system prompt's per-pass count, and what a big
# store got before). Stage 1 read by search keeps eight: there the search is the reading itself.
# A Stage 1 call that reads its group inline searches only to look up what a run refers to (the
# task in the index, another group's run): a lookup, sized to what is not inline, at most four.
DEFAULT_RESULTS = 8
RESULTS_SHARE = 20
MIN_RESULTS = 2
MAX_RESULTS = 8
LOOKUP_RESULTS = 4


def file_chunks(tokens: int) -> int:
    """How many chunks the store cuts a file of `tokens` into (static windows with overlap, as
    `render.CHUNKING_STRATEGY` asks)."""
    if tokens <= CHUNK_SIZE_TOKENS:
        return 1
    step = CHUNK_SIZE_TOKENS - CHUNK_OVERLAP_TOKENS
    return 1 + -(-(tokens - CHUNK_SIZE_TOKENS) // step)


def sized_results(chunks: int, most: int = MAX_RESULTS) -> int:
    """`max_num_results` for a store of `chunks` chunks: a twentieth of them, from 2 to `most`."""
    return max(MIN_RESULTS, min(most, -(-chunks // RESULTS_SHARE)))


def retrieval_allowance(body: Mapping[str, Any]) -> int:
    """What the body's `file_search` tools may add to its input: each result count of whole
    chunks (0 for a body with no `file_search`: nothing to retrieve, nothing counted)."""
    return sum(
        chunk_allowance(int(tool.get("max_num_results") or DEFAULT_RESULTS))
        for tool in body.get("tools") or []
        if isinstance(tool, Mapping) and tool.get("type") == "file_search"
    )


@dataclass(frozen=True)
class GroupNote:
    """Which slice of the trace one Stage 1 call covers, for a trace split into groups."""

    group: int
    groups: int
    first_run: int
    last_run: int


def compact_json(data: Any) -> str:
    """Prior-stage JSON as it goes into a later stage's prompt: compact, key order kept."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def stage_user_text(
    stage: Stage,
    prior: Mapping[str, Any] | None = None,
    *,
    expectation_text: str | None = None,
    group: GroupNote | None = None,
    inline_files: str | None = None,
    group_files: str | None = None,
    whole_files: str | None = None,
    notes: list[str] | None = None,
) -> str:
    """The user text of one stage call: its prompt filled with the JSON of the stages before it
    (`prior`: stage key → JSON-ready output, or a placeholder string as `refinery plan` shows),
    plus what that stage needs besides (the expectation, the group slice, inline trace files:
    `inline_files` for the simple analyst, which has no store; `group_files` for a Stage 1 call
    that reads its group whole and searches the store for the rest; `whole_files` for a Stage 1
    call that holds every file, with no `file_search`)."""
    prior = prior or {}

    def js(key: str) -> str:
        value = prior[key]
        return value if isinstance(value, str) else compact_json(value)

    slots = {f"{k}_json": js(k) for k in ("stage1", "stage2", "stage3") if f"{{{k}_json}}" in stage.prompt.text}
    text = stage.prompt.fill(**slots)
    if stage.note is not None:
        text += "\n\n" + stage.note.text
    if group is not None:
        text += "\n\n" + STAGE1_GROUP_NOTE.fill(
            first_run=f"{group.first_run:03d}",
            last_run=f"{group.last_run:03d}",
            group=str(group.group),
            groups=str(group.groups),
        )
    if inline_files is not None:  # the simple analyst: the whole trace in the prompt, no store
        text += f"\n\nTrace files (inline):\n{inline_files}"
    if group_files is not None:  # Stage 1 reading its group whole, the store for the rest
        text += "\n\n" + STAGE1_INLINE_NOTE.text + f"\n\nTrace files (inline):\n{group_files}"
    if whole_files is not None:  # Stage 1 holding every file: nothing left to search
        text += "\n\n" + STAGE1_WHOLE_NOTE.text + f"\n\nTrace files (inline):\n{whole_files}"
    if expectation_text is not None:
        text += "\n\nExpectations:\n" + expectation_text
    for note in notes or []:
        text += "\n\n" + note
    return text


def inline_files_text(files: Sequence[tuple[str, str]], names: Collection[str]) -> str:
    """The named files, whole and in order, as Stage 1 reads them inline: each opens with a line
    naming it (the model cites files by name) and its text as uploaded, run headings and markers
    included, so a citation of an inline run is the same as one of a retrieved chunk."""
    listed = getattr(files, "names", None)  # spooled or rendered files: read only the named ones
    picked = (
        [files[i] for i, n in enumerate(listed) if n in names]
        if listed is not None
        else [f for f in files if f[0] in names]
    )
    parts = [f"===== file: {name} =====\n{text.rstrip()}\n===== end of file: {name} =====" for name, text in picked]
    return "\n\n".join(parts)


@dataclass(frozen=True)
class RequestContext:
    """Everything besides the stage that shapes its request."""

    model: str
    user_text: str
    store_id: str | None = None  # None: answer from the prompt alone (the simple analyst)
    system: PromptTemplate = SYSTEM
    max_output_tokens: int | None = None  # None: the stage's default
    max_num_results: int = DEFAULT_RESULTS
    temperature: float | None = 0.2
    filters: Mapping[str, Any] | None = None
    reasoning_effort: str | None = None  # sent to reasoning models only
    family: str | None = None  # the model `model` is (an Azure deployment's base model), when it says nothing


def build_request(stage: Stage, context: RequestContext) -> dict[str, Any]:
    """The `POST /v1/responses` body of one stage call."""
    budget = context.max_output_tokens or stage.max_output_tokens
    if stage.searches and context.store_id:
        return build_responses_body(
            context.model,
            context.store_id,
            context.system.text,
            context.user_text,
            dict(stage.schema),
            max_num_results=context.max_num_results,
            max_output_tokens=budget,
            temperature=context.temperature,
            schema_name=stage.schema_name,
            filters=dict(context.filters) if context.filters else None,
            reasoning_effort=context.reasoning_effort,
            family=context.family,
        )
    return build_responses_body_no_tools(
        context.model,
        context.system.text,
        context.user_text,
        dict(stage.schema),
        max_output_tokens=budget,
        temperature=context.temperature,
        schema_name=stage.schema_name,
        reasoning_effort=context.reasoning_effort,
        family=context.family,
    )
