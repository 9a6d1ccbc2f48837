"""`StagedFailureAnalyst`: four evidence-backed stages over a hosted vector store.

Flow: render the trace, prompts, evals and expectations as citable files → upload them to a
vector store (with attributes) → Stage 1 trace analysis, group by group for big traces, each
group's `file_search` restricted by `filters` → Stage 2 gap analysis → Stage 3 diagnosis →
Stage 4 synthesis (no tools). Each stage's user text carries the compact JSON of the stages
before it; each output is validated against its schema and model, written atomically as an
artifact as soon as it exists, and a rerun over the same artifacts directory resumes from the
first missing stage instead of paying again.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from refinery.agents.analyst_base import AnalystBase, ProgressCallback
from refinery.agents.stage_results import (
    merge_stage1,
    to_diagnosis,
    to_gap_analysis,
    to_trace_analysis,
)
from refinery.agents.staged_schemas import (
    STAGE_MODELS,
    STAGE_SCHEMAS,
    DiagnosisOutput,
    GapAnalysisOutput,
    SynthesisOutput,
    TraceAnalysisOutput,
)
from refinery.core.artifacts import read_json, write_json_atomic, write_text_atomic
from refinery.core.interfaces import FileContents
from refinery.core.models import (
    Diagnosis,
    DomainExpertExpectation,
    GapAnalysis,
    Trace,
    TraceAnalysis,
)
from refinery.errors import ArtifactsMismatchError, FileIndexingError, RefineryError, StageError, UserInputError, VectorStoreGoneError
from refinery.integrations.response_output import CallUsage
from refinery.integrations.responses_client import ResponsesClient
from refinery.integrations.responses_request_builder import (
    build_responses_body,
    build_responses_body_no_tools,
)
from refinery.integrations.vector_store_manager import VectorStoreManager
from refinery.prompts.system_prompts import (
    STAGE1,
    STAGE1_GROUP_NOTE,
    STAGE2,
    STAGE3,
    STAGE4,
    SYSTEM,
    PromptTemplate,
)
from refinery.traces.render import CHUNKING_STRATEGY, RenderOptions, upload_files_for

log = logging.getLogger("refinery.staged")

STAGE_ARTIFACTS = {
    "stage1": "stage1_trace_analysis.json",
    "stage2": "stage2_gap_analysis.json",
    "stage3": "stage3_diagnosis.json",
    "stage4": "stage4_synthesis.json",
}
STAGE_PROMPTS: dict[str, PromptTemplate] = {"stage1": STAGE1, "stage2": STAGE2, "stage3": STAGE3, "stage4": STAGE4}
DEFAULT_MAX_OUTPUT_TOKENS = {"stage1": 2000, "stage2": 1500, "stage3": 1500, "stage4": 1000}
STORE_ARTIFACT = "store.json"
STAGE1_GROUPS_DIR = "stage1_groups"


@dataclass(frozen=True)
class StageGroup:
    """A slice of the trace's run files analysed by one Stage 1 call."""

    number: int
    first_run: int
    last_run: int
    files: tuple[str, ...]


class StagedAnalysisResult(BaseModel):
    """All four stage outputs of one analysis, with usage, store id and prompt versions."""

    trace_id: str
    store_id: str | None
    trace_analysis: TraceAnalysisOutput | None = None
    gap_analysis: GapAnalysisOutput | None = None
    diagnosis: DiagnosisOutput | None = None
    synthesis: SynthesisOutput | None = None
    usage: dict[str, CallUsage] = {}
    prompt_versions: dict[str, str] = {}
    artifacts_dir: str | None = None


