"""Rendition rows as durable jobs, against the real PostgreSQL: request, claim (SKIP LOCKED), retry, resume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest

from storage import Catalogue, CatalogueError, Recording, RecordingNotFoundError, RecordingStatus, open_pool
from storage.renditions import Renditions, RenditionStatus
from tests.pg import PgCluster

from .samples import STARTED_AT, new_recording, received_streams

ROOT = "/var/lib/hangtar/recordings/2026/11/28"
MASTER_SHA = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
OPUS_SHA = "9b74c9897bac770ffc029102a200c5de3bde7f9c1b5f8e1c1e7a4a2b9d3c8f11"
NOW = datetime(2026, 11, 28, 14, 5, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
async def empty_renditions(pool: asyncpg.Pool) -> None:
    await pool.execute("TRUNCATE renditions")


@pytest.fixture
def renditions(pool: asyncpg.Pool) -> Renditions:
    return Renditions(pool)


async def finished_call(catalogue: Catalogue, *, minutes_later: int = 0, finish: bool = True) -> Recording:
    """A 94-second two-party call as the server leaves it: FLAC master written, row complete."""
    started = STARTED_AT + timedelta(minutes=minutes_later)
    row = await catalogue.create(new_recording(started_at=started, call_id=f"{uuid4().hex}@192.0.2.10"))
    if not finish:
        return row
    return await catalogue.finish(
        row.id,
        status=RecordingStatus.COMPLETE,
        ended_at=started + timedelta(seconds=95),
        media_started_at=started + timedelta(milliseconds=180),
        duration_seconds=94.02,
        streams=received_streams(started),
        file_path=f"{ROOT}/{row.id}.flac",
        format="flac",
        size_bytes=1_379_214,
        sha256=MASTER_SHA,
    )


async def test_a_request_is_a_pending_job_and_asking_again_changes_nothing(
    catalogue: Catalogue, renditions: Renditions
) -> None:
    call = await finished_call(catalogue)
    first = await renditions.request(call.id, "opus", now=NOW)
    assert (first.status, first.attempts, first.file_path, first.replaces_master) == (
        RenditionStatus.PENDING,
        0,
        None,
        False,
    )
    assert first.not_before == NOW
    again = await renditions.request(call.id, "opus", now=NOW + timedelta(minutes=1), replaces_master=True)
    assert again == first
    await renditions.request(call.id, "wav", now=NOW)
    assert [r.format for r in await renditions.for_recording(call.id)] == ["opus", "wav"]
    assert await renditions.backlog() == 2
    assert set(first.to_json()) == {
        "format",
        "status",
        "file_path",
        "size_bytes",
        "sha256",
        "attempts",
        "error",
        "replaces_master",
        "created_at",
        "finished_at",
    }


async def test_requests_for_unknown_recordings_or_formats_are_refused(
    catalogue: Catalogue, renditions: Renditions
) -> None:
    with pytest.raises(RecordingNotFoundError):
        await renditions.request(uuid4(), "opus", now=NOW)
    call = await finished_call(catalogue)
    for wrong in ("flac", "ogg", "OPUS"):
        with pytest.raises(ValueError, match="no rendition format"):
            await renditions.request(call.id, wrong, now=NOW)
    assert await renditions.for_recording(call.id) == []


async def test_claiming_needs_a_transaction(renditions: Renditions, pool: asyncpg.Pool) -> None:
    with pytest.raises(RuntimeError, match="inside a transaction"):
        await renditions.claim_next(now=NOW)
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside a transaction"):
            await Renditions(conn).claim_next(now=NOW)


async def test_two_workers_never_claim_the_same_rendition(
    catalogue: Catalogue, renditions: Renditions, pool: asyncpg.Pool
) -> None:
    older, newer = await finished_call(catalogue), await finished_call(catalogue, minutes_later=3)
    await renditions.request(older.id, "opus", now=NOW)
    await renditions.request(newer.id, "opus", now=NOW + timedelta(seconds=1))
    async with (
        pool.acquire() as a,
        pool.acquire() as b,
        pool.acquire() as c,
        a.transaction(),
        b.transaction(),
        c.transaction(),
    ):
        first = await Renditions(a).claim_next(now=NOW + timedelta(seconds=5))
        second = await Renditions(b).claim_next(now=NOW + timedelta(seconds=5))
        third = await Renditions(c).claim_next(now=NOW + timedelta(seconds=5))
        assert first is not None and second is not None and third is None
        assert first.rendition.recording_id == older.id  # the oldest due job first
        assert second.rendition.recording_id == newer.id
        assert first.source_path == older.file_path and first.source_format == "flac"
        assert first.source_sha256 == MASTER_SHA and first.recording_started_at == older.started_at
        assert await renditions.backlog() == 2  # claimed jobs are still pending until they finish


async def test_jobs_of_recordings_in_progress_or_not_yet_due_wait(
    catalogue: Catalogue, renditions: Renditions, pool: asyncpg.Pool
) -> None:
    live = await finished_call(catalogue, finish=False)
    await renditions.request(live.id, "mp3", now=NOW)
    later = await finished_call(catalogue)
    await renditions.request(later.id, "mp3", now=NOW + timedelta(minutes=10))
    async with pool.acquire() as conn, conn.transaction():
        assert await Renditions(conn).claim_next(now=NOW + timedelta(minutes=5)) is None
        job = await Renditions(conn).claim_next(now=NOW + timedelta(minutes=10))
        assert job is not None and job.rendition.recording_id == later.id


async def test_a_worker_that_dies_mid_encode_leaves_its_job_to_the_next(
    catalogue: Catalogue, renditions: Renditions, pool: asyncpg.Pool, pg: PgCluster
) -> None:
    call = await finished_call(catalogue)
    await renditions.request(call.id, "opus", now=NOW)
    crashed = await asyncpg.connect(pg.dsn)
    await crashed.execute("BEGIN")
    job = await Renditions(crashed).claim_next(now=NOW)
    assert job is not None
    async with pool.acquire() as other, other.transaction():
        assert await Renditions(other).claim_next(now=NOW) is None  # held by the worker
    # The node dies: its backend is killed, the transaction never commits.
    pid = crashed.get_server_pid()
    assert await pool.fetchval("SELECT pg_terminate_backend($1, 10000)", pid)  # returns once it has exited
    crashed.terminate()
    async with pool.acquire() as other, other.transaction():
        resumed = await Renditions(other).claim_next(now=NOW)
        assert resumed is not None and resumed.rendition.id == job.rendition.id
        assert resumed.rendition.attempts == 0  # the dead attempt recorded nothing


async def test_completing_records_the_file_and_keeps_the_master(
    catalogue: Catalogue, renditions: Renditions, pool: asyncpg.Pool
) -> None:
    call = await finished_call(catalogue)
    await renditions.request(call.id, "opus", now=NOW)
    async with pool.acquire() as conn, conn.transaction():
        repo = Renditions(conn)
        job = await repo.claim_next(now=NOW)
        assert job is not None
        done = await repo.complete(
            job.rendition.id,
            file_path=f"{ROOT}/{call.id}.opus",
            size_bytes=131_002,
            sha256=OPUS_SHA,
            now=NOW + timedelta(seconds=2),
            master_path=None,
        )
    assert done.master_to_remove is None
    stored = await renditions.get(call.id, "opus")
    assert stored is not None and stored == done.rendition
    assert (stored.status, stored.attempts, stored.size_bytes, stored.sha256) == (
        RenditionStatus.DONE,
        1,
        131_002,
        OPUS_SHA,
    )
    assert stored.finished_at == NOW + timedelta(seconds=2)
    assert await renditions.backlog() == 0
    assert await catalogue.get(call.id) == call  # the recording still points at its master
    assert await renditions.masters_left() == []


async def test_a_rendition_that_replaces_the_master_moves_the_recording_to_it(
    catalogue: Catalogue, renditions: Renditions, pool: asyncpg.Pool
) -> None:
    call = await finished_call(catalogue)
    await renditions.request(call.id, "mp3", now=NOW, replaces_master=True)
    async with pool.acquire() as conn, conn.transaction():
        repo = Renditions(conn)
        job = await repo.claim_next(now=NOW)
        assert job is not None
        done = await repo.complete(
            job.rendition.id,
            file_path=f"{ROOT}/{call.id}.mp3",
            size_bytes=376_080,
            sha256=OPUS_SHA,
            now=NOW,
            master_path=job.source_path,
        )
    assert done.master_to_remove == call.file_path
    moved = await catalogue.get(call.id)
    assert moved is not None
    assert (moved.file_path, moved.format, moved.size_bytes, moved.sha256) == (
        f"{ROOT}/{call.id}.mp3",
        "mp3",
        376_080,
        OPUS_SHA,
    )
    assert moved.duration_seconds == call.duration_seconds and moved.status is RecordingStatus.COMPLETE
    # The master is still to be removed until that is reported (a crash in between is finished at start).
    assert await renditions.masters_left() == [(done.rendition.id, call.file_path)]
    await renditions.master_removed(done.rendition.id, now=NOW)
    assert await renditions.masters_left() == []


async def test_a_master_that_changed_meanwhile_is_neither_replaced_nor_removed(
    catalogue: Catalogue, renditions: Renditions, pool: asyncpg.Pool
) -> None:
    call = await finished_call(catalogue)
    await renditions.request(call.id, "wav", now=NOW, replaces_master=True)
    async with pool.acquire() as conn, conn.transaction():
        repo = Renditions(conn)
        job = await repo.claim_next(now=NOW)
        assert job is not None
        done = await repo.complete(
            job.rendition.id,
            file_path=f"{ROOT}/{call.id}.wav",
            size_bytes=3_008_044,
            sha256=OPUS_SHA,
            now=NOW,
            master_path=f"{ROOT}/some-other-file.flac",
        )
    assert done.master_to_remove is None and done.rendition.status is RenditionStatus.DONE
    assert await catalogue.get(call.id) == call
    assert await renditions.masters_left() == []


async def test_failed_attempts_retry_after_their_back_off_then_give_up(
    catalogue: Catalogue, renditions: Renditions, pool: asyncpg.Pool
) -> None:
    call = await finished_call(catalogue)
    await renditions.request(call.id, "opus", now=NOW)
    retry_at = NOW + timedelta(seconds=30)
    async with pool.acquire() as conn, conn.transaction():
        repo = Renditions(conn)
        job = await repo.claim_next(now=NOW)
        assert job is not None
        failed = await repo.fail(
            job.rendition.id, error="OSError: [Errno 28] No space left", now=NOW, retry_at=retry_at
        )
    assert (failed.status, failed.attempts, failed.not_before) == (RenditionStatus.PENDING, 1, retry_at)
    assert failed.error == "OSError: [Errno 28] No space left" and failed.finished_at is None
    async with pool.acquire() as conn, conn.transaction():
        repo = Renditions(conn)
        assert await repo.claim_next(now=retry_at - timedelta(seconds=1)) is None
        job = await repo.claim_next(now=retry_at)
        assert job is not None and job.rendition.attempts == 1
        final = await repo.fail(job.rendition.id, error="the master is damaged", now=retry_at, retry_at=None)
    assert (final.status, final.attempts, final.finished_at) == (RenditionStatus.FAILED, 2, retry_at)
    assert await renditions.backlog() == 0
    async with pool.acquire() as conn, conn.transaction():
        assert await Renditions(conn).claim_next(now=retry_at + timedelta(days=1)) is None
    # Asked for again (an operator, after fixing the disk): a fresh job.
    again = await renditions.request(call.id, "opus", now=retry_at + timedelta(hours=1))
    assert (again.status, again.attempts, again.error) == (RenditionStatus.PENDING, 0, None)
    assert await renditions.backlog() == 1


async def test_an_unreachable_database_is_a_catalogue_error(pg: PgCluster) -> None:
    pool = await open_pool(pg.dsn, max_size=1)
    await pool.close()
    with pytest.raises(CatalogueError, match="cannot count pending renditions"):
        await Renditions(pool).backlog()
    with pytest.raises(CatalogueError, match="cannot request a rendition"):
        await Renditions(pool).request(UUID(int=1), "wav", now=NOW)
