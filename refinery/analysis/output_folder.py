"""An output folder has one writer at a time, and holds the results of one set of inputs.

Why: two runs writing one folder mixed their artifacts (one trace's stages beside another's, a
report of the other trace, a store deleted under the other run), and a folder holding another
trace's results was refused only after the new trace had been uploaded and indexed — paid for and
left on the account. So a run claims its folder before anything is uploaded or written: it takes
an exclusive lock (released by the kernel if the process dies, so a killed run never leaves the
folder locked), and compares what the folder's results were made from (`inputs.json`) with what
this run would make them from. Anything different is refused with what differs, unless the run
starts over (`fresh`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from refinery.analysis.checkpoints import STAGE1_GROUPS_DIR, STORE_ARTIFACT, UPLOAD_LOG, Checkpoints
from refinery.analysis.stages import STAGES
from refinery.core.artifacts import private_dir, read_json, write_json_atomic
from refinery.core.confined import open_nofollow, refuse_links, refuse_system_folder
from refinery.errors import ArtifactsMismatchError, TraceFormatError, UserInputError

__all__ = [
    "INPUTS_ARTIFACT",
    "LOCK_FILE",
    "OutputFolder",
    "OutputFolderBusyError",
    "TraceWatch",
    "digest_of",
    "file_digest",
    "inputs_record",
    "trace_folder_name",
    "redaction_setting",
]

LOCK_FILE = ".refinery.lock"
INPUTS_ARTIFACT = "inputs.json"
# What a run writes into its folder: removed by `fresh` (nothing else in the folder is touched)
WRITTEN = (
    *(s.artifact for s in STAGES),
    STAGE1_GROUPS_DIR,
    STORE_ARTIFACT,
    UPLOAD_LOG,
    INPUTS_ARTIFACT,
    "usage.json",
    "report.md",
    "report.html",
)
STAGING_DIR = "files"  # the rendered files as uploaded (`StoreKeeper`)
FETCHED_TRACE = "trace.json"  # a trace fetched by id (`sources.fetched_copy`)
# never followed when links: refused before anything is read or written (a link planted in a
# shared folder would have refinery read or write the file it points to)
OWN_NAMES = (LOCK_FILE, *WRITTEN, STAGING_DIR, FETCHED_TRACE)


def trace_folder_name(trace_id: str) -> str:
    """A folder name for a trace's analysis: its id where that is a plain name (letters, digits,
    `.`, `_`, `-`; at most 64 characters), else what of it is plain and a digest of the whole, so
    two ids never share a folder and no id climbs out of the folder it is joined to."""
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", trace_id).strip("._-")[:64]
    if plain == trace_id and plain not in ("", ".", ".."):
        return plain
    return f"{plain or 'trace'}-{hashlib.sha256(trace_id.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


class OutputFolderBusyError(UserInputError):
    """Another refinery process is writing the output folder."""


def digest_of(value: Any) -> str:
    """A short stable digest of text, bytes or JSON-able data (what the inputs record keeps)."""
    data = value if isinstance(value, bytes) else json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """The digest of a file's bytes, read a piece at a time (a trace may be 100 MB)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            h.update(piece)
    return h.hexdigest()[:16]


class TraceWatch:
    """The trace file a run began on, checked by content before each paid stage.

    Why: a big trace's runs are read from the file again as the run goes, and every result is
    meant to be of the file as it was; a change that keeps the size and the modification time
    (a copy over it with `touch -r`) is a change too. Each stage's start reads the file whole
    (about 0.2 s for 100 MB); Stage 1's group starts read it when `every_s` has passed since.
    """

    def __init__(self, path: str | Path, *, every_s: float = 10.0) -> None:
        self.path = Path(path)
        self.digest = file_digest(self.path)
        self.every_s = every_s
        self._checked = time.monotonic()

    def check(self, *, force: bool = True) -> None:
        if not force and time.monotonic() - self._checked < self.every_s:
            return
        self._checked = time.monotonic()
        try:
            same = file_digest(self.path) == self.digest
        except OSError:
            same = False
        if not same:
            raise TraceFormatError(
                "the trace file changed during the run (its content is not what the run began on); nothing more "
                "was sent. Rerun with --fresh to analyse the new content",
                source=str(self.path),
            )

    def progress(self, stage: str, status: str, info: Mapping[str, Any]) -> None:
        """A progress callback's share: check before a stage (or a Stage 1 group) starts."""
        if status == "start" and stage != "prepare":
            self.check(force="." not in stage)