def compact_json(data: Any) -> str:
    """Prior-stage JSON as it goes into a later stage's prompt: compact, key order kept."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def plan_groups(files: list[tuple[str, str]], runs_total: int, runs_per_file: int, files_per_group: int) -> list[StageGroup]:
    """The Stage 1 groups for a rendering: consecutive run files, `files_per_group` at a time."""
    run_files = [name for name, _ in files if "_runs_" in name]
    groups = []
    for g, start in enumerate(range(0, len(run_files), files_per_group), start=1):
        chunk = tuple(run_files[start : start + files_per_group])
        first = start * runs_per_file + 1
        last = min(runs_total, (start + len(chunk)) * runs_per_file)
        groups.append(StageGroup(g, first, last, chunk))
    return groups


def group_filter(group: StageGroup) -> dict[str, Any]:
    """The `file_search` attribute filter restricting retrieval to one Stage 1 group's files."""
    return {"type": "eq", "key": "group", "value": group.number}


def file_attributes(files: list[tuple[str, str]], groups: list[StageGroup]) -> dict[str, dict[str, Any]]:
    """Vector store attributes per file: its kind, and its Stage 1 group for run files."""
    group_of = {name: g.number for g in groups for name in g.files}
    attrs: dict[str, dict[str, Any]] = {}
    for name, _ in files:
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


