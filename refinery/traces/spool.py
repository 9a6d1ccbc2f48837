"""The files as they may leave the machine — rendered, redacted — kept on disk, not in memory.

Why: a big trace's rendering is one to two times the trace file's size, and everything after
rendering (grouping, upload, citation checks, the report) reads the files one at a time. Held as
a list of strings, the rendering alone took a big trace past three times its size in memory;
spooled, a file costs its name and a few numbers until it is read.

The spool is one file (mode 0600, the files' texts one after another) in a private temporary folder
(mode 0700), deleted when the `SpooledFiles` is closed or garbage-collected, or when the
interpreter exits. One file, not one a rendered file: creating a file cost about a millisecond on
a slow temporary disk, a tenth of a big trace's plan time.
"""

from __future__ import annotations

import codecs
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import overload

from refinery.core.dismantle import emptied
from refinery.core.gc_freeze import objects_frozen, survivors_frozen
from refinery.core.models import DomainExpertExpectation, Trace
from refinery.core.offload import Stopped, breathe
from refinery.core.pieces import decoded, encoded_pieces
from refinery.core.tokens import estimate_tokens
from refinery.traces.redact import RedactionReport, redact_rendered, redacting
from refinery.traces.render import RenderOptions, iter_marked_files
from refinery.traces.source_text import FileLayout, strip_marks

__all__ = ["SpooledFiles", "file_names", "file_stats", "upload_files_for"]

_SURROGATE = re.compile("[\ud800-\udfff]")


