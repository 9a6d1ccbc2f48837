"""Checking a stage's citations against the trace: does each cited run exist, and does each quote
occur in that run's own source text? Pure.

Why: a diagnosis that cites a run id that is not in the trace, or "quotes" words the run never
said, reads as well as a grounded one. Checking is cheap — the rendered files are already here —
so every stage is checked, the model is asked once to fix what fails, and what still fails is
kept but marked unverified, with counts a user (and the report) can see.

"Verified" means one thing: the quote occurs (white space normalised) in text that came from the
trace for the cited run — its inputs, outputs, messages, error, events, attributes. Never in what
refinery writes around them (headings, field labels, run-id markers, notes about cuts or earlier
messages, the index) and never in another run's text, even when a retrieved chunk held both. The
renderer records which text is whose as it writes (`traces.source_text.FileLayout`); nothing here
parses the Markdown back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from refinery.core.dismantle import emptied
from refinery.traces.source_text import FileLayout

_MARKER = re.compile(r"^\[run_id: [^\]]+ · continued\]$", re.M)
_FENCE = re.compile(r"^`{3,}\s*$", re.M)
# A quotation inside a free-text reason: "…", “…” or `…`, long enough to be evidence.
_QUOTED = re.compile(r'"([^"]{8,})"|\u201c([^\u201d]{8,})\u201d|`([^`]{8,})`')
NOT_A_RUN = frozenset({"", "unknown", "unknown-run", "none", "n/a"})
_SEPARATE = " \x00 "  # between two source segments: no quote spans it


def normalise(text: str) -> str:
    """White space folded, quote marks unified: how quotes and source text are compared."""
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    return " ".join(text.split())


class RunTexts:
    """Each run's own source text, by run id, from the files uploaded for the trace and their
    layouts (`RenderedFiles` or `SpooledFiles`).

    Only where each run is (which files) is kept; a run's text is read when a citation of it is
    checked. Why: the files of a big trace are spooled to disk (`traces.spool`), and a normalised
    copy of every run would put all of that text back in memory for the few dozen runs cited.
    """

    def __init__(self, files: Sequence[tuple[str, str]]) -> None:
        layout = getattr(files, "layout", None)
        if layout is None:
            raise TypeError(
                "RunTexts needs rendered files with their layouts (RenderedFiles or SpooledFiles), not bare (name, "
                "text) pairs"
            )
        self.files = files
        self._layout = layout
        self.where: dict[str, tuple[int, ...]] = {}  # run id → the files holding it (almost always one)
        self._texts: dict[str, str] = {}
        for i in range(len(files)):
            for rid in dict.fromkeys(layout(i).run_ids):
                self.where[rid] = (*self.where.get(rid, ()), i)

    def __contains__(self, run_id: str) -> bool:
        return run_id in self.where

    def let_go(self) -> None:
        """Forget every run's place and text, a piece at a time (`core.dismantle`): a big trace's
        index of run ids, freed with the analysis in one cascade, held the host's loop."""
        emptied(self.where, self._texts)

    def layout(self, index: int) -> FileLayout:
        return self._layout(index)  # type: ignore[no-any-return]

    def text(self, run_id: str) -> str:
        """The run's own source text, normalised (see `normalise`), separate fields apart; '' for
        a run not in the trace."""
        if run_id not in self._texts:
            parts: list[str] = []
            for i in self.where.get(run_id, ()):
                text = self.files[i][1]
                for start, end, continues in self.layout(i).sources(run_id):
                    if parts and not continues:
                        parts.append(_SEPARATE)
                    parts.append(text[start:end])
            self._texts[run_id] = normalise(" ".join(parts))
        return self._texts[run_id]


@dataclass(frozen=True)
class Claim:
    path: str  # where in the stage's JSON, e.g. "errors[2]"
    run_id: str
    quote: str | None = None
    reason: str | None = None  # a free-text reason beside the run id (the decisive step's): its quotations are checked