class StagedFailureAnalyst(AnalystBase):
    """The staged analyst. Built the way hosts build it: `StagedFailureAnalyst(model=…, seed=…,
    progress_callback=…)`; everything else is optional.

    The Responses API takes no `seed`; it is recorded in the metadata, never sent. Without a
    `client`, one is built from the environment (`OPENAI_API_KEY`, …) on first use and closed by
    `aclose()` (or `async with`).
    """

    def __init__(
        self,
        model: str = "gpt-4o",
        seed: int | None = None,
        progress_callback: ProgressCallback | None = None,
        *,
        client: ResponsesClient | None = None,
        vector_store_manager: VectorStoreManager | None = None,
        artifacts_dir: str | Path | None = None,
        vector_store_id: str | None = None,
        keep_store: bool = False,
        max_output_tokens: Mapping[str, int] | None = None,
        max_num_results: Mapping[str, int] | int = 8,
        render_options: RenderOptions | None = None,
        files_per_group: int = 8,
        poll_timeout_s: float = 600,
        expires_after_days: int = 1,
        temperature: float | None = 0.2,
        redact: bool = True,
    ) -> None:
        super().__init__(model, seed, progress_callback, client, redact)
        self._manager = vector_store_manager
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir is not None else None
        self.store_id = vector_store_id
        self.keep_store = keep_store or vector_store_id is not None
        self.max_output_tokens = {**DEFAULT_MAX_OUTPUT_TOKENS, **dict(max_output_tokens or {})}
        self.max_num_results = (
            dict.fromkeys(STAGE_ARTIFACTS, max_num_results) if isinstance(max_num_results, int) else {**dict.fromkeys(STAGE_ARTIFACTS, 8), **max_num_results}
        )
        self.render_options = render_options or RenderOptions()
        self.files_per_group = max(1, files_per_group)
        self.poll_timeout_s = poll_timeout_s
        self.expires_after_days = expires_after_days
        self.temperature = temperature
        self._stage_meta: dict[str, dict[str, Any]] = {}
        self._groups: list[StageGroup] = []
        self._trace_id: str | None = None
        self._created_store = False
        self._file_ids: list[str] = []

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def manager(self) -> VectorStoreManager:
        if self._manager is None:
            self._manager = VectorStoreManager(self.client.transport, chunking_strategy=CHUNKING_STRATEGY)
        return self._manager

    def get_stage_metadata(self) -> dict[str, dict[str, Any]]:
        """Per stage: prompt version, model, tokens, duration and store id."""
        return {k: dict(v) for k, v in self._stage_meta.items()}

    # --- preparation ----------------------------------------------------------------------
    def render(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation | None = None,
        prompts: FileContents | None = None,
        evals: FileContents | None = None,
    ) -> list[tuple[str, str]]:
        """The files `prepare` uploads, redacted unless `redact=False` (`refinery plan` shows them)."""
        files, report = upload_files_for(
            trace, options=self.render_options, prompts=prompts, evals=evals, expectation=expectation, redact=self.redact
        )
        self.redaction = report
        return files

    def _layout(self, trace: Trace, files: list[tuple[str, str]]) -> None:
        self._trace_id = trace.trace_id
        self._groups = plan_groups(files, len(trace.runs), self.render_options.runs_per_file, self.files_per_group)

    async def prepare(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation | None = None,
        prompts: FileContents | None = None,
        evals: FileContents | None = None,
        *,
        store_id: str | None = None,
        on_progress: Callable[[Mapping[str, int]], None] | None = None,
        name: str | None = None,
    ) -> str:
        """Render, upload and index the files; return the vector store id.

        With `store_id` nothing is uploaded. A store recorded in the artifacts directory for this
        trace is reused once it is ready (polled again, since a run may have stopped while it
        was indexing); one that is gone, failed, or never got all its files is made anew.
        `store.json` says `ready: true` only after indexing completed.
        """
        files = self.render(trace, expectation, prompts, evals)
        self._layout(trace, files)
        given = store_id or self.store_id
        if given:
            self.store_id = given
            return given
        recorded = self._recorded_store(trace.trace_id)
        if recorded is not None and await self._reusable(recorded, len(files), on_progress):
            return recorded["store_id"]
        return await self._create_store(trace, files, name, on_progress)

    async def _reusable(self, recorded: dict[str, Any], n_files: int, on_progress: Callable[[Mapping[str, int]], None] | None) -> bool:
        """Whether the store an earlier run recorded can serve this run (polled until ready)."""
        store_id = str(recorded["store_id"])
        try:
            counts = await self.manager.poll_ready(store_id, timeout_s=self.poll_timeout_s, on_progress=on_progress)
            if counts.get("completed", 0) < n_files:
                raise VectorStoreGoneError(store_id, f"holds {counts.get('completed', 0)} of {n_files} files; the upload was interrupted")
        except (VectorStoreGoneError, FileIndexingError) as exc:
            log.warning("%s; re-creating it from the trace (stage artifacts are kept)", exc)
            await self._discard(store_id, recorded.get("file_ids") or [])
            return False
        self.store_id = store_id
        self._created_store = True  # this analyst's artifacts made it: cleaned up like a new one
        self._file_ids = list(recorded.get("file_ids") or [])
        if not recorded.get("ready"):
            self._record_store(trace_id=str(recorded.get("trace_id")), files=recorded.get("files") or [], ready=True)
        return True

    async def _create_store(
        self, trace: Trace, files: list[tuple[str, str]], name: str | None, on_progress: Callable[[Mapping[str, int]], None] | None
    ) -> str:
        await self._emit("prepare", "start", files=len(files))
        with tempfile.TemporaryDirectory(prefix="refinery-") as tmp:
            folder = (self.artifacts_dir / "files") if self.artifacts_dir else Path(tmp)
            paths = [write_text_atomic(folder / file_name, text) for file_name, text in files]
            store_id = await self.manager.create_store(
                (name or f"refinery-{trace.trace_id}")[:256],
                expires_after_days=self.expires_after_days,
                metadata={"refinery_trace_id": trace.trace_id[:512], "refinery_groups": str(len(self._groups))},
            )
            self.store_id = store_id
            self._created_store = True
            self._record_store(trace.trace_id, [n for n, _ in files], ready=False)
            self._file_ids = await self.manager.upload_files(store_id, paths, attributes=file_attributes(files, self._groups))
        self._record_store(trace.trace_id, [n for n, _ in files], ready=False)
        await self.manager.poll_ready(store_id, timeout_s=self.poll_timeout_s, on_progress=on_progress)
        self._record_store(trace.trace_id, [n for n, _ in files], ready=True)
        await self._emit("prepare", "end", store_id=store_id, files=len(files))
        return store_id

    def _record_store(self, trace_id: str, files: list[str], *, ready: bool) -> None:
        if self.artifacts_dir:
            write_json_atomic(
                self.artifacts_dir / STORE_ARTIFACT,
                {"store_id": self.store_id, "trace_id": trace_id, "ready": ready, "files": files, "file_ids": self._file_ids},
            )

    def _finished(self, trace: Trace, until_stage: int) -> bool:
        """Whether the artifacts already hold stages 1…`until_stage` of this trace."""
        if self.artifacts_dir is None:
            return False
        for stage in list(STAGE_ARTIFACTS)[:until_stage]:
            data = read_json(self.artifacts_dir / STAGE_ARTIFACTS[stage])
            if not isinstance(data, dict) or data.get("trace_id") != trace.trace_id or "output" not in data:
                return False
        return True

    def _recorded_store(self, trace_id: str) -> dict[str, Any] | None:
        if self.artifacts_dir is None:
            return None
        data = read_json(self.artifacts_dir / STORE_ARTIFACT)
        if isinstance(data, dict) and data.get("trace_id") == trace_id and data.get("store_id"):
            return data
        return None

    async def _discard(self, store_id: str, file_ids: list[str]) -> None:
        """Delete a store and files that cannot be used; they expire anyway, so failures only log."""
        try:
            await self.manager.delete_store(store_id)
        except RefineryError as exc:
            log.info("could not delete vector store %s: %s", store_id, exc)
        try:
            await self.manager.delete_files(file_ids)
        except RefineryError as exc:
            log.info("could not delete files of %s: %s", store_id, exc)

    async def _groups_from_store(self) -> None:
        """For a store prepared elsewhere (`refinery init`): read the group count it recorded."""
        if self._groups or not self.store_id:
            return
        try:
            data = await self.manager.get_store(self.store_id)
        except VectorStoreGoneError as exc:
            raise VectorStoreGoneError(
                exc.store_id, exc.reason, "prepare it again with `refinery init TRACE`, or use `refinery run TRACE`"
            ) from None
        meta = data.get("metadata") or {}
        n = int(meta.get("refinery_groups") or 1)
        self._trace_id = self._trace_id or meta.get("refinery_trace_id")
        self._groups = [StageGroup(g, 0, 0, ()) for g in range(1, n + 1)]

    # --- artifacts ------------------------------------------------------------------------
    def _load_stage(self, stage: str) -> BaseModel | None:
        if self.artifacts_dir is None:
            return None
        data = read_json(self.artifacts_dir / STAGE_ARTIFACTS[stage])
        if not isinstance(data, dict) or "output" not in data:
            return None
        if self._trace_id and data.get("trace_id") not in (None, self._trace_id):
            raise ArtifactsMismatchError(
                f"{self.artifacts_dir / STAGE_ARTIFACTS[stage]} belongs to trace {data.get('trace_id')!r}, "
                f"not {self._trace_id!r}: use another artifacts directory"
            )
        try:
            model = STAGE_MODELS[stage].model_validate(data["output"])
        except ValidationError:
            log.warning("%s artifact does not validate; running the stage again", stage)
            return None
        self._trace_id = self._trace_id or data.get("trace_id")
        self._stage_meta[stage] = {**data.get("meta", {}), "resumed": True}
        log.info("%s: resumed from %s", stage, STAGE_ARTIFACTS[stage])
        return model

    def _save_stage(self, stage: str, output: BaseModel, extra: dict[str, Any]) -> None:
        if self.artifacts_dir is None:
            return
        write_json_atomic(
            self.artifacts_dir / STAGE_ARTIFACTS[stage],
            {"stage": stage, "trace_id": self._trace_id, "meta": self._stage_meta[stage], **extra, "output": output.model_dump(mode="json")},
        )

    def _group_path(self, number: int) -> Path | None:
        return self.artifacts_dir / STAGE1_GROUPS_DIR / f"group_{number:03d}.json" if self.artifacts_dir else None

    def _save_group(self, number: int, groups: int, part: TraceAnalysisOutput, usage: CallUsage) -> None:
        """Each Stage 1 group's output as soon as it exists, so a rerun pays only for the rest."""
        path = self._group_path(number)
        if path is not None:
            write_json_atomic(path, {"trace_id": self._trace_id, "group": number, "groups": groups, "usage": usage.model_dump(), "output": part.model_dump(mode="json")})

    def _load_group(self, number: int, groups: int) -> tuple[TraceAnalysisOutput, CallUsage] | None:
        path = self._group_path(number)
        data = read_json(path) if path is not None else None
        if not isinstance(data, dict) or data.get("trace_id") != self._trace_id or data.get("groups") != groups:
            return None
        try:
            return TraceAnalysisOutput.model_validate(data["output"]), CallUsage.model_validate(data["usage"])
        except (KeyError, ValidationError):
            return None

    # --- one call -------------------------------------------------------------------------
    def build_stage_body(self, stage: str, user_text: str, *, filters: dict[str, Any] | None = None, store_id: str | None = None) -> dict[str, Any]:
        """The request body of one stage call (pure: `refinery plan` prints these)."""
        schema = STAGE_SCHEMAS[stage]
        budget, name = self.max_output_tokens[stage], f"{stage}_output"
        if stage == "stage4":
            return build_responses_body_no_tools(
                self.model, SYSTEM.text, user_text, schema, max_output_tokens=budget, temperature=self.temperature, schema_name=name
            )
        store = store_id or self.store_id
        if not store:
            raise StageError(stage, "no vector store: call prepare() or pass vector_store_id")
        return build_responses_body(
            self.model, store, SYSTEM.text, user_text, schema, max_num_results=self.max_num_results[stage],
            max_output_tokens=budget, temperature=self.temperature, schema_name=name, filters=filters,
        )

    def stage1_user_text(self, group: StageGroup | None, groups: int) -> str:
        if group is None or not group.first_run:
            return STAGE1.text
        note = STAGE1_GROUP_NOTE.fill(
            first_run=f"{group.first_run:03d}", last_run=f"{group.last_run:03d}", group=str(group.number), groups=str(groups)
        )
        return f"{STAGE1.text}\n\n{note}"

    def stage2_user_text(self, stage1_json: str, expectation: DomainExpertExpectation) -> str:
        return STAGE2.fill(stage1_json=stage1_json) + "\n\nExpectations:\n" + self.expectation_text(expectation)

    async def _call(self, stage: str, user_text: str, *, filters: dict[str, Any] | None = None) -> tuple[dict[str, Any], CallUsage]:
        schema = STAGE_SCHEMAS[stage]
        body = self.build_stage_body(stage, user_text, filters=filters)
        label = f"{self._trace_id or 'trace'}:{stage}"
        before = len(self.client.usage)
        data = await self.client.create_json(body, schema, label=label)
        usage = CallUsage(label=stage)
        for u in self.client.usage[before:]:
            if u.label == label:
                usage = usage + u
        usage.label = stage
        return data, usage

    def _validated(self, stage: str, data: dict[str, Any]) -> Any:
        try:
            return STAGE_MODELS[stage].model_validate(data)
        except ValidationError as exc:
            raise StageError(stage, f"output does not match the stage model: {exc.errors()[:3]}") from exc

    def _record(self, stage: str, usage: CallUsage, started: float, **extra: Any) -> None:
        self._stage_meta[stage] = {
            "stage": stage,
            "prompt_version": STAGE_PROMPTS[stage].ref,
            "system_prompt_version": SYSTEM.ref,
            "model": self.model,
            "seed": self.seed,
            "store_id": self.store_id,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_tokens": usage.cached_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "total_tokens": usage.total_tokens,
            "duration_s": round(time.monotonic() - started, 3),
            **extra,
        }

    # --- the stages -----------------------------------------------------------------------
    async def run_stage1(self) -> TraceAnalysisOutput:
        await self._groups_from_store()  # first: it also tells which trace a given store holds
        resumed = self._load_stage("stage1")
        if resumed is not None:
            return resumed  # type: ignore[return-value]
        await self._emit("stage1", "start", groups=max(1, len(self._groups)))
        started = time.monotonic()
        groups = self._groups if len(self._groups) > 1 else [None]
        parts: list[TraceAnalysisOutput] = []
        total = CallUsage(label="stage1")
        for group in groups:
            filters = None
            if group is not None:
                done = self._load_group(group.number, len(groups))
                if done is not None:  # paid for in an earlier run
                    part, usage = done
                    parts.append(part)
                    total = total + usage
                    await self._emit("stage1.group", "end", group=group.number, groups=len(groups), tokens=usage.total_tokens, resumed=True)
                    continue
                await self._emit("stage1.group", "start", group=group.number, groups=len(groups))
                filters = group_filter(group)
            data, usage = await self._call("stage1", self.stage1_user_text(group, len(groups)), filters=filters)
            part = self._validated("stage1", data)
            parts.append(part)
            total = total + usage
            if group is not None:
                self._save_group(group.number, len(groups), part, usage)
                await self._emit("stage1.group", "end", group=group.number, groups=len(groups), tokens=usage.total_tokens)
        merged = merge_stage1(parts)
        self._record("stage1", total, started, groups=len(groups))
        self._save_stage("stage1", merged, {})
        await self._emit("stage1", "end", tokens=total.total_tokens)
        return merged

    async def _simple_stage(self, stage: str, user_text: str) -> Any:
        resumed = self._load_stage(stage)
        if resumed is not None:
            return resumed
        await self._emit(stage, "start")
        started = time.monotonic()
        data, usage = await self._call(stage, user_text)
        out = self._validated(stage, data)
        self._record(stage, usage, started)
        self._save_stage(stage, out, {})
        await self._emit(stage, "end", tokens=usage.total_tokens)
        return out

    async def run_stage2(self, stage1: TraceAnalysisOutput, expectation: DomainExpertExpectation) -> GapAnalysisOutput:
        text = self.stage2_user_text(compact_json(stage1.model_dump(mode="json")), expectation)
        return await self._simple_stage("stage2", text)

    async def run_stage3(self, stage1: TraceAnalysisOutput, stage2: GapAnalysisOutput) -> DiagnosisOutput:
        text = STAGE3.fill(
            stage1_json=compact_json(stage1.model_dump(mode="json")),
            stage2_json=compact_json(stage2.model_dump(mode="json")),
        )
        return await self._simple_stage("stage3", text)

    async def run_stage4(self, stage1: TraceAnalysisOutput, stage2: GapAnalysisOutput, stage3: DiagnosisOutput) -> SynthesisOutput:
        text = STAGE4.fill(
            stage1_json=compact_json(stage1.model_dump(mode="json")),
            stage2_json=compact_json(stage2.model_dump(mode="json")),
            stage3_json=compact_json(stage3.model_dump(mode="json")),
        )
        return await self._simple_stage("stage4", text)

    def _meta(self, stage: str) -> dict[str, Any]:
        return {"stage_metadata": self._stage_meta.get(stage, {}), "store_id": self.store_id, "model": self.model, "seed": self.seed}

    # --- the FailureAnalyst interface -----------------------------------------------------
    async def analyze_trace(
        self,
        trace: Trace,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> TraceAnalysis:
        await self.prepare(trace, expectation, prompt_contents, eval_contents)
        out = await self.run_stage1()
        return to_trace_analysis(trace.trace_id, out, self._meta("stage1"))

    async def compare_to_expected(
        self,
        analysis: TraceAnalysis,
        expectation: DomainExpertExpectation,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> GapAnalysis:
        self._adopt(analysis.metadata, analysis.trace_id)
        stage1 = TraceAnalysisOutput.model_validate(analysis.raw)
        out = await self.run_stage2(stage1, expectation)
        return to_gap_analysis(out, self._meta("stage2"))

    async def diagnose_failure(
        self,
        trace_analysis: TraceAnalysis,
        gap_analysis: GapAnalysis,
        prompt_contents: FileContents | None = None,
        eval_contents: FileContents | None = None,
    ) -> Diagnosis:
        """Stage 3 then Stage 4, so the `Diagnosis` carries top findings and next actions."""
        self._adopt(trace_analysis.metadata, trace_analysis.trace_id)
        stage1 = TraceAnalysisOutput.model_validate(trace_analysis.raw)
        stage2 = GapAnalysisOutput.model_validate(gap_analysis.raw)
        stage3 = await self.run_stage3(stage1, stage2)
        stage4 = await self.run_stage4(stage1, stage2, stage3)
        diagnosis = to_diagnosis(stage3, stage4, {**self._meta("stage3"), "synthesis_metadata": self._stage_meta.get("stage4", {})})
        await self.cleanup()
        return diagnosis

    def _adopt(self, metadata: Mapping[str, Any], trace_id: str) -> None:
        self.store_id = self.store_id or metadata.get("store_id")
        self._trace_id = self._trace_id or trace_id

    async def cleanup(self) -> None:
        """Delete the store (and its files) this analyst's artifacts made, unless asked to keep it —
        after a resumed run too."""
        if self.keep_store or not self._created_store or not self.store_id:
            return
        try:
            await self.manager.delete_store(self.store_id)
            await self.manager.delete_files(sorted(set(self._file_ids) | set(self.manager.uploaded)))
        except RefineryError as exc:  # the store expires by itself; do not fail the analysis
            log.warning("could not delete vector store %s: %s", self.store_id, exc)
            return
        finally:
            self._created_store = False
        if self.artifacts_dir is not None:
            (self.artifacts_dir / STORE_ARTIFACT).unlink(missing_ok=True)

    async def analyze(
        self,
        trace: Trace | None,
        expectation: DomainExpertExpectation,
        prompts: FileContents | None = None,
        evals: FileContents | None = None,
        *,
        store_id: str | None = None,
        until_stage: int = 4,
        on_progress: Callable[[Mapping[str, int]], None] | None = None,
    ) -> StagedAnalysisResult:
        """Run stages 1…`until_stage` and return every output with usage and versions.

        With `trace=None` the analysis runs on an existing store (`store_id`) prepared by
        `refinery init`. `on_progress` hears the indexing file counts while the store fills.
        """
        if trace is not None and self._finished(trace, until_stage):
            self._layout(trace, self.render(trace, expectation, prompts, evals))  # every stage is on disk: no store needed
        elif trace is not None:
            await self.prepare(trace, expectation, prompts, evals, store_id=store_id, on_progress=on_progress)
        elif store_id or self.store_id:
            self.store_id = store_id or self.store_id
            self.keep_store = True
        else:
            raise UserInputError("analyze needs a trace or an existing store id")
        result = StagedAnalysisResult(trace_id=self._trace_id or "", store_id=self.store_id, artifacts_dir=str(self.artifacts_dir) if self.artifacts_dir else None)
        succeeded = False
        try:
            result.trace_analysis = s1 = await self.run_stage1()
            if until_stage >= 2:
                result.gap_analysis = s2 = await self.run_stage2(s1, expectation)
            if until_stage >= 3:
                result.diagnosis = s3 = await self.run_stage3(s1, s2)
            if until_stage >= 4:
                result.synthesis = await self.run_stage4(s1, s2, s3)
            succeeded = True
        finally:
            # kept after a failure or a partial run (`--stages 1-2`): a rerun continues in it
            if (succeeded and until_stage >= 4) or self.artifacts_dir is None:
                await self.cleanup()
        result.trace_id = self._trace_id or result.trace_id
        for stage, meta in self._stage_meta.items():
            result.prompt_versions[stage] = meta.get("prompt_version", STAGE_PROMPTS[stage].ref)
            result.usage[stage] = CallUsage(
                label=stage,
                model=meta.get("model"),
                input_tokens=meta.get("input_tokens", 0),
                output_tokens=meta.get("output_tokens", 0),
                cached_tokens=meta.get("cached_tokens", 0),
                reasoning_tokens=meta.get("reasoning_tokens", 0),
                total_tokens=meta.get("total_tokens", 0),
            )
        return result
