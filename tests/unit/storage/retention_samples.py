"""Recordings for the retention, hold and erasure tests: a real two-channel FLAC file in the blob store, a
finished catalogue row from a field-shaped SIPREC call, then the lifecycle columns the call-setup code will
fill (tenant, basis, class, expiry, numbers, consent state), a wrapped data key and optionally a rendition."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import soundfile

from storage import Catalogue, FileBlobStore, Recording, RecordingStatus
from tests.unit.storage.samples import new_recording, received_streams

T0 = datetime(2026, 11, 28, 14, 3, 7, 250_000, tzinfo=UTC)
CALLER = "+3612345678"  # Budapest landline, as the metadata normaliser stores it
CALLEE = "+36301234567"  # a mobile
OTHER = "+36205550123"


class Clock:
    """An injected clock the test moves by assignment or :meth:`advance`."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def write_tone_flac(path: Path, *, seconds: float = 1.0, rate: int = 8000) -> None:
    """Two channels, 440 Hz caller and 1 kHz callee, as the recorder writes a call."""
    t = np.arange(int(seconds * rate)) / rate
    frames = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1000 * t)], axis=1)
    soundfile.write(str(path), frames, rate, format="FLAC", subtype="PCM_16")


async def make_tenant(pool: asyncpg.Pool, slug: str, *, region: str = "HU") -> UUID:
    tenant_id = uuid4()
    await pool.execute(
        "INSERT INTO tenants (id, slug, name, region) VALUES ($1, $2, $3, $4)",
        tenant_id,
        slug,
        f"{slug.title()} Kft.",
        region,
    )
    return tenant_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    recording: Recording
    path: Path | None

    @property
    def id(self) -> UUID:
        return self.recording.id

    @property
    def reference(self) -> str:
        return self.recording.reference


async def add_recording(
    pool: asyncpg.Pool,
    blobs: FileBlobStore,
    *,
    tenant_id: UUID | None,
    started_at: datetime = T0,
    class_code: str = "quality_60d",
    numbers: tuple[str, ...] = (CALLER, CALLEE),
    basis: str = "legitimate_interest",
    consent_state: str = "not_required",
    status: RecordingStatus = RecordingStatus.COMPLETE,
    expires_at: datetime | None = None,
    with_file: bool = True,
    with_key: bool = True,
) -> Stored:
    """A recorded call as the server leaves it, lifecycle columns filled; expiry from the class by default."""
    catalogue = Catalogue(pool)
    new = new_recording(
        started_at=started_at,
        call_id=f"{uuid4().hex}@pbx.example.hu",
        session_ids=[secrets.token_urlsafe(16)],
        group_ids=[],
    )
    created = await catalogue.create(new)
    path = None
    recording = created
    if status is not RecordingStatus.RECORDING:
        if with_file:
            path = blobs.path_for(created.id, started_at, "flac")
            write_tone_flac(path)
        recording = await catalogue.finish(
            created.id,
            status=status,
            ended_at=started_at + timedelta(seconds=94.5),
            media_started_at=started_at + timedelta(milliseconds=180),
            duration_seconds=94.3,
            streams=received_streams(started_at),
            file_path=None if path is None else str(path),
            format="flac",
            size_bytes=None if path is None else path.stat().st_size,
            sha256=None if path is None else hashlib.sha256(path.read_bytes()).hexdigest(),
        )
    days = await pool.fetchval(
        "SELECT days FROM retention_classes WHERE code = $1 AND (tenant_id IS NULL OR tenant_id = $2)",
        class_code,
        tenant_id,
    )
    await pool.execute(
        """
        UPDATE recordings SET tenant_id = $2, basis = $3, purpose = 'customer service', numbers = $4,
            consent_state = $5, expires_at = $6,
            statute = CASE WHEN $3 = 'legal_obligation' THEN 'Fgytv. 17/B §' END,
            retention_class_id = (SELECT id FROM retention_classes
                                  WHERE code = $7 AND (tenant_id IS NULL OR tenant_id = $2))
        WHERE id = $1
        """,
        created.id,
        tenant_id,
        basis,
        list(numbers),
        consent_state,
        expires_at or started_at + timedelta(days=days),
        class_code,
    )
    if with_key:
        await pool.execute(
            "INSERT INTO recording_keys (recording_id, tenant_id, key_ref, wrapped) VALUES ($1, $2, $3, $4)",
            created.id,
            tenant_id,
            "keyfile:tenant-1",
            secrets.token_bytes(40),
        )
    return Stored(recording=recording, path=path)


async def add_rendition(pool: asyncpg.Pool, stored: Stored, *, replaces_master: bool = False) -> Path:
    """A finished WAV rendition next to the FLAC master (the master recorded as replaced when asked)."""
    assert stored.path is not None
    data, rate = soundfile.read(str(stored.path))
    wav = stored.path.with_suffix(".wav")
    soundfile.write(str(wav), data, rate, format="WAV", subtype="PCM_16")
    await pool.execute(
        """
        INSERT INTO renditions (recording_id, format, status, file_path, size_bytes, sha256, attempts,
                                replaces_master, master_path, finished_at)
        VALUES ($1, 'wav', 'done', $2, $3, $4, 1, $5, $6, now())
        """,
        stored.id,
        str(wav),
        wav.stat().st_size,
        hashlib.sha256(wav.read_bytes()).hexdigest(),
        replaces_master,
        str(stored.path) if replaces_master else None,
    )
    return wav


async def row(pool: asyncpg.Pool, recording_id: UUID) -> dict[str, Any] | None:
    found = await pool.fetchrow("SELECT * FROM recordings WHERE id = $1", recording_id)
    return None if found is None else dict(found)


async def key_state(pool: asyncpg.Pool, recording_id: UUID) -> tuple[bool, datetime | None]:
    """(wrapped key still present, destroyed_at)."""
    found = await pool.fetchrow(
        "SELECT wrapped IS NOT NULL AS present, destroyed_at FROM recording_keys WHERE recording_id = $1",
        recording_id,
    )
    assert found is not None
    return found["present"], found["destroyed_at"]


async def outbox(pool: asyncpg.Pool) -> list[tuple[UUID, str]]:
    rows = await pool.fetch("SELECT recording_id, event FROM lifecycle_outbox ORDER BY id")
    return [(r["recording_id"], r["event"]) for r in rows]


async def audit_actions(pool: asyncpg.Pool) -> list[str]:
    return [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY seq")]
