"""A deterministic stand-in for the model: JSON valid against the requested strict schema.

It is a test double and says so: no model reads anything. It answers as the best deterministic
heuristic over the request text can (`standin_reading`): the decisive step is the run that
failed — the first the trace states failed, else the first whose output reads like an error —
the root cause quotes that run's error, the responsible agent is its agent, the findings and next
actions name it; timeline entries, citations and evidence come from the runs' own sections, so a
pipeline downstream sees realistic, citable, schema-valid output. Its summary says it is the
stand-in's. Same input, same output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from refinery.testing.retrieval import Chunk
from refinery.testing.standin_reading import Reading, RunSeen, prompt_documents, read_request, runs_in

__all__ = ["RunSeen", "StandInModel", "prompt_documents", "reasons", "runs_in"]

# an error's words → a category of the taxonomy the schema offers (the first that matches)
_CATEGORIES = (
    (r"time(?:d)? ?out|deadline exceeded", "timeout"),
    (r"rate.?limit|too many requests|\b429\b", "rate_limiting"),
    (r"unauthori[sz]ed|forbidden|authenticat|api key|\b40[13]\b", "authentication_error"),
    (r"not found|no such|does not exist|\b404\b", "resource_not_found"),
    (r"out of memory|quota|exhausted|too large|context length", "resource_exhaustion"),
    (r"ModuleNotFound|ImportError|command not found|permission denied", "environment_setup_error"),
    (r"KeyError|TypeError|ValueError|argument|parameter|invalid|json|pars(?:e|ing)|format", "formatting_error"),
    (r"\b5\d\d\b|unavailable|connection|service", "service_error"),
)
_FAILURE_TYPES = {"formatting_error": "output_parsing_issue", "other": "model_limitation"}
STANDIN_LABEL = "Stand-in heuristic (refinery's test double; no model read this trace)"


def category_of(run: RunSeen) -> str:
    for pattern, category in _CATEGORIES:
        if re.search(pattern, run.error, re.I):
            return category
    return "service_error" if run.kind == "tool" else "other"


PROSE_CHARS = 400  # the longest text the stand-in writes in one field


class StandInModel:
    """Fills a strict schema from retrieved chunks; `max_items` bounds every array."""

    disclaimer = "refinery.testing stand-in model output (deterministic test double; no analysis was performed)"

    def __init__(self, max_items: int = 8) -> None:
        self.max_items = max_items

    def answer(
        self,
        schema: dict[str, Any],
        chunks: Sequence[Chunk],
        user_text: str = "",
        *,
        fits: Callable[[str], bool] | None = None,
    ) -> Any:
        """The answer; with `fits`, arrays are shortened (down to one item) until its JSON fits, as
        a model told its output budget writes less — only what cannot fit at all is cut off. It
        reads the trace files given in the prompt as well as the retrieved chunks."""
        reading = read_request(chunks, user_text)
        docs = [*chunks, *prompt_documents(user_text)]
        lines = [
            ln.strip() for c in docs for ln in c.text.splitlines() if len(ln.strip()) > 20 and not ln.startswith("#")
        ]
        items = self.max_items
        while True:
            value = _Filler(reading, docs, lines, user_text, items).fill(schema, name="", index=0, run=None)
            if fits is None or items <= 1 or fits(json.dumps(value, ensure_ascii=False)):
                return value
            items //= 2


def _q(text: str) -> str:
    return f"“{text}”" if text else "(no error text)"


class _Filler:
    def __init__(
        self, reading: Reading, chunks: Sequence[Chunk], lines: list[str], user_text: str, max_items: int
    ) -> None:
        self.reading, self.chunks, self.lines = reading, chunks, lines
        self.runs = reading.runs
        self.failure = reading.failure
        self.max_items = max_items
        self.user_text = user_text
        self.counter = 0

    def _text(self) -> str:
        self.counter += 1
        if not self.lines:
            return "PONG" if "PONG" in self.user_text else StandInModel.disclaimer
        return self.lines[(self.counter - 1) % len(self.lines)][:160]

    def _items(self, name: str, props: dict[str, Any]) -> list[RunSeen] | None:
        """The runs an array's items are about, one item each: the failures for lists of faults,
        every run seen for a timeline; None for arrays about no run."""
        if name in ("errors", "events", "top_findings", "actions_next", "remediations") and self.reading.failures:
            return self.reading.failures
        if name in ("errors", "events"):
            return [r for r in self.runs if r.quote][:1] if name == "errors" else []
        if "run_id" in props and self.runs:
            if len(self.runs) <= self.max_items:
                return self.runs
            # more runs than it may list: the failed ones first, then the earliest, in trace order
            failed = [r.run_id for r in self.reading.failures if r in self.runs][: self.max_items]
            rest = [r.run_id for r in self.runs if r.run_id not in failed][: self.max_items - len(failed)]
            chosen = {*failed, *rest}
            return [r for r in self.runs if r.run_id in chosen]
        return None

    def fill(self, schema: dict[str, Any], *, name: str, index: int, run: RunSeen | None, owner: str = "") -> Any:
        if "anyOf" in schema:
            branches = [b for b in schema["anyOf"] if b.get("type") != "null"] or schema["anyOf"]
            return self.fill(branches[0], name=name, index=index, run=run, owner=owner)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self._enum(schema["enum"], name, run, owner)
        types = schema.get("type")
        kind = next((t for t in types if t != "null"), "null") if isinstance(types, list) else types
        if kind == "object":
            props = schema.get("properties", {})
            if name in ("decisive_step", "symptom", "mechanism", "cause"):
                run = self.failure or (self.runs[-1] if self.runs else None)
            elif run is None and "run_id" in props and self.runs:
                run = self.runs[index % len(self.runs)]
            return {k: self.fill(v, name=k, index=index, run=run, owner=name) for k, v in props.items()}
        if kind == "array":
            return self._array(schema.get("items", {}), name, run, owner)
        if kind == "integer":
            return index + 1
        if kind == "number":
            return 0.5
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        said = self._string(name, run, owner)
        # prose bounded as a model's answer is (names and errors can be long); ids and files exact
        return said if name in ("run_id", "file", "section_or_lines", "section") else said[:PROSE_CHARS]

    def _array(self, items: dict[str, Any], name: str, run: RunSeen | None, owner: str) -> list[Any]:
        strings = self._strings(name, run)
        if strings is not None:
            return strings[: self.max_items]
        if name == "expectations" and self.reading.clauses:
            return [self._clause(c) for c in self.reading.clauses[: self.max_items]]
        about = self._items(name, items.get("properties", {})) if items.get("type") == "object" else None
        if about is not None:
            n = max(0, min(len(about), self.max_items))
            return [self.fill(items, name=name, index=i, run=about[i], owner=owner) for i in range(n)]
        run = run or (self.failure if items.get("type") == "object" else None)  # evidence, citations: of the failure
        return [self.fill(items, name=name, index=i, run=run, owner=owner) for i in range(min(1, self.max_items))]

    def _strings(self, name: str, run: RunSeen | None) -> list[str] | None:
        f = self.failure
        if name == "tool_calls":
            return list(run.tool_calls) if run else []
        if name == "files_scanned":
            return self.reading.files
        if name in ("remaining", "missing_context", "incorrect_assumptions"):
            return []
        if name in ("suggested_focus_areas", "affected_components"):
            if f is None:
                return []
            agent = self.reading.agent_of(f)
            return (
                list(dict.fromkeys([f.name, agent]))
                if name == "affected_components"
                else [f"{f.name} ({f.run_id}): {f.error}"]
            )
        return None

    def _clause(self, clause: str) -> dict[str, Any]:
        """An expectation clause: missing when it speaks of a failed run (a word of its name), else
        partial — the stand-in checks clauses against the failures only."""
        words = lambda text: {w.lower() for w in re.findall(r"[A-Za-z]{4,}", text)}  # noqa: E731
        hit = next((r for r in self.reading.failures if words(r.name.replace("_", " ")) & words(clause)), None)
        gap = (
            f"{hit.name} ({hit.run_id}) failed: {_q(hit.error)}"
            if hit
            else "Not checked: the stand-in compares a clause only with the runs that failed."
        )
        cite = hit or self.failure
        citations = (
            [{"file": cite.filename, "section_or_lines": f"Run {cite.seq:03d}"}] if cite and cite.filename else []
        )
        return {"clause": clause, "status": "missing" if hit else "partial", "gap": gap, "citations": citations}

    def _enum(self, values: list[Any], name: str, run: RunSeen | None, owner: str) -> Any:
        def first(*preferred: str) -> Any:
            return next((v for v in preferred if v in values), values[0])

        failing = run if run is not None and (run.failed or run.error) else None
        f = self.failure
        if name == "category":
            return first(category_of(failing or f) if (failing or f) else "other", "other")
        if name == "failure_type":
            category = category_of(f) if f else "other"
            return first(_FAILURE_TYPES.get(category, "orchestration_issue"), "model_limitation")
        if name == "confidence":
            return first("low")
        if name == "status" and owner != "expectations":
            return first("error") if run and run.failed else first("ok" if run and run.ok else "not stated")
        if name == "kind":
            return first("failure" if failing and failing.failed else "anomaly")
        if name in ("impact", "severity"):
            return first("high") if failing and f and failing.run_id == f.run_id else first("medium")
        if name == "target":
            return first("tooling" if f and f.kind == "tool" else "prompt")
        if name == "effort":
            return first("low")
        if failing:
            return first("error", "failure", "missing", "high")
        return values[0]

    def _string(self, name: str, run: RunSeen | None, owner: str) -> str:
        chunk = self.chunks[0] if self.chunks else None
        f = self.failure
        if name == "run_id":
            return run.run_id if run else "unknown-run"
        if name in ("run_name", "name"):
            return run.name if run else "unknown"
        if name in ("responsible_agent", "owner"):
            named = (run if name == "owner" else None) or f or run or (self.runs[-1] if self.runs else None)
            return self.reading.agent_of(named) if named else "unknown"
        if name == "evidence" and run is not None:
            return run.error or run.quote
        if name == "file":
            return run.filename if run and run.filename else (chunk.filename if chunk else "no-file-retrieved")
        if name in ("section_or_lines", "section"):
            return f"Run {run.seq:03d}" if run and run.seq else "whole file"
        if name == "status":
            return "error" if run and run.failed else ("ok" if run and run.ok else "not stated")
        said = self._said(name, run, owner)
        return said if said is not None else self._text()

    def _said(self, name: str, run: RunSeen | None, owner: str) -> str | None:
        """The prose fields, written from the reading: every one names the failed run and quotes it."""
        f = self.failure
        if owner == "timeline" and run is not None:
            return {
                "action": f"{run.kind or 'run'} {run.name}" + (f" failed: {run.error}" if run.error else ""),
                "key_inputs": run.inputs or "(none shown)",
                "key_outputs": run.error or run.outputs or "(none shown)",
            }.get(name)
        if f is None:
            return {
                "root_cause": "The stand-in found no run marked as failed and no output that reads like an error.",
                "summary": f"{STANDIN_LABEL}: no run failed that it could see.",
                "reason": "No failed run found in what the stand-in read; this is the last run it saw.",
            }.get(name)
        agent = self.reading.agent_of(f)
        where = f"{f.name} ({f.run_id})"
        subject = run if run is not None and run.error else f
        how = "failed with" if subject.failed else "reports"
        first_fail = "failed" if subject.failed else "reads like an error"
        said = {
            "root_cause": f"{where} {how} {_q(f.error)}" + (f", in {agent}'s run." if agent != f.name else "."),
            "reason": f"The first run that {'failed' if f.failed else 'reads like an error'}: {_q(f.error)}",
            "summary": f"{STANDIN_LABEL}: {where} {how} {_q(f.error)}; responsible agent: {agent}.",
            "detailed_analysis": (
                f"{STANDIN_LABEL}. {len(self.reading.failures)} run(s) failed or read like an error; the first is "
                f"{where}, which {how} {_q(f.error)}. Its agent is {agent}."
            ),
            "title": f"{subject.name} {how} {_q(subject.error)}",
            "detail": f"{subject.name} ({subject.run_id}) {how} {_q(subject.error)}.",
            "description": {
                "symptom": f"{where} {how} {_q(f.error)}.",
                "mechanism": f"{agent} went on without what {f.name} should have returned."
                if agent != f.name
                else f"What {f.name} did next rested on that error.",
                "cause": f"{f.name} {how} {_q(f.error)}.",
            }.get(owner, f"{subject.name} {how} {_q(subject.error)}."),
            "action": f"Make {subject.name} succeed, or handle its failure in {agent}: {_q(subject.error)}",
            "rationale": f"{subject.name} ({subject.run_id}) is the first run that {first_fail}: {_q(subject.error)}.",
            "gap": f"{where} {how} {_q(f.error)}",
        }
        return said.get(name)


def reasons(model: str) -> bool:
    """A reasoning model (o-series, gpt-5 but its -chat snapshots), by name, as the API tells them."""
    name = model.rsplit("/", 1)[-1].lower()
    return (name.startswith("gpt-5") and "-chat" not in name) or (
        len(name) > 1 and name[0] == "o" and name[1].isdigit()
    )
