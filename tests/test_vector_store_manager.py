"""VectorStoreManager over mocked HTTP: create → upload → batch → poll → delete."""

from __future__ import annotations

import re

import pytest

from refinery.errors import (
    FileIndexingError,
    IndexingTimeoutError,
    UnsupportedFileError,
    VectorStoreError,
)
from refinery.wire.vector_store_manager import VectorStoreManager
from tests.helpers import BASE, sent

STORE = "vs_123"


def store_obj(in_progress: int, completed: int, failed: int = 0) -> dict:
    total = in_progress + completed + failed
    return {
        "id": STORE,
        "object": "vector_store",
        "created_at": 1,
        "name": "t",
        "usage_bytes": 0,
        "status": "in_progress" if in_progress else "completed",
        "file_counts": {
            "in_progress": in_progress,
            "completed": completed,
            "failed": failed,
            "cancelled": 0,
            "total": total,
        },
    }


@pytest.fixture
def files(tmp_path):
    a = tmp_path / "trace_runs_001-006.md"
    a.write_text("# run r1\nfailed")
    b = tmp_path / "prompts.md"
    b.write_text("# prompt")
    return [a, b]


@pytest.fixture
def manager(make_transport):
    return VectorStoreManager(make_transport(), upload_concurrency=2)


def mock_uploads(mocked, n):
    for i in range(n):
        mocked.post(
            f"{BASE}/files",
            payload={
                "id": f"file-{i}",
                "object": "file",
                "bytes": 5,
                "created_at": 1,
                "filename": "x",
                "purpose": "assistants",
                "status": "processed",
            },
        )


async def test_create_store_sets_expiry_anchor(manager, mocked):
    mocked.post(f"{BASE}/vector_stores", payload=store_obj(0, 0))
    async with manager.transport:
        assert await manager.create_store("refinery-t1", expires_after_days=2) == STORE
    [call] = sent(mocked, "POST", f"{BASE}/vector_stores")
    assert call.kwargs["json"] == {"name": "refinery-t1", "expires_after": {"anchor": "last_active_at", "days": 2}}


async def test_upload_then_one_batch_then_poll_until_completed(manager, mocked, files, clock):
    mock_uploads(mocked, 2)
    mocked.post(f"{BASE}/vector_stores/{STORE}/file_batches", payload={"id": "vsfb_1", "status": "in_progress"})
    mocked.get(f"{BASE}/vector_stores/{STORE}", payload=store_obj(2, 0))
    mocked.get(f"{BASE}/vector_stores/{STORE}", payload=store_obj(1, 1))
    mocked.get(f"{BASE}/vector_stores/{STORE}", payload=store_obj(0, 2))
    progress = []
    async with manager.transport:
        ids = await manager.upload_files(STORE, files)
        counts = await manager.poll_ready(STORE, timeout_s=60, poll_s=3, on_progress=progress.append)
    assert sorted(ids) == ["file-0", "file-1"]
    uploads = sent(mocked, "POST", f"{BASE}/files")
    assert len(uploads) == 2
    fields = {f[0]["name"]: f for f in uploads[0].kwargs["data"]._fields}
    assert fields["purpose"][2] == "assistants"
    assert fields["file"][0]["filename"] in {"trace_runs_001-006.md", "prompts.md"}
    [batch] = sent(mocked, "POST", f"{BASE}/vector_stores/{STORE}/file_batches")
    assert sorted(batch.kwargs["json"]["file_ids"]) == ["file-0", "file-1"]
    assert counts["completed"] == 2
    assert [p["in_progress"] for p in progress] == [2, 1, 0]
    assert clock.sleeps == [3, 3]


async def test_attributes_are_sent_per_file_on_the_batch(manager, mocked, files):
    mock_uploads(mocked, 2)
    mocked.post(f"{BASE}/vector_stores/{STORE}/file_batches", payload={"id": "vsfb_1"})
    async with manager.transport:
        ids = await manager.upload_files(STORE, files, attributes={files[0].name: {"group": 1, "kind": "trace"}})
    [batch] = sent(mocked, "POST", f"{BASE}/vector_stores/{STORE}/file_batches")
    entries = batch.kwargs["json"]["files"]
    assert [e["file_id"] for e in entries] == ids
    assert entries[0]["attributes"] == {"group": 1, "kind": "trace"}
    assert "attributes" not in entries[1]


async def test_failed_file_is_named_with_its_error(manager, mocked, files):
    mock_uploads(mocked, 2)
    mocked.post(f"{BASE}/vector_stores/{STORE}/file_batches", payload={"id": "vsfb_1"})
    mocked.get(f"{BASE}/vector_stores/{STORE}", payload=store_obj(0, 1, failed=1))
    mocked.get(
        re.compile(rf"^{re.escape(BASE)}/vector_stores/{STORE}/files\?.*filter=failed"),
        payload={
            "object": "list",
            "data": [
                {"id": "file-1", "status": "failed", "last_error": {"code": "invalid_file", "message": "empty file"}}
            ],
        },
    )
    async with manager.transport:
        ids = await manager.upload_files(STORE, files)
        with pytest.raises(FileIndexingError) as exc:
            await manager.poll_ready(STORE)
    name = manager.uploaded["file-1"]
    assert exc.value.failures == [(name, "invalid_file", "empty file")]
    assert name in str(exc.value) and "empty file" in str(exc.value)
    assert "file-1" in ids


