"""An analysis's artifacts folder: stage outputs, Stage 1 group outputs and the store record.

Why: every output is written (atomically) the moment it exists, so a run that stops — an error,
Ctrl-C, a lost machine — is resumed by a rerun from the first missing piece instead of paying
for it again. Each file names the trace it belongs to, so another trace's artifacts are refused
rather than reused. Without a folder (`Checkpoints(None)`) nothing is written or read.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from refinery.analysis.analysis_run import AnalysisRun
from refinery.analysis.stages import STAGE_BY_KEY, STAGES, Stage
from refinery.core.artifacts import read_json, write_json_atomic
from refinery.core.confined import open_nofollow
from refinery.core.tokens import TOKEN_COUNTS
from refinery.errors import ArtifactsMismatchError
from refinery.wire.response_output import CallUsage

log = logging.getLogger("refinery.checkpoints")

STORE_ARTIFACT = "store.json"
# Appended as the upload goes: `{"sending": name, "at": t}` before each file is sent, `{"id": …}`
# as soon as it exists. One line a file (no rewrite of store.json a file), so a run killed at any
# point leaves every id it heard, and the names of files whose ids it never heard.
UPLOAD_LOG = "store.files"
STAGE1_GROUPS_DIR = "stage1_groups"


class Checkpoints:
    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder) if folder is not None else None

    # --- stages -----------------------------------------------------------------------------
    def load_stage(self, stage: str, trace_id: str | None) -> tuple[BaseModel, dict[str, Any], str | None] | None:
        """(output, metadata, trace id) of a stage done earlier, or None to run it."""
        if self.folder is None:
            return None
        path = self.folder / STAGE_BY_KEY[stage].artifact
        data = read_json(path)
        if not isinstance(data, dict) or "output" not in data:
            return None
        if trace_id and data.get("trace_id") not in (None, trace_id):
            raise ArtifactsMismatchError(
                f"{path} belongs to trace {data.get('trace_id')!r}, not {trace_id!r}: use another artifacts directory"
            )
        try:
            output = STAGE_BY_KEY[stage].output_model.model_validate(data["output"])
        except ValidationError:
            log.warning("%s artifact does not validate; running the stage again", stage)
            return None
        log.info("%s: resumed from %s", stage, path.name)
        return output, dict(data.get("meta") or {}), data.get("trace_id")

    def save_stage(self, stage: str, trace_id: str | None, meta: dict[str, Any], output: BaseModel) -> None:
        if self.folder is not None:
            write_json_atomic(
                self.folder / STAGE_BY_KEY[stage].artifact,
                {"stage": stage, "trace_id": trace_id, "meta": meta, "output": output.model_dump(mode="json")},
            )

    def finished(self, trace_id: str, until_stage: int) -> bool:
        """Whether stages 1…`until_stage` of this trace are all on disk."""
        if self.folder is None:
            return False
        for stage in STAGES[:until_stage]:
            data = read_json(self.folder / stage.artifact)
            if not isinstance(data, dict) or data.get("trace_id") != trace_id or "output" not in data:
                return False
        return True

    # --- Stage 1 groups ---------------------------------------------------------------------
    def _group_path(self, number: int) -> Path | None:
        return self.folder / STAGE1_GROUPS_DIR / f"group_{number:03d}.json" if self.folder else None

    def save_group(
        self,
        trace_id: str | None,
        number: int,
        groups: int,
        output: BaseModel,
        usage: CallUsage,
        verification: dict[str, Any] | None,
    ) -> None:
        """Each Stage 1 group's output as soon as it exists, so a rerun pays only for the rest."""
        path = self._group_path(number)
        if path is not None:
            write_json_atomic(
                path,
                {
                    "trace_id": trace_id,
                    "group": number,
                    "groups": groups,
                    "usage": usage.model_dump(),
                    "verification": verification,
                    "output": output.model_dump(mode="json"),
                },
            )

    def resume(self, run: AnalysisRun, stage: Stage) -> Any | None:
        """The stage's output from an earlier run of this trace, its usage and metadata put back
        into `run`; None when it has not been done."""
        done = self.load_stage(stage.key, run.trace_id)
        if done is None:
            return None
        output, meta, trace_id = done
        run.trace_id = run.trace_id or trace_id
        run.meta[stage.key] = {**meta, "resumed": True}
        counts = {k: int(meta.get(k) or 0) for k in TOKEN_COUNTS}
        model = meta.get("answered_by") or meta.get("model")
        run.usage[stage.key] = CallUsage.model_validate({"label": stage.key, "model": model, **counts})
        return output

    def load_group(
        self, trace_id: str | None, number: int, groups: int
    ) -> tuple[BaseModel, CallUsage, dict[str, Any] | None] | None:
        path = self._group_path(number)
        data = read_json(path) if path is not None else None
        if not isinstance(data, dict) or data.get("trace_id") != trace_id or data.get("groups") != groups:
            return None
        try:
            return (
                STAGE_BY_KEY["stage1"].output_model.model_validate(data["output"]),
                CallUsage.model_validate(data["usage"]),
                data.get("verification"),
            )
        except (KeyError, ValidationError):
            return None

    # --- the vector store record --------------------------------------------------------------
    def record_store(
        self,
        store_id: str | None,
        trace_id: str,
        files: list[str],
        file_ids: list[str],
        *,
        ready: bool,
        nonce: str | None = None,
        since: float | None = None,
    ) -> None:
        """`store.json`: which store holds this trace's files; `ready` only once indexing completed.
        Written before the store is asked for (`store_id` None): `nonce`, the mark in the store's
        metadata, and `since`, when it was asked for, find a store whose id never came back; both
        are kept by the later records of the same store."""
        if self.folder is None:
            return
        old = read_json(self.folder / STORE_ARTIFACT)
        if isinstance(old, dict) and old.get("trace_id") == trace_id and old.get("store_id") in (None, store_id):
            nonce, since = nonce or old.get("nonce"), since or old.get("since")
        write_json_atomic(
            self.folder / STORE_ARTIFACT,
            {
                "store_id": store_id,
                "trace_id": trace_id,
                "ready": ready,
                "files": files,
                "file_ids": file_ids,
                **({"nonce": nonce, "since": since} if nonce else {}),
            },
        )

    def mark_deleting(self) -> None:
        """Before the store and files are deleted: whatever stops the deletion, the next run of this
        folder (finished or not) deletes them rather than reusing the store."""
        data = read_json(self.folder / STORE_ARTIFACT) if self.folder is not None else None
        if isinstance(data, dict) and self.folder is not None:
            write_json_atomic(self.folder / STORE_ARTIFACT, {**data, "deleting": True})

    def recorded_store(self, trace_id: str | None = None) -> dict[str, Any] | None:
        """`store.json` (of `trace_id`, when given) with every file id the upload log heard;
        `unheard`: how many upload attempts were sent whose file ids never came back, `sent`: the
        names sent and `sent_at`: when the first was (what a sweep of the account looks for). A
        record without a store id is a store asked for whose id never came back (its `nonce`)."""
        if self.folder is None:
            return None
        data = read_json(self.folder / STORE_ARTIFACT)
        if not (isinstance(data, dict) and (data.get("store_id") or data.get("nonce"))) or trace_id not in (
            None,
            data.get("trace_id"),
        ):
            return None
        ids = list(data.get("file_ids") or [])
        heard, sent, first = 0, set(), None
        for entry in self._upload_log():
            if entry.get("id"):
                heard += 1
                if entry["id"] not in ids:
                    ids.append(str(entry["id"]))
            elif entry.get("sending"):
                sent.add(str(entry["sending"]))
                at = float(entry.get("at") or 0)
                first = at if first is None else min(first, at)
        unheard = max(0, sum(1 for e in self._upload_log() if e.get("sending")) - heard)
        return {**data, "file_ids": ids, "unheard": unheard, "sent": sorted(sent), "sent_at": first}

    def _upload_log(self) -> list[dict[str, Any]]:
        try:
            lines = (self.folder / UPLOAD_LOG).read_text().splitlines() if self.folder else []
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:  # the last line of a killed run may be cut
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out

    def start_upload_log(self) -> None:
        """A new store's upload begins: the log of an earlier one goes."""
        if self.folder is not None:
            (self.folder / UPLOAD_LOG).unlink(missing_ok=True)

    def note_upload(self, *, sending: str | None = None, file_id: str | None = None) -> None:
        """One line of the upload log (no fsync: a killed process's writes stay in the page cache)."""
        if self.folder is None:
            return
        entry = {"sending": sending, "at": round(time.time(), 3)} if sending is not None else {"id": file_id}
        fd = open_nofollow(self.folder / UPLOAD_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # the owner's; no link
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def forget_store(self) -> None:
        """After the store is deleted: a rerun must never try to reuse it."""
        if self.folder is not None:
            (self.folder / STORE_ARTIFACT).unlink(missing_ok=True)
            (self.folder / UPLOAD_LOG).unlink(missing_ok=True)
