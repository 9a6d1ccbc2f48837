"""Checking a stage's citations against the trace: does each cited run exist, and does each quote
occur in that run's text (or in the chunks `file_search` returned)? Pure.

Why: a diagnosis that cites a run id that is not in the trace, or "quotes" words the run never
said, reads as well as a grounded one. Checking is cheap — the rendered files and the retrieved
chunks are already here — so every stage is checked, the model is asked once to fix what fails,
and what still fails is kept but marked unverified, with counts a user (and the report) can see.

Quotes are compared with white space normalised, after removing the run-id markers and fence
lines rendering inserts, so a quote that crosses a marker still matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from refinery.traces.render import run_sections

_MARKER = re.compile(r"^\[run_id: [^\]]+ · continued\]$", re.M)
_FENCE = re.compile(r"^`{3,}\s*$", re.M)
NOT_A_RUN = frozenset({"", "unknown", "unknown-run", "none", "n/a"})


def normalise(text: str) -> str:
    """White space folded, rendering's markers and fence lines removed, quote marks unified."""
    text = _FENCE.sub(" ", _MARKER.sub(" ", text))
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    return " ".join(text.split())


class RunTexts:
    """Each run's rendered text, by run id, from the files uploaded for the trace.

    Only where each run is (which files) is kept; a run's text is read when a citation of it is
    checked. Why: the files of a big trace are spooled to disk (`traces.spool`), and a normalised
    copy of every run would put all of that text back in memory for the few dozen runs cited.
    """

    def __init__(self, files: Sequence[tuple[str, str]]) -> None:
        self.files = files
        self.where: dict[str, tuple[int, ...]] = {}  # run id → the files holding it (almost always one)
        self._texts: dict[str, str] = {}
        for i, (_, text) in enumerate(files):
            for rid, _section in run_sections(text):
                places = self.where.get(rid, ())
                if i not in places:
                    self.where[rid] = (*places, i)

    def __contains__(self, run_id: str) -> bool:
        return run_id in self.where

    def text(self, run_id: str) -> str:
        """The run's rendered text, normalised (see `normalise`); '' for a run not in the trace."""
        if run_id not in self._texts:
            parts = [normalise(section) for i in self.where.get(run_id, ()) for rid, section in run_sections(self.files[i][1]) if rid == run_id]
            self._texts[run_id] = " ".join(p for p in parts if p)
        return self._texts[run_id]


@dataclass(frozen=True)
class Claim:
    path: str  # where in the stage's JSON, e.g. "errors[2]"
    run_id: str
    quote: str | None = None


@dataclass
class Verification:
    """A stage's citations: how many, how many checked out, and what did not."""

    cited: int = 0
    verified: int = 0
    unverified: list[dict[str, Any]] = field(default_factory=list)  # {path, run_id, quote?, problem}

    def add(self, other: "Verification") -> "Verification":
        return Verification(self.cited + other.cited, self.verified + other.verified, self.unverified + other.unverified)

    def as_dict(self) -> dict[str, Any]:
        return {"cited": self.cited, "verified": self.verified, "unverified": list(self.unverified)}


def claims_of(data: Any, path: str = "") -> list[Claim]:
    """Every run id a stage output cites (`run_id` fields), with the quote beside it (`evidence`)."""
    found: list[Claim] = []
    if isinstance(data, Mapping):
        rid = data.get("run_id")
        if isinstance(rid, str) and rid.strip().lower() not in NOT_A_RUN:
            quote = data.get("evidence") if isinstance(data.get("evidence"), str) else None
            found.append(Claim(path or "(root)", rid.strip(), quote))
        for key, value in data.items():
            found.extend(claims_of(value, f"{path}.{key}" if path else str(key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.extend(claims_of(value, f"{path}[{i}]"))
    return found


def _bare(quote: str) -> str:
    """A quote without the quotation marks or ellipses a model wraps it in."""
    q = normalise(quote).strip().strip('"').strip("'").strip()
    return q.removeprefix("...").removesuffix("...").removeprefix("…").removesuffix("…").strip()


def verify(data: Any, runs: RunTexts, chunks: Iterable[str] = ()) -> Verification:
    """Check every claim of a stage output; a quote passes in its run's text or in a retrieved chunk."""
    result = Verification()
    chunk_texts: list[str] | None = None
    for claim in claims_of(data):
        result.cited += 1
        if claim.run_id not in runs:
            result.unverified.append({"path": claim.path, "run_id": claim.run_id, "problem": f"run id {claim.run_id!r} is not in the trace"})
            continue
        if claim.quote:
            q = _bare(claim.quote)
            if q and q not in runs.text(claim.run_id):
                chunk_texts = chunk_texts if chunk_texts is not None else [normalise(c) for c in chunks]
                if not any(q in c for c in chunk_texts):
                    result.unverified.append(
                        {"path": claim.path, "run_id": claim.run_id, "quote": claim.quote[:200], "problem": f"the quote is not in run {claim.run_id}'s text"}
                    )
                    continue
        result.verified += 1
    return result


def reask_text(user_text: str, problems: list[dict[str, Any]], previous_json: str) -> str:
    """The user text of the one re-ask: the original request, what failed, and the answer to fix."""
    listed = "\n".join(f"- {p['path']}: {p['problem']}" for p in problems[:30])
    return (
        f"{user_text}\n\nSome citations in your previous answer could not be checked against the trace:\n{listed}\n"
        "Answer again in the same JSON shape. Cite only run ids that appear in [run_id: ...] headings of the files, and "
        "quote evidence word for word from that run's text. Your previous answer was:\n" + previous_json
    )