async def test_poll_timeout_says_how_many_are_left(manager, mocked, clock):
    for _ in range(10):
        mocked.get(f"{BASE}/vector_stores/{STORE}", payload=store_obj(3, 1))
    async with manager.transport:
        with pytest.raises(IndexingTimeoutError, match="3 file\\(s\\) still in progress after 9 s") as exc:
            await manager.poll_ready(STORE, timeout_s=9, poll_s=3)
    assert exc.value.in_progress == 3
    assert sum(clock.sleeps) == 9


async def test_delete_store_and_uploaded_files(manager, mocked, files):
    mock_uploads(mocked, 2)
    mocked.post(f"{BASE}/vector_stores/{STORE}/file_batches", payload={"id": "vsfb_1"})
    mocked.delete(f"{BASE}/vector_stores/{STORE}", payload={"id": STORE, "deleted": True})
    for i in range(2):
        mocked.delete(f"{BASE}/files/file-{i}", payload={"id": f"file-{i}", "deleted": True})
    async with manager.transport:
        await manager.upload_files(STORE, files)
        await manager.delete_store(STORE)
        await manager.delete_files()
    assert len(sent(mocked, "DELETE")) == 3
    assert manager.uploaded == {}


async def test_missing_path_is_refused_before_any_upload(manager, mocked, files, tmp_path):
    async with manager.transport:
        with pytest.raises(UnsupportedFileError, match="nope.md: no such file"):
            await manager.upload_files(STORE, [files[0], tmp_path / "nope.md"])
    assert mocked.requests == {}


async def test_unindexed_type_is_refused_before_any_upload(manager, mocked, files, tmp_path):
    binary = tmp_path / "trace.parquet"
    binary.write_bytes(b"PAR1")
    async with manager.transport:
        with pytest.raises(UnsupportedFileError, match="'.parquet' is not indexed"):
            await manager.upload_files(STORE, [files[0], binary])
    assert mocked.requests == {}


async def test_chunking_strategy_goes_on_the_batch_or_on_each_entry(make_transport, mocked, files):
    strategy = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
    manager = VectorStoreManager(make_transport(), chunking_strategy=strategy)
    mock_uploads(mocked, 4)
    mocked.post(f"{BASE}/vector_stores/{STORE}/file_batches", payload={"id": "vsfb_1"}, repeat=True)
    async with manager.transport:
        await manager.upload_files(STORE, files)
        await manager.upload_files(STORE, files, attributes={files[0].name: {"group": 1}})
    plain, per_file = sent(mocked, "POST", f"{BASE}/vector_stores/{STORE}/file_batches")
    assert plain.kwargs["json"]["chunking_strategy"] == strategy
    # with per-file entries the API ignores batch-level settings: each entry carries its own
    assert "chunking_strategy" not in per_file.kwargs["json"]
    assert [e["chunking_strategy"] for e in per_file.kwargs["json"]["files"]] == [strategy, strategy]


async def test_more_files_than_one_batch_holds_go_in_several_batches(make_transport, mocked, tmp_path):
    paths = []
    for i in range(5):
        p = tmp_path / f"f{i}.md"
        p.write_text(f"# file {i}")
        paths.append(p)
    manager = VectorStoreManager(make_transport(), batch_size=2)
    mock_uploads(mocked, 5)
    mocked.post(f"{BASE}/vector_stores/{STORE}/file_batches", payload={"id": "vsfb_1"}, repeat=True)
    async with manager.transport:
        ids = await manager.upload_files(STORE, paths)
    batches = sent(mocked, "POST", f"{BASE}/vector_stores/{STORE}/file_batches")
    assert [b.kwargs["json"]["file_ids"] for b in batches] == [ids[0:2], ids[2:4], ids[4:5]]


def test_a_batch_size_over_the_apis_limit_is_refused(make_transport):
    with pytest.raises(VectorStoreError, match="batch_size must be 1-2000"):
        VectorStoreManager(make_transport(), batch_size=2001)


async def test_many_files_are_each_uploaded_once_at_most_upload_concurrency_at_a_time_ids_in_path_order(
    make_transport, mocked, tmp_path
):
    import asyncio

    paths = []
    for i in range(23):
        p = tmp_path / f"f{i:02d}.md"
        p.write_text(f"# file {i}")
        paths.append(p)
    manager = VectorStoreManager(make_transport(), upload_concurrency=3)
    now = peak = 0
    sent_names: list[str] = []

    async def upload_file(path, **_kwargs):
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        sent_names.append(path.name)
        await asyncio.sleep(0.001 * (int(path.stem[1:]) % 3))  # finishing out of order
        now -= 1
        return f"file-{path.stem}"

    manager.upload_file = upload_file  # type: ignore[method-assign]
    mocked.post(f"{BASE}/vector_stores/{STORE}/file_batches", payload={"id": "vsfb_1"}, repeat=True)
    async with manager.transport:
        ids = await manager.upload_files(STORE, paths, attributes={p.name: {"group": i} for i, p in enumerate(paths)})
    assert ids == [f"file-{p.stem}" for p in paths]
    assert sorted(sent_names) == [p.name for p in paths]  # each once
    assert peak == 3
    [batch] = sent(mocked, "POST", f"{BASE}/vector_stores/{STORE}/file_batches")
    assert [e["attributes"] for e in batch.kwargs["json"]["files"]] == [{"group": i} for i in range(23)]