def inputs_record(
    *,
    trace_id: str | None,
    trace_digest: str | None,
    model: str,
    expectation: Any,
    prompts: Mapping[str, str] | None,
    evals: Mapping[str, str] | None,
    prompt_versions: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
    redaction: str = "on",
) -> dict[str, Any]:
    """What a folder's results are made from: the trace (id and content), the model, the
    expectation, prompts and evals (as digests: their text is not copied into the folder), the
    prompt versions, the settings that change an answer, and the redaction (`redaction_setting`):
    a folder whose earlier stages were sent unredacted is not resumed by a redacting run — its
    later requests, report and artifacts would carry the secrets of the earlier stages."""
    return {
        "redaction": redaction,
        "trace_id": trace_id,
        "trace_digest": trace_digest,
        "model": model,
        "expectation": digest_of(expectation) if expectation is not None else None,
        "prompts": digest_of(dict(prompts or {})),
        "evals": digest_of(dict(evals or {})),
        "prompt_versions": dict(prompt_versions or {s.key: s.prompt_ref for s in STAGES}),
        **dict(settings or {}),
    }


def redaction_setting(redact: bool, patterns: Sequence[str] = ()) -> str:
    """The redaction an analysis runs with, as `inputs.json` records it: "off" (`--no-redact`),
    "on", or "on+<digest>" with an organisation's own patterns."""
    if not redact:
        return "off"
    return f"on+{digest_of(list(patterns))}" if patterns else "on"


Discard = Callable[[dict[str, Any]], Awaitable[None]]  # deletes a recorded store and its files


class OutputFolder:
    """The claim on one output folder for one run: `async with OutputFolder(out, record): …`.

    `fresh`: start over — the store and files a run recorded here are deleted (by `discard`)
    and its results removed, once the folder is locked (never under another run's feet).
    """

    def __init__(
        self, folder: str | Path, record: Mapping[str, Any], *, fresh: bool = False, discard: Discard | None = None
    ) -> None:
        self.folder = Path(folder)
        self.record = dict(record)
        self.fresh = fresh
        self.discard = discard
        self._fd: int | None = None

    async def __aenter__(self) -> OutputFolder:
        refuse_system_folder(self.folder, "output folder")
        private_dir(self.folder)  # it will hold trace text
        refuse_links(self.folder, OWN_NAMES)
        self._lock()
        try:
            if self.fresh:
                stored = Checkpoints(self.folder).recorded_store()  # with every id the upload log heard
                if stored is not None and self.discard is not None:
                    await self.discard(stored)
                self.clear()
            self._check()
            write_json_atomic(self.folder / INPUTS_ARTIFACT, self.record)
        except BaseException:
            self._unlock()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._unlock()

    def clear(self) -> None:
        """Remove every result a run wrote here (only those: other files in the folder stay)."""
        for name in WRITTEN:
            path = self.folder / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    # --- the lock ---------------------------------------------------------------------------
    def _lock(self) -> None:
        path = self.folder / LOCK_FILE
        while True:
            fd = open_nofollow(path, os.O_RDWR | os.O_CREAT)  # a link in its place is refused
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held_by = os.read(fd, 4096).decode("utf-8", "replace")
                os.close(fd)
                raise OutputFolderBusyError(
                    f"{self.folder} is being written by another run ({_who(held_by)}); wait for it to end, "
                    "or give another --out"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.lstat(path).st_ino  # not a lock file removed meanwhile
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "trace_id": self.record.get("trace_id"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd

    def _unlock(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.folder / LOCK_FILE)  # while still held: nobody holds a removed file's lock
        except FileNotFoundError:
            pass
        os.close(self._fd)  # releases the lock
        self._fd = None

    # --- the inputs -------------------------------------------------------------------------
    def _check(self) -> None:
        recorded = read_json(self.folder / INPUTS_ARTIFACT, follow=False)
        if not isinstance(recorded, dict):
            recorded = self._inferred()
        differs = [k for k, v in self.record.items() if k in recorded and recorded[k] is not None and recorded[k] != v]
        if self.record.get("trace_id") is None:  # `analyze` on a store: its trace is whatever the folder's is
            differs = [k for k in differs if k not in ("trace_id", "trace_digest")]
        if differs:
            what = "; ".join(f"{k}: {_short(recorded[k])} there, {_short(self.record[k])} now" for k in differs)
            raise ArtifactsMismatchError(
                f"{self.folder} holds results made from other inputs ({what}); nothing was uploaded or written. "
                "Use --fresh to start over in it (its store and files are deleted first), or give another --out"
            )

    def _inferred(self) -> dict[str, Any]:
        """For a folder written before `inputs.json` existed: the trace its artifacts name."""
        for name in (*(s.artifact for s in STAGES), STORE_ARTIFACT):
            data = read_json(self.folder / name)
            if isinstance(data, dict) and data.get("trace_id"):
                return {"trace_id": data["trace_id"]}
        return {}


def _who(holder: str) -> str:
    try:
        data = json.loads(holder)
    except ValueError:
        return "a refinery process"
    return f"pid {data.get('pid')} on {data.get('host')} since {data.get('since')}, trace {data.get('trace_id')!r}"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return repr(text if len(text) <= 60 else text[:57] + "…")
