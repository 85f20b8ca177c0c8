"""The object store's lifecycle against a real PostgreSQL and a real SeaweedFS: uploads confirmed before a
recording counts as finished (fail closed), renditions with it, reads falling back to the store, and objects of
deleted recordings deleted after the key."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from siprec_server.uploader import S3Metrics, Uploader
from storage import FileBlobStore, RecordingStatus
from storage.catalogue import Catalogue
from storage.disposal import Disposal, DisposalReason, dispose
from storage.lifecycle_rows import Lock, recording_facts
from storage.object_uploads import ObjectUploads
from storage.s3_store import S3Store
from storage.scope import ALL_TENANTS
from tests.s3 import SeaweedFS

from .retention_samples import T0, Stored, add_recording, add_rendition


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
async def store(seaweed: SeaweedFS, tmp_path: Path) -> AsyncIterator[S3Store]:
    # Each test under its own prefix: tests share the bucket, never an object.
    settings = dataclasses.replace(seaweed.settings, prefix=f"{tmp_path.name}/")
    async with S3Store(settings) as opened:
        yield opened


@pytest.fixture
def blobs(tmp_path: Path, store: S3Store) -> FileBlobStore:
    return FileBlobStore(tmp_path / "recordings", remote=store)


@pytest.fixture
def metrics() -> S3Metrics:
    return S3Metrics(CollectorRegistry())


def uploader(pool: asyncpg.Pool, store: S3Store, blobs: FileBlobStore, metrics: S3Metrics) -> Uploader:
    return Uploader(pool, store, blobs, node=None, metrics=metrics)


async def waiting(pool: asyncpg.Pool, blobs: FileBlobStore, **options: object) -> Stored:
    """A finished call as the server leaves it with a store configured: 'uploading', its file on disk."""
    stored = await add_recording(pool, blobs, tenant_id=None, **options)  # type: ignore[arg-type]
    await pool.execute(
        "UPDATE recordings SET status = 'uploading', pending_status = status WHERE id = $1", stored.id
    )
    return stored


async def test_a_recording_counts_as_finished_only_once_the_store_holds_it(
    pool: asyncpg.Pool, store: S3Store, blobs: FileBlobStore, metrics: S3Metrics
) -> None:
    stored = await waiting(pool, blobs, status=RecordingStatus.ONE_WAY)
    assert stored.path is not None
    octets = stored.path.read_bytes()
    before = await Catalogue(pool).get(stored.id)
    assert before is not None and before.status is RecordingStatus.UPLOADING
    assert before.pending_status is RecordingStatus.ONE_WAY and before.object_key is None

    report = await uploader(pool, store, blobs, metrics).run_once()

    assert (report.uploaded, report.failed) == (1, 0)
    after = await Catalogue(pool).get(stored.id)
    assert after is not None and after.status is RecordingStatus.ONE_WAY and after.pending_status is None
    key = blobs.key_for(stored.path)
    assert key == f"{T0:%Y/%m/%d}/{stored.id}.flac"
    assert (after.object_key, after.file_path) == (key, key)
    assert not stored.path.exists()
    assert await store.read_range(key, 0, len(octets)) == octets
    # Every reader of the catalogue's path now reads the object.
    assert await asyncio.to_thread(_read, blobs, after.file_path) == octets
    assert await asyncio.to_thread(blobs.size, key) == len(octets)
    assert metrics.uploads_waiting._value.get() == 0


async def test_renditions_go_up_with_their_recording_and_a_pending_one_holds_it_back(
    pool: asyncpg.Pool, store: S3Store, blobs: FileBlobStore, metrics: S3Metrics
) -> None:
    stored = await waiting(pool, blobs)
    wav = await add_rendition(pool, stored)
    await pool.execute("UPDATE renditions SET status = 'pending' WHERE recording_id = $1", stored.id)
    work = uploader(pool, store, blobs, metrics)

    assert (await work.run_once()).uploaded == 0  # its rendition is still being made
    await pool.execute("UPDATE renditions SET status = 'done' WHERE recording_id = $1", stored.id)
    assert (await work.run_once()).uploaded == 1

    rendition = await pool.fetchrow(
        "SELECT file_path, object_key FROM renditions WHERE recording_id = $1", stored.id
    )
    assert rendition["object_key"] == rendition["file_path"] == blobs.key_for(wav)
    assert not wav.exists()
    assert await store.head(rendition["object_key"]) is not None


async def test_with_the_store_unreachable_the_recording_waits_with_its_file(
    pool: asyncpg.Pool, seaweed: SeaweedFS, blobs: FileBlobStore, metrics: S3Metrics, tmp_path: Path
) -> None:
    stored = await waiting(pool, blobs)
    assert stored.path is not None
    gone = dataclasses.replace(
        seaweed.settings, endpoint_url="http://127.0.0.1:9", prefix=f"{tmp_path.name}/"
    )
    async with S3Store(gone) as unreachable:
        report = await Uploader(pool, unreachable, blobs, node=None, metrics=metrics).run_once()

    assert (report.uploaded, report.failed) == (0, 1)
    assert metrics.upload_failures._value.get() == 1
    row = await Catalogue(pool).get(stored.id)
    assert row is not None and row.status is RecordingStatus.UPLOADING and row.object_key is None
    assert stored.path.is_file() and row.file_path == str(stored.path)


async def test_a_recording_erased_during_its_upload_is_not_brought_back(
    pool: asyncpg.Pool, store: S3Store, blobs: FileBlobStore, metrics: S3Metrics
) -> None:
    stored = await waiting(pool, blobs)
    assert stored.path is not None
    (claimed,) = await ObjectUploads(pool).waiting(None)
    await _dispose(pool, blobs, stored)  # the erasure lands between the pass's query and its upload

    work = uploader(pool, store, blobs, metrics)
    assert await work.upload(claimed) == "failed"  # the file went with the row: nothing to upload
    local = blobs.path_for(stored.id, T0, "flac")
    local.write_bytes(b"a copy still being uploaded")  # the upload had read it before the erasure
    assert await work.upload(claimed) == "dropped"
    assert await store.head(blobs.key_for(local)) is None
    assert await Catalogue(pool).get(stored.id) is None


async def test_an_erased_recording_loses_its_key_first_and_its_objects_after(
    pool: asyncpg.Pool, store: S3Store, blobs: FileBlobStore, metrics: S3Metrics
) -> None:
    stored = await waiting(pool, blobs)
    await add_rendition(pool, stored)
    work = uploader(pool, store, blobs, metrics)
    await work.run_once()
    keys = [
        row["object_key"]
        for row in await pool.fetch(
            "SELECT object_key FROM recordings WHERE id = $1 UNION SELECT object_key FROM renditions "
            "WHERE recording_id = $1",
            stored.id,
        )
    ]
    assert len(keys) == 2

    disposal = await _dispose(pool, blobs, stored)

    assert disposal.files == 2  # both objects, queued
    wrapped = await pool.fetchval("SELECT wrapped FROM recording_keys WHERE recording_id = $1", stored.id)
    assert wrapped is None  # crypto-shredded in the disposal's transaction
    assert sorted(await ObjectUploads(pool).due_deletions()) == sorted(keys)
    for key in keys:
        assert await store.head(key) is not None  # deleted only after that commit
    assert await work.delete_queued() == (2, 0)
    for key in keys:
        assert await store.head(key) is None
    assert await ObjectUploads(pool).queued_deletions() == 0


async def test_a_deletion_the_store_refuses_stays_queued(
    pool: asyncpg.Pool, seaweed: SeaweedFS, blobs: FileBlobStore, metrics: S3Metrics, tmp_path: Path
) -> None:
    await pool.execute(
        "INSERT INTO object_deletions (object_key, queued_at) VALUES ('2026/11/29/x.flac.sealed', now())"
    )
    gone = dataclasses.replace(
        seaweed.settings, endpoint_url="http://127.0.0.1:9", prefix=f"{tmp_path.name}/"
    )
    async with S3Store(gone) as unreachable:
        assert await Uploader(pool, unreachable, blobs, node=None).delete_queued() == (0, 1)
    row = await pool.fetchrow("SELECT attempts, last_error FROM object_deletions")
    assert row["attempts"] == 1 and "delete_object" in row["last_error"]


def test_a_file_in_neither_place_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        FileBlobStore(tmp_path).open_read("2026/11/29/nothing.flac")


def _read(blobs: FileBlobStore, path: str) -> bytes:
    with blobs.open_read(path) as source:
        return source.read()


async def _dispose(pool: asyncpg.Pool, blobs: FileBlobStore, stored: Stored) -> Disposal:
    async with pool.acquire() as conn, conn.transaction():
        facts = await recording_facts(conn, ALL_TENANTS, stored.id, lock=Lock.UPDATE)
        return await dispose(
            conn, facts, reason=DisposalReason.ERASURE_REQUEST, disposed_by="dpo", now=T0, blobs=blobs
        )


async def test_one_pass_takes_every_waiting_recording_several_at_a_time(
    pool: asyncpg.Pool, store: S3Store, blobs: FileBlobStore, metrics: S3Metrics
) -> None:
    many = [await waiting(pool, blobs) for _ in range(105)]  # more than one batch of the catalogue's
    in_flight = peak = 0
    put_file = store.put_file

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await put_file(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            in_flight -= 1

    store.put_file = counted  # type: ignore[method-assign]
    report = await Uploader(pool, store, blobs, node=None, metrics=metrics, concurrency=4).run_once()

    assert (report.uploaded, report.failed) == (105, 0)
    assert 1 < peak <= 4
    statuses = await pool.fetch(
        "SELECT DISTINCT status FROM recordings WHERE id = ANY($1)", [s.id for s in many]
    )
    assert [r["status"] for r in statuses] == ["complete"]