@dataclass
class Verification:
    """A stage's citations: how many, how many checked out, and what did not."""

    cited: int = 0
    verified: int = 0
    unverified: list[dict[str, Any]] = field(default_factory=list)  # {path, run_id, quote?, problem}

    def add(self, other: "Verification") -> "Verification":
        return Verification(
            self.cited + other.cited, self.verified + other.verified, self.unverified + other.unverified
        )

    def as_dict(self) -> dict[str, Any]:
        return {"cited": self.cited, "verified": self.verified, "unverified": list(self.unverified)}


def claims_of(data: Any, path: str = "") -> list[Claim]:
    """Every run id a stage output cites (`run_id` fields), with the quote beside it (`evidence`)."""
    found: list[Claim] = []
    if isinstance(data, Mapping):
        rid = data.get("run_id")
        if isinstance(rid, str) and rid.strip().lower() not in NOT_A_RUN:
            quote = data.get("evidence") if isinstance(data.get("evidence"), str) else None
            reason = data.get("reason") if isinstance(data.get("reason"), str) else None
            found.append(Claim(path or "(root)", rid.strip(), quote, reason))
        for key, value in data.items():
            found.extend(claims_of(value, f"{path}.{key}" if path else str(key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found.extend(claims_of(value, f"{path}[{i}]"))
    return found


def _bare(quote: str, *, fences: bool = False) -> str:
    """A quote without the quotation marks or ellipses a model wraps it in, and without a run-id
    marker (and, with `fences`, the fence lines around one) a quote copied across it carries."""
    text = _MARKER.sub(" ", quote)
    q = normalise(_FENCE.sub(" ", text) if fences else text).strip().strip('"').strip("'").strip()
    return q.removeprefix("...").removesuffix("...").removeprefix("…").removesuffix("…").strip()


def _in(quote: str, own: str) -> bool:
    """The quote is in the run's own text, read as written or with refinery's marker lines out
    (a fence line may be the trace's own: a message holding a code block)."""
    forms = {_bare(quote), _bare(quote, fences=True)} - {""}
    return any(q in own for q in forms)


def _problem(claim: Claim, runs: RunTexts) -> str | None:
    """What is wrong with one claim, or None when it checks out."""
    if claim.run_id not in runs:
        return f"run id {claim.run_id!r} is not in the trace"
    own = runs.text(claim.run_id)
    if claim.quote is not None and not claim.quote.strip():
        return "no quote was given: evidence must be words from the run's own text"
    if claim.quote and not _in(claim.quote, own):
        return f"the quote is not in run {claim.run_id}'s own text (its inputs, outputs, messages, error or events)"
    if claim.reason:
        if _MARKER.fullmatch(claim.reason.strip()):
            return "the reason is refinery's run-id marker, not a reason"
        for m in _QUOTED.finditer(claim.reason):
            if not _in(next(g for g in m.groups() if g), own):
                return f"the reason quotes words that are not in run {claim.run_id}'s own text"
    return None


def verify(data: Any, runs: RunTexts) -> Verification:
    """Check every claim of a stage output: the run exists, and every quote beside it is in that
    run's own source text."""
    result = Verification()
    for claim in claims_of(data):
        result.cited += 1
        problem = _problem(claim, runs)
        if problem is None:
            result.verified += 1
            continue
        item: dict[str, Any] = {"path": claim.path, "run_id": claim.run_id}
        if claim.quote and claim.run_id in runs:
            item["quote"] = claim.quote[:200]
        item["problem"] = problem
        result.unverified.append(item)
    return result


def reask_text(user_text: str, problems: list[dict[str, Any]], previous_json: str) -> str:
    """The user text of the one re-ask: the original request, what failed, and the answer to fix."""
    listed = "\n".join(f"- {p['path']}: {p['problem']}" for p in problems[:30])
    return (
        f"{user_text}\n\nSome citations in your previous answer could not be checked against the trace:\n{listed}\n"
        "Answer again in the same JSON shape. Cite only run ids that appear in [run_id: ...] headings of the files, "
        "and "
        "quote evidence word for word from that run's own inputs, outputs, messages or error (not from headings, "
        "field labels or markers). Your previous answer was:\n" + previous_json
    )
