"""The Files API calls more than one feature needs: upload, delete, a file's content to disk.

Why apart: a vector store's files (purpose `assistants`) and a batch's input and output files
(purpose `batch`) are the same objects on the same endpoints; one upload (multipart, built again
for each retry, read off the event loop) and one download (streamed to a temporary file, written
in a worker thread, moved into place only when whole) serve both.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from refinery.core.artifacts import private_dir
from refinery.errors import NotFoundError
from refinery.wire.transport import OpenAITransport

if TYPE_CHECKING:  # imported where a request is made (`refinery plan` makes none)
    import aiohttp

__all__ = ["delete_file", "download_file", "list_files", "upload_file"]

MIN_EXPIRY_S, MAX_EXPIRY_S = 3600, 2_592_000  # the API's bounds on `expires_after[seconds]`
CHUNK_BYTES = 1 << 20
LIST_PAGE = 10_000  # the API's largest `limit` for `GET /files`


async def upload_file(
    transport: OpenAITransport,
    path: Path,
    *,
    purpose: str,
    content_type: str = "text/plain",
    expires_after_s: int | None = None,
    on_attempt: Callable[[Path], None] | None = None,
    filename: str | None = None,
) -> str:
    """One multipart `POST /files`; returns the file id. With `expires_after_s` (clamped to the
    API's 1 hour to 30 days) the file expires that long after it was made, so a run killed before
    its clean-up leaves nothing for ever. `on_attempt` hears each attempt just before it is sent.
    `filename` (default: the path's name) is the name the file gets on the server: what a file
    whose id never came back is found by (`list_files`)."""
    content = await asyncio.to_thread(path.read_bytes)  # a big file: read off the event loop

    def form() -> aiohttp.FormData:
        import aiohttp

        if on_attempt is not None:
            on_attempt(path)
        fd = aiohttp.FormData()
        fd.add_field("purpose", purpose)
        if expires_after_s is not None:
            fd.add_field("expires_after[anchor]", "created_at")
            fd.add_field("expires_after[seconds]", str(min(max(expires_after_s, MIN_EXPIRY_S), MAX_EXPIRY_S)))
        fd.add_field("file", content, filename=filename or path.name, content_type=content_type)
        return fd

    resp = await transport.request("POST", "/files", form=form)
    return str(resp.data["id"])


async def list_files(
    transport: OpenAITransport, *, purpose: str, created_after: float | None = None
) -> list[dict[str, Any]]:
    """The account's files of `purpose` (`GET /files`, newest first, page by page), stopping at
    the first made before `created_after` (a Unix time) when given: where an upload whose answer
    was lost (a stop, a timeout) is found again by its name."""
    files: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params = {"purpose": purpose, "limit": str(LIST_PAGE), "order": "desc", **({"after": after} if after else {})}
        page = (await transport.request("GET", "/files", params=params)).data
        data = list(page.get("data") or [])
        recent = [f for f in data if created_after is None or float(f.get("created_at") or 0) >= created_after]
        files.extend(recent)
        if not page.get("has_more") or not data or len(recent) < len(data):
            return files
        after = str(data[-1]["id"])


async def delete_file(transport: OpenAITransport, file_id: str) -> bool:
    """`DELETE /files/{id}`; True if deleted, False if it was already gone (what was wanted)."""
    try:
        await transport.request("DELETE", f"/files/{file_id}")
    except NotFoundError:
        return False
    return True


async def download_file(transport: OpenAITransport, file_id: str, dest: Path) -> Path:
    """`GET /files/{id}/content` streamed into `dest`: chunk by chunk into a temporary file beside
    it (each write in a worker thread), moved into place only when the whole body has come — a
    reader sees no file or the whole file. A retried attempt starts the temporary file over."""
    dest = Path(dest)
    await asyncio.to_thread(private_dir, dest.parent)

    async def sink(resp: aiohttp.ClientResponse) -> Path:
        fd, tmp = await asyncio.to_thread(tempfile.mkstemp, prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        fh: IO[bytes] = os.fdopen(fd, "wb")
        try:
            async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                await asyncio.to_thread(fh.write, chunk)
            await asyncio.to_thread(_close_synced, fh)
            await asyncio.to_thread(os.replace, tmp, dest)
        except BaseException:
            fh.close()
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    await transport.request("GET", f"/files/{file_id}/content", sink=sink)
    return dest


def _close_synced(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()
