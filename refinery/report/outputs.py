"""What an analysis leaves on disk — usage with estimated cost, `report.md`, `report.html` —
written the same way by `refinery run`, `refinery batch` and library callers, for either analyst
(a `StagedAnalysisResult`, or the `CompleteAnalysis` the orchestrator returns).

Why one module: the totals and the report were computed in two places (the CLI and the batch
runner) and had started to disagree; a batch item's folder had no report at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from refinery.analysis.stage_results import StagedAnalysisResult, from_complete_analysis
from refinery.analysis.stages import STAGE_ARTIFACTS
from refinery.core.artifacts import write_json_atomic, write_text_atomic
from refinery.core.dismantle import emptied
from refinery.core.gc_freeze import objects_frozen
from refinery.core.models import CompleteAnalysis, Trace
from refinery.core.pricing import PRICES_AS_OF, estimate_cost_usd
from refinery.core.tokens import TOKEN_COUNTS
from refinery.report import gather, render_html, render_markdown
from refinery.traces.spool import upload_files_for

USAGE_ARTIFACT = "usage.json"


AnyResult = StagedAnalysisResult | CompleteAnalysis


def as_staged(result: AnyResult, trace: Trace | None = None) -> StagedAnalysisResult:
    return (
        result
        if isinstance(result, StagedAnalysisResult)
        else from_complete_analysis(result, trace.trace_id if trace else None)
    )


def usage_summary(
    result: AnyResult,
    model: str,
    redactions: dict[str, int] | None = None,
    prices: Mapping[str, tuple[float, float, float]] | None = None,
) -> dict[str, Any]:
    """Tokens and estimated cost per stage and in total (cost None when a price is unknown).
    `model`: the model asked for — its base model on Azure OpenAI; `prices`: another table (the
    Batch API's rate, `core.pricing.batch_prices`)."""
    result = as_staged(result)
    stages: dict[str, Any] = {}
    total: dict[str, Any] = dict.fromkeys(TOKEN_COUNTS, 0)
    costs: list[float | None] = []
    for stage, u in sorted(result.usage.items()):
        d: dict[str, Any] = u.counts()
        # the model the API says answered (a dated snapshot), else the one asked for (an Azure
        # deployment answers under names of its own: its base model's price)
        cost = estimate_cost_usd(d, u.model or model, prices)
        d["estimated_cost_usd"] = cost if cost is not None else estimate_cost_usd(d, model, prices)
        if u.unknown or any(d[k] < 0 for k in TOKEN_COUNTS):  # usage the server stated as no count: unknown
            d["estimated_cost_usd"] = None
        stages[stage] = d
        costs.append(d["estimated_cost_usd"])
        for k in TOKEN_COUNTS:
            total[k] += d[k]
    total["estimated_cost_usd"] = (
        None if any(c is None for c in costs) else round(sum(c for c in costs if c is not None), 10)
    )
    return {
        "model": model,
        "prices_as_of": PRICES_AS_OF,
        "cost_is_estimate": True,
        "stages": stages,
        "total": total,
        "redactions": redactions or {},
    }


def write_outputs(
    out: str | Path,
    result: AnyResult,
    trace: Trace | None,
    usage: dict[str, Any],
    files: Sequence[tuple[str, str]] | None = None,
) -> list[str]:
    """`usage.json`, `report.md` and `report.html` in `out`, each written atomically; returns
    every artifact of the analysis (the stage files too).

    `files`: the trace's files as the analysis uploaded them (`StagedFailureAnalyst.
    uploaded_files`), so the report embeds exactly the text that was cited, without rendering a
    big trace again; without them the trace is rendered here. Embedded sections are redacted
    either way."""
    out = Path(out)
    result = as_staged(result, trace)
    with objects_frozen():  # a big trace's report rows: out of the collector's passes (`core.gc_freeze`)
        if files is None and trace is not None:
            files = upload_files_for(trace)[0]
        view = gather(result, trace, usage, files)
        write_json_atomic(out / USAGE_ARTIFACT, usage)
        write_text_atomic(out / "report.md", render_markdown(view))
        write_text_atomic(out / "report.html", render_html(view))
        emptied(view.runs)  # a row a run: freed in one cascade, a 100 MB trace's held the host's loop
    return [
        str(out / n)
        for n in (*[STAGE_ARTIFACTS[s] for s in sorted(result.usage)], "report.md", "report.html", USAGE_ARTIFACT)
    ]
