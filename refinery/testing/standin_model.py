"""A deterministic stand-in for the model: JSON valid against the requested strict schema.

It is a test double and says so: it does not analyse anything. It fills each field from the
retrieved text — run ids and names from `[run_id: …]` headings, file names and "Run 007"
sections from the chunks, status "error" where a run says so, the responsible agent from a
retrieved run's name and evidence quoted from that run's own text — so a pipeline downstream sees
realistic, citable, schema-valid output. Same input, same output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from refinery.testing.retrieval import Chunk

_RUN_HEADING = re.compile(
    r"^## (?:Run|Step) (\d+): (.*?) \[run_id: ([^\]]+)\]\n(.*?)(?=^## (?:Run|Step) |\Z)", re.M | re.S
)


@dataclass(frozen=True)
class RunSeen:
    seq: int
    name: str
    run_id: str
    failed: bool
    filename: str
    ok: bool = False
    quote: str = ""  # a line of the run's own text, for fields that quote evidence


def runs_in(chunks: Sequence[Chunk]) -> list[RunSeen]:
    """The runs whose headings appear in the chunks, in trace order, once each."""
    seen: dict[str, RunSeen] = {}
    for c in chunks:
        for m in _RUN_HEADING.finditer(c.text):
            rid = m.group(3)
            if rid not in seen:
                body = m.group(4)
                seen[rid] = RunSeen(
                    int(m.group(1)),
                    m.group(2),
                    rid,
                    "- status: error" in body,
                    c.filename,
                    "- status: ok" in body,
                    _quote(body),
                )
    return sorted(seen.values(), key=lambda r: r.seq)


def _quote(section: str) -> str:
    """The first line of a run's content — inside a fenced block, where the trace's own text is
    shown, never a heading field, a marker or a note — as a quote."""
    fence: str | None = None
    best = ""  # the first content line long enough to quote, else the first at all
    for line in section.splitlines():
        text = line.strip()
        if fence is None and text.startswith("```") and set(text) == {"`"}:
            fence = text
        elif fence is not None and text == fence:
            fence = None
        elif fence is not None and text and not text.startswith("[run_id:"):
            field = _FIELD.match(text)  # a `key: value` line of a rendered field: the value is what the trace said
            value = field.group(1) if field else text
            if value.endswith(":"):  # a key whose value is on the lines below
                continue
            if len(value) > 8 or (not best and value):
                best = value[:120]
                if len(value) > 8:
                    break
    return best


_FIELD = re.compile(r"^[\w.\-]+: (.+)$")
_FILE_LINE = re.compile(r"^- file: (\S+)$", re.M)


def prompt_documents(user_text: str) -> list[Chunk]:
    """Rendered trace files given in the prompt itself (a Stage 1 that reads its group inline):
    each from its `- file: NAME` header line to the next, read like a retrieved chunk."""
    heads = list(_FILE_LINE.finditer(user_text))
    docs = []
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(user_text)
        docs.append(Chunk(f"prompt:{m.group(1)}", m.group(1), user_text[m.start() : end], {}))
    return docs


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
        chunks = [*chunks, *prompt_documents(user_text)]
        runs = runs_in(chunks)
        lines = [
            ln.strip() for c in chunks for ln in c.text.splitlines() if len(ln.strip()) > 20 and not ln.startswith("#")
        ]
        items = self.max_items
        while True:
            value = _Filler(self, chunks, runs, lines, user_text, items).fill(schema, name="", index=0, run=None)
            if fits is None or items <= 1 or fits(json.dumps(value, ensure_ascii=False)):
                return value
            items //= 2


class _Filler:
    def __init__(
        self,
        model: StandInModel,
        chunks: Sequence[Chunk],
        runs: list[RunSeen],
        lines: list[str],
        user_text: str,
        max_items: int,
    ) -> None:
        self.model, self.chunks, self.runs, self.lines = model, chunks, runs, lines
        self.max_items = max_items
        self.user_text = user_text
        self.counter = 0

    def _text(self) -> str:
        self.counter += 1
        if not self.lines:
            return "PONG" if "PONG" in self.user_text else StandInModel.disclaimer
        return self.lines[(self.counter - 1) % len(self.lines)][:160]

    def fill(self, schema: dict[str, Any], *, name: str, index: int, run: RunSeen | None) -> Any:
        if "anyOf" in schema:
            branches = [b for b in schema["anyOf"] if b.get("type") != "null"] or schema["anyOf"]
            return self.fill(branches[0], name=name, index=index, run=run)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self._enum(schema["enum"], name, run)
        types = schema.get("type")
        kind = next((t for t in types if t != "null"), "null") if isinstance(types, list) else types
        if kind == "object":
            props = schema.get("properties", {})
            if run is None and "run_id" in props and self.runs:
                run = self.runs[index % len(self.runs)]
            return {k: self.fill(v, name=k, index=index, run=run) for k, v in props.items()}
        if kind == "array":
            items = schema.get("items", {})
            props = items.get("properties", {})
            # items about runs: one per run seen — for items that quote evidence, only runs with
            # something to quote (a model lists the faults it can show)
            runs = [r for r in self.runs if r.quote] if "evidence" in props else self.runs
            if items.get("type") == "object" and "run_id" in props and runs:
                n = max(0, min(len(runs), self.max_items))
                return [
                    self.fill(items, name=name, index=i, run=runs[i] if n > 1 else run or runs[0]) for i in range(n)
                ]
            return [self.fill(items, name=name, index=i, run=run) for i in range(min(1, self.max_items))]
        if kind == "integer":
            return index + 1
        if kind == "number":
            return 0.5
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        return self._string(name, run)

    def _enum(self, values: list[Any], name: str, run: RunSeen | None) -> Any:
        if run is not None and run.failed:
            for preferred in ("error", "failure", "missing", "high"):
                if preferred in values:
                    return preferred
        return values[0]

    def _string(self, name: str, run: RunSeen | None) -> str:
        chunk = self.chunks[0] if self.chunks else None
        if name == "run_id":
            return run.run_id if run else "unknown-run"
        if name in ("run_name", "name"):
            return run.name if run else "unknown"
        if name == "responsible_agent":
            named = run or (self.runs[-1] if self.runs else None)
            return named.name if named else "unknown"
        if name == "evidence" and run is not None:
            return run.quote
        if name == "file":
            return run.filename if run else (chunk.filename if chunk else "no-file-retrieved")
        if name in ("section_or_lines", "section"):
            return f"Run {run.seq:03d}" if run else "whole file"
        if name == "status":
            return "error" if run and run.failed else ("ok" if run and run.ok else "not stated")
        return self._text()


def reasons(model: str) -> bool:
    """A reasoning model (o-series, gpt-5 but its -chat snapshots), by name, as the API tells them."""
    name = model.rsplit("/", 1)[-1].lower()
    return (name.startswith("gpt-5") and "-chat" not in name) or (
        len(name) > 1 and name[0] == "o" and name[1].isdigit()
    )