class SpooledFiles(Sequence[tuple[str, str]]):
    """(name, text) pairs whose texts live in a temporary file; read back on access. Each file
    may carry its `FileLayout` (its runs and their source text), kept in memory."""

    def __init__(self, files: Iterable[tuple[str, str]] = ()) -> None:
        _remove_stale_spools()
        self.folder = Path(tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-"))  # mode 0700
        # trace text: the owner's only
        self._fd = os.open(self.folder / "texts", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self._finalizer = weakref.finalize(self, _remove, self._fd, self.folder)
        self.offsets: list[int] = []  # where each text starts in the spool file
        self.names: list[str] = []
        self.sizes: list[int] = []  # bytes, UTF-8
        self.lengths: list[int] = []  # characters: a file's two ends are read without the rest
        self.tokens: list[int] = []  # estimated, counted once here: plans and grouping read them
        # each file's runs and their source text: a few integers a run, kept in memory (a file
        # of its own cost an open per file, most of a big trace's plan time on a slow disk)
        self.layouts: list[FileLayout] = []
        layouts = getattr(files, "layout", None)  # rendered files keep their layouts
        for i, (name, text) in enumerate(files):
            self.append(name, text, layouts(i) if layouts else None)

    def append(self, name: str, text: str, layout: FileLayout | None = None) -> None:
        offset = self.offsets[-1] + self.sizes[-1] if self.offsets else 0
        try:
            size = self._write(text, offset)
        except UnicodeEncodeError:  # a lone surrogate (`"\\ud800"` in the trace): U+FFFD, one for one
            text = _SURROGATE.sub("\ufffd", text)
            size = self._write(text, offset)  # over what was written before the surrogate: the same bytes
        self.offsets.append(offset)
        self.layouts.append(layout or FileLayout(length=len(text)))
        self.names.append(name)
        self.sizes.append(size)
        self.lengths.append(len(text))
        self.tokens.append(estimate_tokens(text))

    def _write(self, text: str, offset: int) -> int:
        """`text`'s UTF-8 bytes written at `offset`, encoded a piece at a time (`core.pieces`: one
        `encode` of a big trace's index held the host's loop 29 ms); how many bytes."""
        written = 0
        for data in encoded_pieces(text):
            breathe()  # each write lets the GIL go and takes it back: the loop may be kept waiting
            view = memoryview(data)
            while view:  # a write may take less than asked
                view = view[os.pwrite(self._fd, view, offset + written + len(data) - len(view)) :]
            written += len(data)
        return written

    def text(self, index: int) -> str:
        return decoded(self._read(self.offsets[index], self.sizes[index]))  # a piece at a time (`core.pieces`)

    def text_ends(self, index: int, head: int, tail: int) -> tuple[str, str]:
        """`(text[:head], text[len(text) - tail:])` of file `index`, read from the bytes those
        characters can come from (a character is at most 4 bytes of UTF-8).

        Why: a request with no store carries a big trace's index cut to its room, a few hundred
        thousand characters of it; read whole, the index of a 100 MB chat log (22 M characters,
        some beyond Latin-1: 88 MB as a Python string) was decoded and joined for every Stage 1
        group and later stage, and its join alone held the host's loop 95–165 ms."""
        size, offset, length = self.sizes[index], self.offsets[index], self.lengths[index]
        if head + tail >= length or 4 * (head + tail) + 3 >= size:
            text = self.text(index)
            return text[:head], text[len(text) - tail :]
        # the first 4 × head bytes hold at least `head` whole characters; a character cut at
        # their end is left out by the incremental decoder (not final)
        first = codecs.getincrementaldecoder("utf-8")().decode(self._read(offset, 4 * head))[:head]
        if not tail:
            return first, ""
        start = size - 4 * tail - 3
        data = self._read(offset + start, size - start)
        skip = 0
        while data[skip] & 0xC0 == 0x80:  # a character's continuation bytes: its start is before ours
            skip += 1
        last = data[skip:].decode("utf-8")  # at least 4 × tail bytes: at least `tail` characters
        return first, last[len(last) - tail :]

    def _read(self, offset: int, size: int) -> bytes:
        breathe()  # a read lets the GIL go and takes it back: the loop may be kept waiting
        data = os.pread(self._fd, size, offset)
        while len(data) < size:  # a read may return less than asked
            data += os.pread(self._fd, size - len(data), offset + len(data))
        return data

    def layout(self, index: int) -> FileLayout:
        """Which runs file `index` holds and which of its text is theirs (empty when appended
        without one)."""
        return self.layouts[index]

    def __len__(self) -> int:
        return len(self.names)

    @overload
    def __getitem__(self, index: int) -> tuple[str, str]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, str]]: ...
    def __getitem__(self, index: int | slice) -> tuple[str, str] | list[tuple[str, str]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = range(len(self))[index]  # negative indexes and bounds, as a list has them
        return self.names[i], self.text(i)

    def close(self) -> None:
        """Delete the spooled texts now (they are deleted at garbage collection otherwise). A closed
        spool holds no file: its names and layouts are let go a piece at a time (`core.dismantle`:
        a 100 MB trace's tens of thousands of layouts, freed in one cascade, held the host's loop)."""
        self._finalizer()
        emptied(self.layouts, self.names, self.offsets, self.sizes, self.lengths, self.tokens)

    def __repr__(self) -> str:
        return f"SpooledFiles({len(self)} files, {sum(self.sizes)} bytes)"


SPOOL_PREFIX = "refinery-files-"
_swept = False


def _remove(fd: int, folder: Path) -> None:
    os.close(fd)
    shutil.rmtree(folder, ignore_errors=True)


def _remove_stale_spools() -> None:
    """Delete the spool folders of refinery processes that died without cleaning up (a SIGKILL
    leaves them in $TMPDIR): once per process, only folders named for a process that is gone."""
    global _swept
    if _swept:
        return
    _swept = True
    for folder in Path(tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}*-*"):
        pid = folder.name[len(SPOOL_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)  # still alive (or not ours to signal): keep it
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            continue


def file_names(files: Sequence[tuple[str, str]]) -> list[str]:
    """The files' names: a spool's own record (reading its texts back for their names read the whole
    rendering from disk, on the caller's thread)."""
    return list(files.names) if isinstance(files, SpooledFiles) else [name for name, _ in files]


def file_stats(files: Sequence[tuple[str, str]]) -> list[tuple[str, int, int]]:
    """(name, bytes, estimated tokens) of each file: a spool's own records (no text read back),
    else counted now."""
    if isinstance(files, SpooledFiles):
        return list(zip(files.names, files.sizes, files.tokens))
    return [(name, len(text.encode("utf-8")), estimate_tokens(text)) for name, text in files]


def upload_files_for(
    trace: Trace,
    *,
    options: RenderOptions | None = None,
    prompts: Mapping[str, str] | None = None,
    evals: Mapping[str, str] | None = None,
    expectation: DomainExpertExpectation | None = None,
    redact: bool = True,
    redact_patterns: Sequence[re.Pattern[str]] = (),
    stop: threading.Event | None = None,
) -> tuple[SpooledFiles, RedactionReport]:
    """The rendered files as they may leave the machine: redacted unless `redact=False`, spooled
    one file at a time, each with its layout (redaction runs before the source marks are taken
    out, so the layout's offsets are those of the text as uploaded); `redact_patterns`: an
    organisation's own shapes (`redact.compile_patterns`), redacted as the built-in ones are. With
    `stop` (see `core.offload`), the rendering ends at the next file once it is set, and its spool
    is deleted. The objects that existed before are out of the garbage collector's passes meanwhile
    (`core.gc_freeze`)."""
    report = RedactionReport()
    spool = SpooledFiles()
    files = iter_marked_files(trace, options=options, prompts=prompts, evals=evals, expectation=expectation)
    # the trace and everything else that exists left out of the collector's passes while the
    # rendering makes its long-lived objects (see `core.gc_freeze`)
    with objects_frozen(), redacting(report, redact_patterns) if redact else nullcontext():
        # values are redacted as they are rendered (before any cut or marker), the whole file
        # after (names, ids and anything else the renderer writes)
        for name, marked in files:
            if stop is not None and stop.is_set():
                spool.close()
                raise Stopped("rendering stopped")
            spool.append(name, *strip_marks(redact_rendered(marked, report, redact_patterns) if redact else marked))
            survivors_frozen()  # what a full pass left since the last file: out of the next passes
    return spool, report
