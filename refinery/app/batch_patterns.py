"""A batch's failure patterns beyond grouping: the model's merge and names, the table its summaries
open with, and the line each report gets linking back to its pattern."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from refinery.core.artifacts import write_text_atomic
from refinery.errors import RefineryError
from refinery.patterns.grouping import Pattern
from refinery.patterns.merge import merge_patterns
from refinery.report.markdown import cell
from refinery.wire.responses_client import ResponsesClient

__all__ = ["link_reports", "named_patterns", "patterns_md"]


def patterns_md(patterns: list[Pattern]) -> list[str]:
    """The patterns table a batch summary opens with: each pattern's traces link to their reports."""
    if not patterns:
        return []
    lines = ["## Failure patterns", "", "| # | pattern | traces | share | est. cost (USD) |", "|---|---|---|---|---|"]
    for i, p in enumerate(patterns, 1):
        links = ", ".join(f"[{cell(t)}]({t}/report.md)" for t in p.traces[:20]) + (" …" if len(p.traces) > 20 else "")
        cost = "n/a" if p.cost_usd is None else f"{p.cost_usd:.4f}"
        lines.append(f"| {i} | {cell(p.title)} | {p.count}: {links} | {p.share:.0%} | {cost} |")
    return [*lines, "", "## Traces", ""]


async def named_patterns(
    client: ResponsesClient,
    patterns: list[Pattern],
    outcomes: Mapping[str, Any],
    model: str,
    max_cost_usd: float | None,
) -> tuple[list[Pattern], str | None]:
    """The model's merge, split and names; a failure of that one call keeps the deterministic patterns."""
    root_causes = {
        p.id: [str(outcomes[t].root_cause) for t in p.traces if getattr(outcomes[t], "root_cause", None)]
        for p in patterns
    }
    per_trace = {
        t: {k: getattr(outcomes[t], k, None) for k in ("root_cause", "tokens", "cost_usd", "duration_s")}
        for p in patterns
        for t in p.traces
    }
    try:
        return await merge_patterns(
            client, patterns, root_causes, model=model, max_cost_usd=max_cost_usd, per_trace=per_trace
        )
    except RefineryError as exc:
        return patterns, f"pattern merge skipped: {exc}"


_PATTERN_MARK = "<!-- refinery:pattern -->"


def link_reports(out: Path, patterns: list[Pattern]) -> None:
    """Each trace's report names its failure pattern and links to it in the batch summary (a rerun
    replaces the line)."""
    for p in patterns:
        note_md = f"{_PATTERN_MARK} Failure pattern of this batch ({p.count} traces): [{cell(p.title)}](../summary.md)"
        note_html = (
            f'<p class="pattern">{_PATTERN_MARK}Failure pattern of this batch ({p.count} traces): '
            f'<a href="../summary.html#{html.escape(p.id)}"><bdi>{html.escape(p.title)}</bdi></a></p>'
        )
        for name in p.traces:
            md, page = out / name / "report.md", out / name / "report.html"
            if md.is_file():
                lines = [ln for ln in md.read_text(encoding="utf-8").split("\n") if _PATTERN_MARK not in ln]
                write_text_atomic(md, "\n".join([lines[0], "", note_md, *lines[1:]]))
            if page.is_file():
                text = re.sub(r'<p class="pattern">.*?</p>', "", page.read_text(encoding="utf-8"))
                write_text_atomic(page, text.replace("</h1>", "</h1>" + note_html, 1))
