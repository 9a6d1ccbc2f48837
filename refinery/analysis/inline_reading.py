"""Reading with no hosted store (`store="none"`): every stage is given inline what it reads.

Why: vLLM, Ollama, LM Studio, llama.cpp, LiteLLM and OpenRouter have no Files, no Vector Stores
and no `file_search`, and many teams may not send a trace to a hosted store at all. So instead of
searching, a stage's request carries the text itself, within the model's input budget:

- Stage 1 reads its group's run files whole (as it does with a store), then the files that hold
  no runs (the index, prompts, evals, expectations) as room allows;
- stages 2–4 read what Stage 1 found (its JSON, condensed to at most half the budget) plus the
  sections of every run that failed or that Stage 1 flagged (an event's run, an error or partial
  entry), the expectations, prompts and evals, and the index.

What does not fit is cut with the renderer's own cut note (head and tail kept, the note saying how
much was cut), each piece to a fair share of the room (small pieces whole, the rest alike), and a
note lists what was left out. The text is the files' text as rendered, so citations name the same
files and runs, and verification checks them against the same run texts. Blocking (reads spooled
files): run it off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from refinery.analysis.analysis_run import AnalysisRun, StageGroup
from refinery.analysis.stage_calls import StageCalls
from refinery.analysis.staged_schemas import TraceAnalysisOutput
from refinery.analysis.stages import Stage
from refinery.core.tokens import estimate_tokens
from refinery.prompts.system_prompts import PromptTemplate
from refinery.traces.source_text import truncate_parts, truncated_ends
from refinery.traces.spool import SpooledFiles, file_names
from refinery.wire.endpoint_offer import StoreChoice, configured_endpoint, store_choice

__all__ = ["NO_STORE_NOTE", "Piece", "context_files", "fitted_pieces", "flagged_runs", "pieces_text"]

NO_STORE_NOTE = PromptTemplate(
    "INLINE_READING_NOTE",
    "v1",
    "Reading: this request has no file_search tool and no store. Everything you may read is given below under "
    '"Trace files (inline)": whole files, or the sections of the runs that matter, each starting with the name of '
    "the file it comes from. Cite those file names and run ids; quote only text shown here. Where a text was too "
    "long, a note in it says how much was cut, and a last note lists what was left out for room.",
)
MIN_PIECE_TOKENS = 48  # a share smaller than this is left out (and listed) rather than cut to nothing
SEPARATOR_TOKENS = 40  # the "===== file: … =====" lines around a piece, at least
ROOM_KEPT = 0.97  # of the room measured: the rest for the estimate's error over a whole text
CHARS_PER_TOKEN_CUT = 3  # characters kept per token of a cut piece's share (prose is ~4: a safe side)


class Piece:
    """One file, or one run's section of a file, as it goes into a request.

    A spooled file's piece is read only when its text is wanted (`spooled`): whole when it is
    kept whole, at its two ends when it is cut (a big trace's index is cut to a stage's room for
    every Stage 1 group and later stage; read whole each time, its decode held the host's loop)."""

    def __init__(self, file: str, text: str, run_id: str | None = None, tokens: int | None = None) -> None:
        self.file, self._text, self.run_id = file, text, run_id
        self._spooled: tuple[SpooledFiles, int] | None = None
        self.tokens = estimate_tokens(text) if tokens is None else tokens
        # the lines around it as `pieces_text` writes them (its name twice, a run's file line)
        self.overhead = max(SEPARATOR_TOKENS, 2 * estimate_tokens(f"===== end of file: {self.heading} =====\n\n"))

    @classmethod
    def spooled(cls, file: str, files: SpooledFiles, index: int) -> Piece:
        """File `index` of `files`, counted from the spool's count, read when wanted."""
        piece = cls(file, "", tokens=files.tokens[index])
        piece._spooled = (files, index)
        return piece

    @property
    def text(self) -> str:
        if self._spooled is not None:
            files, index = self._spooled
            self._text, self._spooled = files.text(index), None
        return self._text

    def truncated(self, limit: int) -> tuple[str, str, str]:
        """`truncate_parts` of the text, a spooled file's read at its ends only."""
        if self._spooled is None:
            return truncate_parts(self._text, limit)
        files, index = self._spooled
        return truncated_ends(files.lengths[index], limit, lambda head, tail: files.text_ends(index, head, tail))

    @property
    def heading(self) -> str:
        return f"{self.file} (run {self.run_id})" if self.run_id else self.file


def context_files(run: AnalysisRun) -> list[int]:
    """The files that hold no runs (index, prompts, evals, expectations), expectations first and
    the index last: what every stage reads besides the runs."""
    texts = run.texts
    if texts is None:
        return []
    names = file_names(texts.files)
    found = [i for i in range(len(names)) if not texts.layout(i).run_ids]
    return sorted(found, key=lambda i: (names[i].endswith("_index.md"), not names[i].endswith("_expectations.md")))


def flagged_runs(run: AnalysisRun, stage1: TraceAnalysisOutput | None) -> list[str]:
    """The runs stages 2–4 read whole: every run the trace says failed, then each run Stage 1 put
    a failure, anomaly or retry on or called error or partial — in that order, each once, only runs
    in the trace."""
    wanted: list[str] = list(run.failed_runs)
    if stage1 is not None:
        events = sorted(stage1.events, key=lambda e: e.kind != "failure")
        wanted += [e.run_id for e in events if e.run_id]
        wanted += [t.run_id for t in stage1.timeline if t.status in ("error", "partial")]
    texts = run.texts
    return [rid for rid in dict.fromkeys(wanted) if texts is not None and rid in texts]


def run_pieces(run: AnalysisRun, run_ids: Iterable[str]) -> Iterator[Piece]:
    """Each run's section of the file that holds it, as rendered (heading, fields, markers); a
    file is read once for the runs in a row that it holds."""
    texts = run.texts
    if texts is None:
        return
    names = file_names(texts.files)
    held: tuple[int, str, dict[str, tuple[int, int]]] | None = None
    for rid in run_ids:
        for i in texts.where.get(rid, ())[:1]:
            if held is None or held[0] != i:
                held = (i, texts.files[i][1], {r: (a, b) for r, a, b in texts.layout(i).sections()})
            if rid in held[2]:
                start, end = held[2][rid]
                yield Piece(names[i], held[1][start:end].strip("\n"), rid)


def file_pieces(run: AnalysisRun, indices: Sequence[int]) -> list[Piece]:
    texts = run.texts
    if texts is None:
        return []
    names = file_names(texts.files)
    # a spooled file's count was taken when it was written (the same text): a big trace's index is
    # not measured again for every Stage 1 group and every later stage, nor read unless it is shown
    if isinstance(texts.files, SpooledFiles):
        return [Piece.spooled(names[i], texts.files, i) for i in indices]
    return [Piece(names[i], texts.files[i][1]) for i in indices]


def group_pieces(run: AnalysisRun, group: StageGroup | None) -> list[Piece]:
    """A Stage 1 group's run files whole (all run files when the trace is one group)."""
    texts = run.texts
    if texts is None:
        return []
    names = file_names(texts.files)
    wanted = set(group.files) if group is not None else {n for i, n in enumerate(names) if texts.layout(i).run_ids}
    return file_pieces(run, [i for i, n in enumerate(names) if n in wanted])


def _cut(piece: Piece, tokens: int) -> Piece:
    if piece.tokens <= tokens:
        return piece
    limit = max(1, tokens * CHARS_PER_TOKEN_CUT)
    for _ in range(4):  # text denser than the guess (ids, numbers): cut again, shorter by what it was over
        head, note, tail = piece.truncated(limit)
        cut = Piece(piece.file, head + note + tail, piece.run_id)
        if cut.tokens <= tokens or limit <= 1:
            break
        limit = max(1, limit * tokens * 9 // (10 * cut.tokens))
    return cut


def fitted_pieces(pieces: Sequence[Piece], room: int) -> tuple[list[Piece], list[Piece]]:
    """(kept, left out): the pieces within `room` tokens, in their order. Each gets a fair share:
    the smallest are kept whole while the rest can still have as much each; the others are cut to
    an equal share; a share below `MIN_PIECE_TOKENS` leaves the piece out."""
    share: dict[int, int] = {}
    left = max(0, room)
    order = sorted(range(len(pieces)), key=lambda i: pieces[i].tokens + pieces[i].overhead)
    for n, i in enumerate(order):
        fair = left // (len(order) - n)
        need = pieces[i].tokens + pieces[i].overhead
        share[i] = min(need, fair)
        left -= share[i]
    kept, dropped = [], []
    for i, piece in enumerate(pieces):
        tokens = share[i] - piece.overhead
        if tokens < MIN_PIECE_TOKENS and piece.tokens > tokens:
            dropped.append(piece)
        else:
            kept.append(_cut(piece, tokens))
    return kept, dropped


def _own_file_line(piece: Piece) -> str:
    """A run's section opens with its file's own `- file:` line (as the file's header has it), so
    whose text it is stays said where the section is read alone."""
    return f"- file: {piece.file}\n" if piece.run_id else ""


def pieces_text(kept: Sequence[Piece], dropped: Sequence[Piece], unshown: int = 0) -> str:
    """The pieces as a request carries them, each between lines naming its file (and run); what
    was left out, named; `unshown` other runs counted."""
    parts = [
        f"===== file: {p.heading} =====\n{_own_file_line(p)}{p.text.rstrip()}\n===== end of file: {p.heading} ====="
        for p in kept
    ]
    if dropped:
        parts.append("… left out for room: " + ", ".join(p.heading for p in dropped))
    if unshown:
        parts.append(f"… and {unshown} other runs of the trace, not shown for room")
    return "\n\n".join(parts)


def inline_text(base: str, kept: Sequence[Piece], dropped: Sequence[Piece], unshown: int = 0) -> str:
    """A stage's user text with the reading note and its inline files."""
    return f"{base}\n\n{NO_STORE_NOTE.text}\n\nTrace files (inline):\n{pieces_text(kept, dropped, unshown)}"


def within_budget(
    base: str,
    pieces: Sequence[Piece],
    measure: Callable[[str], int],
    budget: int,
    more: Iterable[Piece] = (),
    more_count: int = 0,
) -> str:
    """`base` with as much of `pieces` as fits `budget` tokens (each to a fair share), then, in
    the room left, whole pieces of `more` (of `more_count`) in their order; `measure` tells a
    text's request size (the body built around it)."""
    room = int((budget - measure(inline_text(base, [], [], more_count))) * ROOM_KEPT)
    kept, dropped = fitted_pieces(pieces, room)
    left = room - sum(p.tokens + p.overhead for p in kept)
    extra: list[Piece] = []
    for piece in more:
        if left < MIN_PIECE_TOKENS + SEPARATOR_TOKENS:
            break
        if piece.tokens + piece.overhead <= left:
            extra.append(piece)
            left -= piece.tokens + piece.overhead
    return inline_text(base, [*kept, *extra], dropped, more_count - len(extra))


def stage1_text(
    base: str, run: AnalysisRun, slice_: StageGroup | None, measure: Callable[[str], int], budget: int
) -> str:
    """A Stage 1 call's user text read with no store: its group's run files (whole when they fit,
    as groups are sized to), then the files without runs in what room is left."""
    group, context = group_pieces(run, slice_), file_pieces(run, context_files(run))
    room = int((budget - measure(inline_text(base, [], []))) * ROOM_KEPT)
    for _ in range(3):  # measured whole, fitted again when the estimate of the whole passes the parts
        runs, runs_out = fitted_pieces(group, room)
        used = sum(p.tokens + p.overhead for p in runs)
        more, more_out = fitted_pieces(context, room - used)
        text = inline_text(base, [*runs, *more], [*runs_out, *more_out])
        over = measure(text) - budget
        if over <= 0:
            break
        room -= over + SEPARATOR_TOKENS
    return text


def later_stage_text(
    calls: StageCalls,
    run: AnalysisRun,
    stage: Stage,
    base: str,
    stage1: TraceAnalysisOutput | None,
    *,
    budget: int | None = None,
) -> str:
    """A stage 2–4 call's user text read with no store: the runs that failed or that Stage 1
    flagged, then the expectations, prompts, evals and the index, within the input budget (or
    `budget`); in the room left, the trace's other runs whole, in order."""

    def measure(text: str) -> int:
        return calls.worst_input(calls.body(stage, text, None, inline=True), None)

    flagged = flagged_runs(run, stage1)
    pieces = [*run_pieces(run, flagged), *file_pieces(run, context_files(run))]
    shown = set(flagged)
    others = [rid for rid in (run.texts.where if run.texts is not None else {}) if rid not in shown]
    target = limit = calls.input_budget if budget is None else budget
    # the estimate of a whole text may pass the sum of its parts, and a piece cut to its share may
    # stay over it: measured, fitted again in a smaller room, each step cutting more than the last
    for attempt in range(1, 7):
        # the rest of the trace, in order, while whole runs fit
        text = within_budget(base, pieces, measure, limit, run_pieces(run, others), len(others))
        over = measure(text) - target
        if over <= 0:
            break
        limit -= (over + SEPARATOR_TOKENS) * attempt
    return text


def choose_reading(wanted: str, model: Any | None, has_store: bool, api: str = "auto") -> StoreChoice:
    """`hosted` or `none` for an analysis, and why: `wanted` unless `auto`; `auto` is hosted with a
    store at hand (`has_store`: a store id or a store manager given), else decided from where
    `model` sends its requests (`endpoint_offer.store_choice`: OpenAI's and Azure's API hosts have
    the store, other servers are read inline) — with no request. With no client yet (`None`),
    from the endpoint the environment names, as the client built for the run will read it; a
    model with no endpoint reads inline unless it can make a store."""
    if wanted == "auto" and has_store:
        return StoreChoice("hosted", "a vector store was given", "")
    if model is None:
        return store_choice(wanted, *configured_endpoint(), api)
    choose = getattr(model, "store_choice", None)
    if choose is not None:
        return choose(wanted)
    if wanted != "auto":
        return store_choice(wanted, "")
    can = hasattr(model, "vector_store_manager")
    return StoreChoice("hosted" if can else "none", "the model given " + ("makes" if can else "has no") + " stores", "")
