"""Integrity checks: one flipped byte in a recording or a rendition is found; missing, unreadable and unhashed
files are told apart; a whole-catalogue run streams its results page by page and is audited once."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from uuid import UUID

import asyncpg
import pytest

from storage import Catalogue, FileBlobStore, ParticipantRole, Recording, RecordingStatus
from storage.audio_opener import AudioOpener, plain_audio_opener, plain_file_opener
from storage.audit import Actor, AuditLog
from storage.errors import IntegrityError, KeyUnavailableError
from storage.integrity import CheckStatus, Integrity

from .subject_samples import add_recording, add_wav_rendition, flip_byte, make_tenant, party

STARTED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CALLER = party("+3612345678", "Kovács Éva", ParticipantRole.CALLER)
AGENT = party("+3618889000", "ACME ügyfélszolgálat", ParticipantRole.CALLEE)
OPERATOR = Actor(name="cli:root", origin="cli")


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "recordings")


def integrity(
    pool: asyncpg.Pool, blobs: FileBlobStore, *, page_size: int = 100, open_audio: AudioOpener | None = None
) -> Integrity:
    return Integrity(
        pool,
        open_audio=open_audio or plain_audio_opener(blobs),
        open_file=plain_file_opener(blobs),
        audit=AuditLog(),
        page_size=page_size,
    )


async def _call(
    pool: asyncpg.Pool,
    blobs: FileBlobStore,
    minutes: int = 0,
    *,
    tenant_id: UUID | None = None,
    finished: bool = True,
) -> Recording:
    return await add_recording(
        pool,
        blobs,
        tenant_id=tenant_id,
        started_at=STARTED + timedelta(minutes=minutes),
        caller=CALLER,
        callee=AGENT,
        seed=minutes,
        finished=finished,
    )


async def test_an_intact_recording_and_its_rendition_pass(pool: asyncpg.Pool, blobs: FileBlobStore) -> None:
    call = await _call(pool, blobs)
    await add_wav_rendition(pool, blobs, call)
    result = await integrity(pool, blobs).verify(call)
    assert result.ok and result.skipped is None
    assert [(c.kind, c.status) for c in result.checks] == [
        ("audio", CheckStatus.OK),
        ("rendition:wav", CheckStatus.OK),
    ]
    assert result.checks[0].actual_sha256 == call.sha256 and result.checks[0].size == call.size_bytes


async def test_one_flipped_byte_in_the_audio_is_found(pool: asyncpg.Pool, blobs: FileBlobStore) -> None:
    call = await _call(pool, blobs)
    assert call.file_path is not None
    flip_byte(call.file_path)
    result = await integrity(pool, blobs).verify(call)
    assert not result.ok
    (check,) = result.checks
    assert check.status is CheckStatus.MISMATCH and check.failed
    assert check.expected_sha256 == call.sha256 and check.actual_sha256 != call.sha256


async def test_one_flipped_byte_in_a_rendition_is_found(pool: asyncpg.Pool, blobs: FileBlobStore) -> None:
    call = await _call(pool, blobs)
    rendition = await add_wav_rendition(pool, blobs, call)
    assert rendition.file_path is not None
    flip_byte(rendition.file_path, offset=0)  # the RIFF header
    result = await integrity(pool, blobs).verify(call)
    assert [(c.kind, c.status) for c in result.checks] == [
        ("audio", CheckStatus.OK),
        ("rendition:wav", CheckStatus.MISMATCH),
    ]


async def test_missing_unhashed_and_unfinished_files_are_told_apart(
    pool: asyncpg.Pool, blobs: FileBlobStore
) -> None:
    gone = await _call(pool, blobs, 1)
    assert gone.file_path is not None
    os.unlink(gone.file_path)
    result = await integrity(pool, blobs).verify(gone)
    assert result.checks[0].status is CheckStatus.MISSING and not result.ok

    live = await _call(pool, blobs, 2, finished=False)
    result = await integrity(pool, blobs).verify(live)
    assert result.ok and result.skipped == "in progress" and result.checks == ()

    # interrupted before its hash was taken: nothing to compare with, which is not damage
    cut = await _call(pool, blobs, 3, finished=False)
    cut = await Catalogue(pool).mark_status(cut.id, RecordingStatus.INTERRUPTED)
    result = await integrity(pool, blobs).verify(cut)
    assert result.ok and result.checks[0].status is CheckStatus.UNVERIFIABLE

    outside = Recording(
        id=cut.id,
        reference=cut.reference,
        call_id=cut.call_id,
        status=RecordingStatus.COMPLETE,
        started_at=cut.started_at,
        file_path="/etc/passwd",
        sha256=cut.sha256,
    )
    result = await integrity(pool, blobs).verify(outside)
    assert result.checks[0].status is CheckStatus.UNREADABLE and "outside" in (result.checks[0].error or "")


async def test_damage_and_lost_keys_reported_by_a_decrypting_opener(
    pool: asyncpg.Pool, blobs: FileBlobStore
) -> None:
    call = await _call(pool, blobs)

    def failing(error: Exception) -> AudioOpener:
        @contextlib.contextmanager
        def opener(recording: Recording) -> Iterator[BinaryIO]:
            if recording.file_path:
                raise error
            yield io.BytesIO()  # pragma: no cover

        return opener

    damaged = await integrity(
        pool, blobs, open_audio=failing(IntegrityError("chunk 3 fails its tag"))
    ).verify(call)
    assert (
        damaged.checks[0].status is CheckStatus.MISMATCH
        and damaged.checks[0].error == "chunk 3 fails its tag"
    )
    shredded = await integrity(pool, blobs, open_audio=failing(KeyUnavailableError("key destroyed"))).verify(
        call
    )
    assert shredded.checks[0].status is CheckStatus.UNREADABLE and not shredded.ok


async def test_a_single_check_is_audited(pool: asyncpg.Pool, blobs: FileBlobStore) -> None:
    call = await _call(pool, blobs)
    assert call.file_path is not None
    flip_byte(call.file_path)
    await integrity(pool, blobs).verify(call, actor=OPERATOR)
    entry = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'recording.verify'")
    assert entry["object_id"] == str(call.id) and entry["actor"] == "cli:root"
    assert entry["details"] == {"ok": False, "files": 1, "failed": ["audio"]}
    await integrity(pool, blobs).verify(call)  # without an actor: no entry
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 1


async def test_verify_all_streams_every_recording_across_pages(
    pool: asyncpg.Pool, blobs: FileBlobStore
) -> None:
    acme = await make_tenant(pool, "acme-kft", "ACME Kft.")
    calls = [await _call(pool, blobs, minute, tenant_id=acme if minute % 2 else None) for minute in range(7)]
    assert calls[4].file_path is not None
    flip_byte(calls[4].file_path)

    checker = integrity(pool, blobs, page_size=2)
    results = [result async for result in checker.verify_all(actor=OPERATOR)]
    assert [r.recording_id for r in results] == [c.id for c in calls]  # oldest first, none twice
    assert [r.ok for r in results] == [True, True, True, True, False, True, True]

    mine = [result async for result in checker.verify_all(acme)]
    assert [r.recording_id for r in mine] == [calls[1].id, calls[3].id, calls[5].id]
    entry = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'integrity.verify'")
    assert entry["details"] == {"recordings": 7, "files": 7, "failed": 1, "skipped": 0}
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 1  # the tenant run had no actor
