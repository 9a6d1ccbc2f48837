"""Failure patterns across a batch: which few causes account for most failures. Pure.

Why: a nightly batch gives one report per failed trace; what a team decides is which cause to fix
first ("31 of 40 failures are the order lookup timing out"). This is the deterministic pass: each
analysed trace gets a key from facts of the trace itself — the failing run's name (the decisive
step's run, else the first failed run) and that run's own error text with numbers, ids, quoted
values, paths and URLs replaced by placeholders — so the same cause with different order numbers
or request ids groups without a model. A trace whose failing run states no error is keyed on what
its runs say: the output text of the tool call the diagnosis rests on (the blamed run, else the
tool call before it, else the trace's last), normalised the same way, with the tool's name; only a
trace with no tool call that says anything falls back to the diagnosis's failure type and error
categories. Patterns are ranked by how many traces they hold,
then by what those analyses cost, then by the time they took.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["Pattern", "find_patterns", "normalise", "ranked", "total_cost"]

_RULES = [
    (re.compile(r"https?://\S+"), "<url>"),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "<email>"),
    (re.compile(r"(?:/[\w.-]+){2,}"), "<path>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{12,}\b", re.I), "<id>"),
    (re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]+\b"), "<id>"),  # req_f8a2, order-42, W5918442, u-7
    (re.compile(r"\"[^\"]*\"|'[^']*'"), "<quoted>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
]


def normalise(text: str) -> str:
    """An error text with what varies between occurrences of one cause replaced by placeholders."""
    out = text.strip().splitlines()[0] if text.strip() else ""
    for pattern, placeholder in _RULES:
        out = pattern.sub(placeholder, out)
    return out.strip().lower()[:160]


def total_cost(costs: Iterable[float | None]) -> float | None:
    """The summed cost, unknown (None) when any part is."""
    costs = list(costs)
    return None if any(c is None for c in costs) else round(sum(c or 0.0 for c in costs), 4)


def ranked(patterns: Iterable[Pattern]) -> list[Pattern]:
    """Largest first, then the costliest, then the longest."""
    return sorted(patterns, key=lambda p: (-p.count, -(p.cost_usd or 0.0), -p.wall_s, p.title))


class Pattern(BaseModel):
    id: str
    title: str
    cause: str  # the normalised error text, or the failure type and categories
    traces: list[str] = Field(default_factory=list)  # batch item names (their folders hold the reports)
    count: int = 0
    share: float = 0.0  # of the analysed traces
    tokens: int = 0
    cost_usd: float | None = None
    wall_s: float = 0.0  # the analysed traces' time (their failed runs' cost in waiting), summed
    # named by the model's pass (`agents.pattern_merge`), when it ran
    affected: list[str] = Field(default_factory=list)
    suggested_fix: str | None = None
    merged_from: list[str] = Field(default_factory=list)  # the deterministic groups it joins


def _key(o: dict[str, Any]) -> tuple[str, str]:
    run = str(o.get("failing_run") or "")
    error = normalise(str(o.get("failing_error") or ""))
    if error:
        return run.lower(), error
    said = normalise(str(o.get("said") or ""))
    if said:  # no run states an error: what the tool call the diagnosis rests on said
        return str(o.get("said_by") or run).lower(), said
    categories = ",".join(sorted(set(o.get("error_categories") or [])))
    return run.lower(), f"{o.get('failure_type') or 'unknown'} [{categories}]"


def find_patterns(outcomes: Iterable[Any]) -> list[Pattern]:
    """Patterns over the analysed outcomes (`TraceOutcome`s or their JSON), largest first."""
    done = [o if isinstance(o, dict) else o.model_dump() for o in outcomes]
    done = [o for o in done if o.get("status") == "done"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for o in done:
        groups.setdefault(_key(o), []).append(o)
    patterns = []
    for (run, cause), members in groups.items():
        patterns.append(
            Pattern(
                id="p-" + hashlib.sha256(f"{run}|{cause}".encode()).hexdigest()[:8],
                title=f"{run or 'the run'}: {cause}" if run else cause,
                cause=cause,
                traces=sorted(str(m["name"]) for m in members),
                count=len(members),
                share=round(len(members) / len(done), 3),
                tokens=sum(int(m.get("tokens") or 0) for m in members),
                cost_usd=total_cost(m.get("cost_usd") for m in members),
                wall_s=round(sum(float(m.get("duration_s") or 0.0) for m in members), 3),
            )
        )
    return ranked(patterns)
