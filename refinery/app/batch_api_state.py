"""What a `refinery batch --batch-api` run has asked the provider, kept in its output folder.

Why on disk, and written before each request: a batch takes hours and the command may be stopped
at any point. Each input file is recorded with the requests it holds before it is uploaded; an
upload's and a batch's *intent* is recorded before the call and its id as soon as it is heard, so
a rerun knows what exists — and a batch made by the server whose id never came back is found
again by its `metadata` (`find`) before another is made. The downloaded results stay beside it
(`results/`), so answers are never asked for twice; each trace's stage results are its own
folder's checkpoints.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from refinery.analysis.output_folder import OutputFolderBusyError
from refinery.core.artifacts import private_dir, read_json, write_json_atomic
from refinery.core.confined import open_nofollow

__all__ = ["STATE_DIR", "STATE_FILE", "RunState", "Submission", "RunLock", "load_state", "save_state", "state_dir"]

STATE_DIR = ".batch-api"  # under the batch's output folder
STATE_FILE = "state.json"
FINISHED = ("completed", "failed", "expired", "cancelled")


class Submission(BaseModel):
    """One input file and the batch made of it, from intent to results."""

    key: str  # "r2-p1": round and part; also its batch's `metadata`, to find it again
    round: int
    input: str  # the JSONL file's name under `STATE_DIR/inputs`
    requests: dict[str, str | None]  # custom id -> the stage it is for
    uploading: bool = False  # the upload was about to be made
    upload_sent_at: int | None = None  # when (Unix seconds): a copy whose id was lost is made after it
    input_file_id: str | None = None
    creating: bool = False  # the batch was about to be made
    batch_id: str | None = None
    status: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int | None = None
    finished_at: int | None = None
    counts: dict[str, int] = Field(default_factory=dict)  # total, completed, failed
    problem: str | None = None  # why a batch ended without answering everything (expired, validation)
    downloaded: bool = False  # its results are in `results/`
    deleted: list[str] = Field(default_factory=list)  # its files removed from the server

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def open(self) -> bool:
        """Not yet read back: still to upload, make, wait for or download."""
        return not self.downloaded

    def file_ids(self) -> list[str]:
        return [f for f in (self.input_file_id, self.output_file_id, self.error_file_id) if f]


class RunState(BaseModel):
    run_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    model: str = ""
    endpoint: str = "/v1/responses"
    submissions: list[Submission] = Field(default_factory=list)
    rounds: int = 0

    def metadata(self, sub: Submission) -> dict[str, str]:
        """What a batch is made with, and found again by."""
        return {"refinery_run": self.run_id, "refinery_part": sub.key}

    def upload_name(self, sub: Submission) -> str:
        """The input file's name on the server, unique to this run and part: what a copy whose
        id a stop lost is found by on the account."""
        return f"refinery-{self.run_id}-{sub.key}.jsonl"

    def tries(self) -> dict[str, int]:
        """custom id -> how many read-back batches carried it."""
        seen: dict[str, int] = {}
        for sub in self.submissions:
            if sub.downloaded:
                for cid in sub.requests:
                    seen[cid] = seen.get(cid, 0) + 1
        return seen

    def reasons(self) -> dict[str, str]:
        """custom id -> why the last read-back batch carrying it ended unanswered, when it said."""
        said: dict[str, str] = {}
        for sub in self.submissions:
            if sub.downloaded and sub.problem:
                said.update(dict.fromkeys(sub.requests, f"batch {sub.batch_id} {sub.problem}"))
        return said

    def submitted(self) -> dict[str, int]:
        """custom id -> how many batches it went into (or is about to)."""
        seen: dict[str, int] = {}
        for sub in self.submissions:
            for cid in sub.requests:
                seen[cid] = seen.get(cid, 0) + 1
        return seen


def state_dir(out: Path) -> Path:
    return out / STATE_DIR


def load_state(out: Path, model: str) -> RunState:
    """The run recorded in `out`, else a new one (not yet written)."""
    data: Any = read_json(state_dir(out) / STATE_FILE)
    if isinstance(data, dict):
        return RunState.model_validate(data)
    return RunState(model=model)


def save_state(out: Path, state: RunState) -> None:
    """Atomically (blocking: call it off the event loop)."""
    write_json_atomic(state_dir(out) / STATE_FILE, state.model_dump(mode="json"))


class RunLock:
    """The output folder's Batch API record held by one run (a lock file; `acquire` blocks, so
    off the event loop): two runs at once would each submit the same round."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        fd = open_nofollow(private_dir(state_dir(self.out)) / "run.lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputFolderBusyError(
                f"{self.out}: another `refinery batch --batch-api` run is using it; wait for it to end (or --status)"
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None
