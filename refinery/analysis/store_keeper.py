"""The vector store behind one analysis: made, reused after an interruption, made again when gone,
and deleted when the analysis is done.

Why it is careful: "no results" from `file_search` is most often a store that was queried
before its files were indexed, and a resumed run is where that happens. So the store is
recorded as ready only once indexing completed; a rerun polls a recorded store again before
using it, and one that is gone, failed or never got all its files is replaced (stage artifacts
are kept). The store and its files are deleted after the analysis, resumed or not.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from refinery.analysis.analysis_run import AnalysisRun, StageGroup, file_attributes
from refinery.analysis.checkpoints import Checkpoints
from refinery.core.artifacts import write_text_atomic
from refinery.core.confined import own_dir
from refinery.core.offload import in_worker
from refinery.errors import (
    APIConnectionError,
    APIStatusError,
    FileIndexingError,
    NotFoundError,
    RefineryError,
    VectorStoreGoneError,
)
from refinery.traces.spool import file_names
from refinery.wire.endpoint_offer import no_hosted_store, route_missing
from refinery.wire.vector_store_manager import VectorStoreManager

# A file sent whose id never came back (the run was killed, or the request cut, after the server
# made it) is looked for on the account by name, made no earlier than this many seconds before the
# upload began (the server's clock may differ from ours)
SWEEP_SLACK_S = 120
MAX_STRAGGLER_WAIT_S = 60.0  # at most this long (else twice the request timeout)
STRAGGLER_POLL_S = 0.5  # how often the account is looked at again for what a slow server makes late
NONCE_KEY = "refinery_run"  # the store's metadata key holding the nonce its record keeps

log = logging.getLogger("refinery.store")

IndexingProgress = Callable[[Mapping[str, int]], None]
Emit = Callable[..., Awaitable[None]]


class StoreKeeper:
    def __init__(
        self,
        manager: Callable[[], VectorStoreManager],
        checkpoints: Checkpoints,
        *,
        expires_after_days: int,
        poll_timeout_s: float,
        emit: Emit,
        endpoint: Callable[[], str] = lambda: "",
    ) -> None:
        self._manager = manager  # built on first use: `refinery plan` never needs one
        self.endpoint = endpoint  # the base URL, for the error of a server with no store
        self.checkpoints = checkpoints
        self.expires_after_days = expires_after_days
        self.poll_timeout_s = poll_timeout_s
        self._emit = emit

    async def _record(self, *args: Any, **kwargs: Any) -> None:
        """`Checkpoints.record_store` off the event loop (the record lists every file: a big
        trace's is a large JSON file written atomically)."""
        await in_worker(self.checkpoints.record_store, *args, **kwargs)

    async def _recorded(self, trace_id: str | None) -> dict[str, Any] | None:
        """`Checkpoints.recorded_store` off the event loop (it reads the upload log, a line a file)."""
        return await in_worker(self.checkpoints.recorded_store, trace_id)

    @property
    def manager(self) -> VectorStoreManager:
        return self._manager()

    @contextmanager
    def _staging(self) -> Iterator[Path]:
        """Where files are written before upload: the checkpoint folder's `files/` (kept, so a
        rerun or a user can see what was sent), else a temporary folder removed afterwards."""
        if self.checkpoints.folder is not None:
            yield own_dir(self.checkpoints.folder / "files")  # a link in its place is refused
            return
        with tempfile.TemporaryDirectory(prefix="refinery-") as tmp:
            yield Path(tmp)

    async def prepare(
        self,
        run: AnalysisRun,
        files: Sequence[tuple[str, str]],
        *,
        name: str | None,
        on_progress: IndexingProgress | None,
    ) -> str:
        """The store for `run`: the recorded one once it is ready, else a new one, indexed."""
        assert run.trace_id is not None
        run.files = file_names(files)
        recorded = await self._recorded(run.trace_id)
        if recorded is not None and (recorded.get("deleting") or not recorded.get("store_id")):
            await self.discard_recorded(recorded)  # being deleted, or its id never came back: never reused
        elif recorded is not None and await self._reusable(run, recorded, len(files), on_progress):
            return str(run.store_id)
        try:
            return await self._create(run, files, name, on_progress)
        except APIStatusError as exc:  # `--store hosted` on a server without one: say so, and the way out
            if not route_missing(exc):
                raise
            raise no_hosted_store(self.endpoint(), exc) from exc

    async def _reusable(
        self, run: AnalysisRun, recorded: dict[str, Any], n_files: int, on_progress: IndexingProgress | None
    ) -> bool:
        store_id = str(recorded["store_id"])
        try:
            counts = await self.manager.poll_ready(store_id, timeout_s=self.poll_timeout_s, on_progress=on_progress)
            if counts.get("completed", 0) < n_files:
                raise VectorStoreGoneError(
                    store_id, f"holds {counts.get('completed', 0)} of {n_files} files; the upload was interrupted"
                )
        except (VectorStoreGoneError, FileIndexingError) as exc:
            log.warning("%s; re-creating it from the trace (stage artifacts are kept)", exc)
            await self.discard_recorded(recorded)
            return False
        run.store_id = store_id
        run.created_store = True  # this analysis's artifacts made it: cleaned up like a new one
        run.file_ids = list(recorded.get("file_ids") or [])
        if not recorded.get("ready"):
            await self._record(store_id, str(run.trace_id), run.files, run.file_ids, ready=True)
        return True

    async def _create(
        self, run: AnalysisRun, files: Sequence[tuple[str, str]], name: str | None, on_progress: IndexingProgress | None
    ) -> str:
        trace_id = str(run.trace_id)
        await self._emit("prepare", "start", files=len(files))
        with self._staging() as folder:
            # writing a big trace's files is disk work: off the event loop
            paths = await in_worker(lambda: [write_text_atomic(folder / n, text) for n, text in files])
            run.store_id = await self._new_store(run, (name or f"refinery-{trace_id}")[:256])
            run.created_store = True
            # recorded before the upload, and each file id as soon as the file exists, so a run
            # stopped at any point leaves what a rerun (or `cleanup`) finds and deletes
            run.file_ids = []
            self.checkpoints.start_upload_log()
            await self._record(run.store_id, trace_id, run.files, [], ready=False)
            # a name and a few numbers a file, but ten thousand files for a 100 MB trace: off the loop
            await self._upload(run, paths, await in_worker(file_attributes, files, run.groups))
        await self._record(run.store_id, trace_id, run.files, run.file_ids, ready=False)
        await self.manager.poll_ready(run.store_id, timeout_s=self.poll_timeout_s, on_progress=on_progress)
        await self._record(run.store_id, trace_id, run.files, run.file_ids, ready=True)
        await self._emit("prepare", "end", store_id=run.store_id, files=len(files))
        return run.store_id

    async def _new_store(self, run: AnalysisRun, name: str) -> str:
        """A new store, marked in its metadata with a nonce recorded (with the time) before it is
        asked for: a creation that timed out, was retried, or whose run was killed before the id
        came back, leaves a store that this run — or the next — finds by the mark and deletes.
        Each attempt that timed out (as many as request timeouts fit in the time it took) may make
        its store late: they are waited for (at most `straggler_wait_s`) and deleted."""
        nonce, since, started = secrets.token_hex(8), time.time(), time.monotonic()
        trace_id = str(run.trace_id)
        await self._record(None, trace_id, run.files, [], ready=False, nonce=nonce, since=since)

        def timed_out() -> int:
            return int((time.monotonic() - started) // self.manager.request_timeout_s)

        try:
            store_id = await self.manager.create_store(
                name,
                expires_after_days=self.expires_after_days,
                metadata={
                    "refinery_trace_id": trace_id[:512],
                    "refinery_groups": str(len(run.groups)),
                    NONCE_KEY: nonce,
                },
            )
        except APIConnectionError:  # timed out (after retries, each maybe a store made late); the record stays
            await self._sweep_stores(nonce, since, expect=timed_out(), wait_s=self.straggler_wait_s)
            raise
        await self._record(store_id, trace_id, run.files, [], ready=False)
        late = timed_out()  # attempts before the one answered
        await self._sweep_stores(nonce, since, keep=store_id, expect=late, wait_s=self.straggler_wait_s if late else 0)
        return store_id

    async def _sweep_stores(
        self, nonce: str, since: float, *, keep: str | None = None, expect: int = 0, wait_s: float = 0.0
    ) -> bool:
        """Delete the stores marked with `nonce` (but `keep`), looking again until `expect` were
        found or `wait_s` has passed (a server still working on a timed-out creation makes its
        store late). False when the account could not be looked at (the record stays for the
        next run)."""
        deadline, found = time.monotonic() + wait_s, 0
        while True:
            try:
                stores = await self.manager.stores_since(since - SWEEP_SLACK_S)
                for st in stores:
                    if (st.get("metadata") or {}).get(NONCE_KEY) == nonce and st.get("id") != keep:
                        await self._delete_store(str(st["id"]))
                        found += 1
                        log.info("deleted vector store %s, made by a request whose answer was cut", st["id"])
            except RefineryError as exc:  # they expire (`expires_after`)
                log.info("could not look for vector stores whose creation was cut: %s", exc)
                return False
            if found >= expect or time.monotonic() >= deadline:
                return True
            await asyncio.sleep(min(STRAGGLER_POLL_S, max(0.0, deadline - time.monotonic())))

    @property
    def straggler_wait_s(self) -> float:
        """How long a run whose request timed out looks again for what the server makes late."""
        return min(2 * self.manager.request_timeout_s, MAX_STRAGGLER_WAIT_S)

    async def add_file(self, run: AnalysisRun, name: str, text: str) -> None:
        """One more file in the run's store (once per name), indexed before this returns."""
        if not run.store_id or name in run.files:
            return
        with self._staging() as folder:
            path = write_text_atomic(folder / name, text)
            await self._upload(run, [path], {name: {"kind": "stage1", "group": 0}})
        run.files.append(name)
        await self.manager.poll_ready(run.store_id, timeout_s=self.poll_timeout_s)
        await self._record(run.store_id, str(run.trace_id), run.files, run.file_ids, ready=True)

    async def _upload(self, run: AnalysisRun, paths: list[Path], attributes: dict[str, dict[str, Any]]) -> None:
        """Upload into the run's store, each file id recorded (in the run and `store.json`) as soon
        as the file exists; files expire with the store. When the upload fails, what it made is
        deleted before the error goes on (nothing is left on the account)."""
        assert run.store_id is not None

        sent: list[str] = []  # a name an attempt
        began = time.time()

        def sending(path: Path) -> None:
            sent.append(path.name)
            self.checkpoints.note_upload(sending=path.name)

        refused: list[str] = []  # answered with an error: no file was made

        def uploaded(file_id: str) -> None:
            run.file_ids.append(file_id)
            self.checkpoints.note_upload(file_id=file_id)

        try:
            await self.manager.upload_files(
                run.store_id,
                paths,
                attributes=attributes,
                on_uploaded=uploaded,
                on_sending=sending,
                on_refused=lambda path: refused.append(path.name),
                expires_after_s=self.expires_after_days * 86_400 if self.expires_after_days else None,
            )
        except BaseException as exc:
            unheard = len(sent) - len(run.file_ids) - len(refused)
            # a timed-out attempt's file may be made after the client gave up: waited for a while
            # (not when the run is being stopped), else the record stays and the rerun sweeps again
            wait_s = self.straggler_wait_s if isinstance(exc, APIConnectionError) else 0.0
            recorded = await self._recorded(run.trace_id) or {}
            done = await self.discard_recorded(
                {
                    **recorded,
                    "store_id": run.store_id,
                    "file_ids": run.file_ids,
                    "unheard": unheard,
                    "sent": sent,
                    "sent_at": began,
                },
                wait_s=wait_s,
            )
            run.created_store = False
            if done:
                self.checkpoints.forget_store()
            raise

    async def adopt(self, run: AnalysisRun, store_id: str) -> None:
        """A store prepared elsewhere (`refinery init`): learn its trace and Stage 1 groups."""
        run.store_id = store_id
        try:
            data = await self.manager.get_store(store_id)
        except VectorStoreGoneError as exc:
            raise VectorStoreGoneError(
                exc.store_id, exc.reason, "prepare it again with `refinery init TRACE`, or use `refinery run TRACE`"
            ) from None
        meta = data.get("metadata") or {}
        run.trace_id = run.trace_id or meta.get("refinery_trace_id")
        if not run.groups:
            run.groups = [StageGroup(g, 0, 0, ()) for g in range(1, int(meta.get("refinery_groups") or 1) + 1)]

    async def discard_recorded(self, recorded: dict[str, Any], *, wait_s: float = 0.0, settle: bool = False) -> bool:
        """Delete the store and files a record names (`Checkpoints.recorded_store`: a killed
        run's, `--fresh`'s, a finished run's whose deletion was cut) — the stores marked with its
        nonce (a creation whose id never came back), and, when upload attempts were sent whose
        ids never came back, those files, found on the account by name and time (waiting up to
        `wait_s` for ones a slow server makes late). True when the record may go: every deletion
        done, and every unheard attempt's file found — or, with `settle`, looked for (long after
        the upload, an attempt that made nothing is not waited for again and again)."""
        known = [str(f) for f in recorded.get("file_ids") or []]
        done = await self._discard(str(recorded["store_id"]), known) if recorded.get("store_id") else True
        if recorded.get("nonce"):  # a creation retried, or whose id never came back
            done = await self._sweep_stores(str(recorded["nonce"]), float(recorded.get("since") or 0)) and done
        unheard = int(recorded.get("unheard") or 0)
        if unheard and recorded.get("sent"):
            found = await self._sweep(
                set(recorded["sent"]), float(recorded.get("sent_at") or 0), set(known), unheard, wait_s
            )
            done = done and (settle or found >= unheard)
        return done

    async def _sweep(self, names: set[str], since: float, known: set[str], unheard: int, wait_s: float) -> int:
        """Delete this trace's files (by name) made since the upload began whose ids were never
        heard, looking again until `unheard` are found or `wait_s` has passed; how many were.
        Why by name: nothing else marks them — a file's name is the rendered file's, which holds
        the trace id, so only a run of the same trace started at the same time could match."""
        deadline, found = time.monotonic() + wait_s, set()
        while True:
            try:
                files = await self.manager.account_files()
                strays = [
                    str(f["id"])
                    for f in files
                    if f.get("filename") in names
                    and float(f.get("created_at") or 0) >= since - SWEEP_SLACK_S
                    and str(f.get("id")) not in known
                ]
                await self.manager.delete_files(strays)
            except RefineryError as exc:  # they expire with their `expires_after`; do not fail the run
                log.info("could not look for files whose upload was cut: %s", exc)
                return len(found)
            found.update(strays)
            if len(found) >= unheard or time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(STRAGGLER_POLL_S, max(0.0, deadline - time.monotonic())))
        if found:
            log.info("deleted %d file(s) whose upload was cut before their ids came back", len(found))
        return len(found)

    async def _delete_store(self, store_id: str) -> None:
        try:
            await self.manager.delete_store(store_id)
        except NotFoundError:  # already gone: what was wanted
            pass

    async def _discard(self, store_id: str, file_ids: list[str]) -> bool:
        """Delete a store and files that cannot be used; they expire anyway, so failures only log
        (and say False: the record stays for the next run)."""
        done = True
        for what, action in (
            ("store", lambda: self._delete_store(store_id)),
            ("files", lambda: self.manager.delete_files(file_ids)),
        ):
            try:
                await action()
            except RefineryError as exc:
                log.info("could not delete the %s of %s: %s", what, store_id, exc)
                done = False
        return done

    async def cleanup(self, run: AnalysisRun) -> None:
        """Delete the store (and its files) this analysis made — after a resumed run too, and
        one an earlier run of the same folder made whose deletion was cut (this run found every
        stage done). The record says "deleting" before anything is sent, so a run stopped in the
        middle leaves the deletion to the next."""
        recorded = await self._recorded(run.trace_id) if run.trace_id is not None else None
        if run.created_store and run.store_id:
            self.checkpoints.mark_deleting()
            try:
                await self._delete_store(run.store_id)
                await self.manager.delete_files(sorted(set(run.file_ids)))  # this run's own: a manager serves many
            except RefineryError as exc:  # the store expires by itself; do not fail the analysis
                log.warning("could not delete vector store %s: %s", run.store_id, exc)
                return
            finally:
                run.created_store = False
            if recorded is not None:  # what else it names: a retried creation's store, a retried upload's file
                await self.discard_recorded({**recorded, "store_id": None, "file_ids": run.file_ids}, settle=True)
        elif recorded is not None:
            self.checkpoints.mark_deleting()
            if not await self.discard_recorded(recorded, settle=True):
                return
        else:
            return
        self.checkpoints.forget_store()
