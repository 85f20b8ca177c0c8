"""Recordings as the call-setup side leaves them, for the access-request, bundle and integrity tests.

A catalogue row from :meth:`storage.Catalogue.create` carrying what the policy decision at call setup stores
(tenant, numbers, basis, purpose, retention class and expiry), finished over a real two-channel FLAC file
under a :class:`FileBlobStore`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import soundfile

from storage import Catalogue, FileBlobStore, ParticipantRecord, ParticipantRole, Recording, RecordingStatus
from storage.phone import number_key
from storage.renditions import Rendition, Renditions

from .samples import new_recording, received_streams


def party(number: str, name: str, role: ParticipantRole) -> ParticipantRecord:
    return ParticipantRecord(
        aor=f"sip:{number}@pbx.example.hu", name=name, role=role, participant_id=uuid4().hex[:22] + "=="
    )


def write_call_flac(path: Path, seconds: float, seed: int) -> None:
    """Two channels at 8 kHz, 16 bit: a voiced, syllable-shaped signal per party, each talking in turn."""
    rate = 8000
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    pitch = 110 + 40 * rng.random()
    voice = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None)
    turn = (np.floor(t) % 2 == 0).astype(float)
    caller = 0.2 * voice * syllables * turn + 0.003 * rng.standard_normal(t.size)
    callee = 0.2 * np.roll(voice, 37) * syllables * (1 - turn) + 0.003 * rng.standard_normal(t.size)
    soundfile.write(path, np.stack([caller, callee], axis=1), rate, format="FLAC", subtype="PCM_16")


async def make_tenant(pool: asyncpg.Pool, slug: str, name: str, region: str = "HU") -> UUID:
    tenant_id = uuid4()
    await pool.execute(
        "INSERT INTO tenants (id, slug, name, region) VALUES ($1, $2, $3, $4)", tenant_id, slug, name, region
    )
    return tenant_id


async def add_recording(
    pool: asyncpg.Pool,
    blobs: FileBlobStore,
    *,
    tenant_id: UUID | None,
    started_at: datetime,
    caller: ParticipantRecord,
    callee: ParticipantRecord,
    basis: str = "legitimate_interest",
    purpose: str = "quality assurance",
    statute: str | None = None,
    retention: str = "quality_60d",
    consent_state: str = "not_required",
    seconds: float = 2.0,
    seed: int = 1,
    finished: bool = True,
) -> Recording:
    """A recording under the system policy's version 1 (or as given), with its FLAC file in place."""
    catalogue = Catalogue(pool)
    recording_id = uuid4()
    path = blobs.path_for(recording_id, started_at, "flac")
    retention_row: Any = await pool.fetchrow(
        "SELECT id, days FROM retention_classes WHERE code = $1 AND tenant_id IS NULL", retention
    )
    policy_id = await pool.fetchval(
        "SELECT id FROM recording_policies WHERE tenant_id IS NULL AND version = 1"
    )
    created = await catalogue.create(
        new_recording(
            id=recording_id,
            started_at=started_at,
            call_id=f"{uuid4().hex}@192.0.2.10",
            session_ids=[uuid4().hex],
            group_ids=[uuid4().hex],
            participants=[caller, callee],
            file_path=str(path),
            tenant_id=tenant_id,
            policy_id=policy_id,
            basis=basis,
            statute=statute,
            purpose=purpose,
            retention_class_id=retention_row["id"],
            expires_at=started_at + timedelta(days=retention_row["days"]),
            consent_state=consent_state,
            numbers=[key for p in (caller, callee) if p.aor and (key := number_key(p.aor)) is not None],
        )
    )
    write_call_flac(path, seconds, seed)
    if not finished:
        return created
    return await catalogue.finish(
        recording_id,
        status=RecordingStatus.COMPLETE,
        ended_at=started_at + timedelta(seconds=seconds + 0.5),
        media_started_at=started_at + timedelta(milliseconds=180),
        duration_seconds=seconds,
        streams=received_streams(started_at),
        file_path=str(path),
        format="flac",
        size_bytes=blobs.size(path),
        sha256=blobs.sha256(path),
    )


def flip_byte(path: str | Path, offset: int | None = None) -> None:
    """Damage a file the way bit rot or tampering does: one bit of one byte (the middle one by default)."""
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x01
    Path(path).write_bytes(bytes(data))


async def add_wav_rendition(pool: asyncpg.Pool, blobs: FileBlobStore, recording: Recording) -> Rendition:
    """A WAV output format made from the master after the call, as the transcoder leaves it."""
    assert recording.file_path is not None
    path = blobs.path_for(recording.id, recording.started_at, "wav")
    audio, rate = soundfile.read(recording.file_path, dtype="int16", always_2d=True)
    soundfile.write(path, audio, rate, format="WAV", subtype="PCM_16")
    renditions = Renditions(pool)
    pending = await renditions.request(recording.id, "wav", now=recording.started_at)
    done = await renditions.complete(
        pending.id,
        file_path=str(path),
        size_bytes=blobs.size(path),
        sha256=blobs.sha256(path),
        now=recording.started_at + timedelta(minutes=1),
        master_path=None,
    )
    return done.rendition


async def add_consent_proof(pool: asyncpg.Pool, recording: Recording, number: str, digit: str) -> None:
    asked = recording.started_at + timedelta(seconds=1)
    await pool.execute(
        """
        INSERT INTO consent_proofs (recording_id, tenant_id, number, prompt_version, asked_at, answered_at, digit,
                                    outcome)
        VALUES ($1, $2, $3, 'v1', $4, $5, $6, 'given')
        """,
        recording.id,
        recording.tenant_id,
        number,
        asked,
        asked + timedelta(seconds=3.2),
        digit,
    )
