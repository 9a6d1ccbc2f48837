"""One stage call: its body, the request, the output validated against the stage's model, and
its citations checked against the trace — with one re-ask when a cited run id is not in the
trace or a quote is not in the run's text (`agents.verification`). What still fails is kept and
counted as unverified.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from refinery.analysis.analysis_run import AnalysisRun
from refinery.analysis.cost_ceiling import CostCeiling
from refinery.analysis.stages import (
    DEFAULT_RESULTS,
    MAX_RESULTS,
    RequestContext,
    Stage,
    build_request,
    compact_json,
    file_chunks,
    retrieval_allowance,
    sized_results,
)
from refinery.analysis.trace_search import with_search_tool
from refinery.analysis.verification import RunTexts, Verification, reask_text, verify
from refinery.core.model_families import check_effort, output_budget
from refinery.core.offload import in_worker
from refinery.core.tokens import estimate_body_tokens
from refinery.errors import ContextBudgetError, StageError
from refinery.prompts.system_prompts import SYSTEM
from refinery.traces.spool import file_stats
from refinery.wire.response_output import CallUsage
from refinery.wire.responses_client import JsonAnswer
from refinery.wire.structured_model import StructuredModel

log = logging.getLogger("refinery.staged")


@dataclass(frozen=True)
class FileTotals:
    """What a run's rendered files add up to, for sizing its calls: each file's chunks (by name,
    a name given twice summed) and all of them, which files hold runs, and each file's tokens with
    its separator lines (`stage1_groups.group_request`)."""

    chunks: dict[str, int]
    all_chunks: int
    run_files: frozenset[str]
    inline_sizes: dict[str, int]


_TOTALS: weakref.WeakKeyDictionary[RunTexts, FileTotals] = weakref.WeakKeyDictionary()
FILE_SEPARATOR_TOKENS = 40  # the "===== file: … =====" lines around an inline file, counted high


def file_totals(texts: RunTexts) -> FileTotals:
    """`FileTotals` of a run's files, added up once. Why: every Stage 1 call of a big trace added
    up all its files again (its result count, whether it holds every run file, each file's size):
    a pass over thousands of files for each of hundreds of groups, most of building a plan's bodies."""
    totals = _TOTALS.get(texts)
    if totals is None:
        chunks: dict[str, int] = {}
        stats = file_stats(texts.files)
        for name, _, tokens in stats:
            chunks[name] = chunks.get(name, 0) + file_chunks(tokens)
        names = [name for name, _, _ in stats]
        totals = FileTotals(
            chunks,
            sum(chunks.values()),
            frozenset(names[i] for i in range(len(names)) if texts.layout(i).run_ids),
            {name: tokens + FILE_SEPARATOR_TOKENS for name, _, tokens in stats},
        )
        _TOTALS[texts] = totals
    return totals


def texts_with_totals(files: Sequence[tuple[str, str]]) -> RunTexts:
    """`RunTexts(files)` with its `file_totals` added up now: made in the worker, so that the first
    stage call does not add up a big trace's thousands of files on the event loop. The HTTP client
    is imported here too, for the same reason: the analysis's client is built on the loop at its
    first call, and aiohttp's import (about 0.1 s of module code) would run there (`refinery plan`,
    which sends nothing, never comes here)."""
    import aiohttp  # noqa: F401

    texts = RunTexts(files)
    file_totals(texts)
    return texts


class StageCalls:
    def __init__(
        self,
        client: Callable[[], StructuredModel],
        model: str,
        *,
        max_output_tokens: Mapping[str, int],
        max_num_results: Mapping[str, int],
        temperature: float | None,
        input_budget: int,
        cost: CostCeiling | None = None,
        reasoning_effort: str | None = None,
        base_model: str | None = None,
    ) -> None:
        self._client = client  # built on first use: `refinery plan` never needs one; any StructuredModel
        self.model = model  # as sent (an Azure deployment's name)
        self.base_model = base_model or model  # what it is: budgets, prices, reasoning
        self.max_output_tokens = max_output_tokens
        self.max_num_results = max_num_results
        self.temperature = temperature
        self.input_budget = input_budget
        self.cost = cost
        self.reasoning_effort = check_effort(reasoning_effort)
        self.search_allowance = 0  # tokens `search_trace` results may add with no store (set when it is offered)

    def output_budget(self, stage: Stage) -> int:
        """The stage's `max_output_tokens`: its answer budget, plus a reasoning model's allowance
        for thinking (`core.model_families`)."""
        return output_budget(self.base_model, self.max_output_tokens[stage.key], self.reasoning_effort)

    def results(
        self,
        stage: Stage,
        run: AnalysisRun | None = None,
        *,
        sized: bool = True,
        inline: Collection[str] = (),
        most: int = MAX_RESULTS,
    ) -> int:
        """`max_num_results` of a stage's `file_search`: the count given for the stage, else sized
        to the run's store (`stages.sized_results`, from the chunks of its rendered files but the
        `inline` ones, at most `most`), else (no files at hand, or `sized=False`: Stage 1 read by
        search) the default 8."""
        given = self.max_num_results.get(stage.key)
        if given is not None:
            return int(given)
        if not sized or run is None or run.texts is None:
            return DEFAULT_RESULTS
        totals = file_totals(run.texts)
        left_out = sum(totals.chunks.get(name, 0) for name in set(inline))
        return sized_results(totals.all_chunks - left_out, most)

    def allowance(self, body: dict[str, Any], store_id: str | None) -> int:
        """The tokens retrieval may add to this request: its `file_search` result count of whole
        chunks (none when the body has no `file_search`); with no store, what the results of
        `search_trace` calls may add (0 unless it is offered)."""
        if store_id:
            return retrieval_allowance(body)
        return self.search_allowance

    def body(
        self,
        stage: Stage,
        user_text: str,
        store_id: str | None,
        filters: dict[str, Any] | None = None,
        *,
        inline: bool = False,
        results: int | None = None,
    ) -> dict[str, Any]:
        """The request body of one stage call (pure); `inline`: no tools (read with no store, or a
        Stage 1 call that holds every file); `results`: its `file_search` result count (default:
        the stage's count as given, else 8)."""
        if stage.searches and not store_id and not inline:
            raise StageError(stage.key, "no vector store: call prepare() or pass vector_store_id")
        context = RequestContext(
            self.model,
            user_text,
            store_id=None if inline else store_id,
            system=SYSTEM,
            max_output_tokens=self.output_budget(stage),
            max_num_results=results or self.results(stage),
            temperature=self.temperature,
            filters=None if inline else filters,
            reasoning_effort=self.reasoning_effort,
            family=self.base_model,
        )
        return build_request(stage, context)

    def worst_input(self, body: dict[str, Any], store_id: str | None) -> int:
        """A request's input at its largest: its own text plus every chunk retrieval may add."""
        return estimate_body_tokens(body) + self.allowance(body, store_id)

    async def call(
        self,
        run: AnalysisRun,
        stage: Stage,
        user_text: str,
        *,
        filters: dict[str, Any] | None = None,
        inline: bool = False,
        results: int | None = None,
    ) -> tuple[Any, CallUsage, Verification | None]:
        """One stage call, its output validated and its citations checked; one re-ask when a
        cited run id is not in the trace or a quote is not in the run's text. `inline`: the call
        holds all it reads (no `file_search`); `results`: its result count (default: sized to
        the run's store, `results`)."""
        shape = _Shape(filters, inline or run.reading == "none", results or self.results(stage, run))
        answer = await self._ask(run, stage, user_text, shape)
        output, usage = self._validated(stage, answer.data), answer.usage
        if run.texts is None:
            return output, usage, None
        check = await in_worker(verify, answer.data, run.texts)  # reads run texts: off the loop
        if check.unverified:
            log.info(
                "%s: %d of %d citations unverified; asking once to fix them",
                stage.key,
                len(check.unverified),
                check.cited,
            )
            again = await self._ask(
                run, stage, reask_text(user_text, check.unverified, compact_json(answer.data)), shape
            )
            usage = usage + again.usage
            try:
                fixed = self._validated(stage, again.data)
            except StageError:
                fixed = None
            if fixed is not None:
                recheck = await in_worker(verify, again.data, run.texts)
                if len(recheck.unverified) <= len(check.unverified):
                    output, check = fixed, recheck
        return output, usage, check

    async def _ask(self, run: AnalysisRun, stage: Stage, user_text: str, shape: _Shape) -> JsonAnswer:
        def sized() -> tuple[dict[str, Any], int, int]:  # a big body's token count is CPU work: off the loop
            body = self.body(stage, user_text, run.store_id, shape.filters, inline=shape.inline, results=shape.results)
            return body, self.allowance(body, run.store_id), self.worst_input(body, run.store_id)

        body, allowance, worst_input = await in_worker(sized)
        if worst_input > self.input_budget:
            raise ContextBudgetError(
                f"{stage.key}: the request would carry about {worst_input} input tokens (with retrieved chunks), "
                f"over the "
                f"budget of {self.input_budget} for {self.model}; raise context_window / the budget share, or lower "
                f"max_num_results"
            )
        guard = self.cost.guard(allowance) if self.cost else None
        label = f"{run.trace_id or 'trace'}:{stage.key}"
        if run.search is None:
            return await self._client().create_json(body, stage.schema, label=label, guard=guard)
        body = with_search_tool(body)  # no store: the model may search the trace's runs (answered here)
        return await self._client().create_json(body, stage.schema, label=label, guard=guard, tools=run.search)

    @staticmethod
    def _validated(stage: Stage, data: Any) -> Any:
        try:
            return stage.output_model.model_validate(data)
        except ValidationError as exc:
            raise StageError(stage.key, f"output does not match the stage model: {exc.errors()[:3]}") from exc


@dataclass(frozen=True)
class _Shape:
    """How one call reads besides its text: its `file_search` filter, no tools at all, its result count."""

    filters: dict[str, Any] | None
    inline: bool
    results: int


def record_check(run: AnalysisRun, stage: Stage, check: Verification | None) -> dict[str, Any] | None:
    """Add one call's verification to the run's count for the stage; its dict for a checkpoint."""
    if check is None:
        return None
    run.verification[stage.key] = run.verification.get(stage.key, Verification()).add(check)
    return check.as_dict()
