"""Rotating a tenant key and re-wrapping data keys, against the real catalogue and a real key file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import pytest
import soundfile

from storage.audit import Actor
from storage.key_rotation import KeyRotation
from storage.keys import KeyFileProvider, RecordingKeys
from storage.sealed import SealedReader, SealedWriter

TENANT = UUID("5b0c2f7e-3d1a-4c55-9a0e-8f1d2c3b4a59")
OTHER_TENANT = UUID("0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b")
DPO = Actor(name="dpo@acme.hu", origin="cli")


async def add_keys(
    pool: asyncpg.Pool, keys: RecordingKeys, tenant_id: UUID | None, n: int
) -> dict[UUID, bytes]:
    made: dict[UUID, bytes] = {}
    async with pool.acquire() as conn:
        for _ in range(n):
            recording_id = uuid4()
            made[recording_id] = await keys.create(conn, recording_id, tenant_id)
    return made


async def key_refs(pool: asyncpg.Pool) -> dict[UUID, str]:
    rows = await pool.fetch("SELECT recording_id, key_ref FROM recording_keys")
    return {row["recording_id"]: row["key_ref"] for row in rows}


def sealed_tone(path: Path, data_key: bytes) -> np.ndarray:
    tone = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000) * 8000).astype(np.int16)
    with SealedWriter(path, data_key) as sink:
        soundfile.write(sink, tone, 8000, format="FLAC", subtype="PCM_16")
    return tone


async def test_rotation_then_rewrap_moves_every_live_data_key_and_nothing_else(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    provider = KeyFileProvider(tmp_path / "keys.json")
    keys = RecordingKeys(pool, provider)
    rotation = KeyRotation(pool, provider)
    old = await add_keys(pool, keys, TENANT, 3)
    foreign = await add_keys(pool, keys, OTHER_TENANT, 2)
    shredded = next(iter(old))
    async with pool.acquire() as conn:
        assert await keys.destroy(conn, shredded, tenant_id=TENANT)
    first = next(iter(old.keys() - {shredded}))
    audio = sealed_tone(tmp_path / "call.flac.sealed", old[first])

    v2 = await rotation.rotate(TENANT, DPO)
    assert v2 == f"keyfile:{TENANT}:2"
    assert [(u.key_ref, u.current, u.data_keys) for u in await rotation.usage(TENANT)] == [
        (f"keyfile:{TENANT}:1", False, 2),
        (v2, True, 0),
    ]
    new = await add_keys(pool, keys, TENANT, 1)
    assert {(await key_refs(pool))[r] for r in new} == {v2}  # new recordings: the new version

    result = await rotation.rewrap(TENANT, DPO, batch=1)
    assert (result.key_ref, result.rewrapped, result.failed) == (v2, 2, ())
    refs = await key_refs(pool)
    assert {refs[r] for r in old.keys() - {shredded}} == {v2}
    assert {refs[r] for r in foreign} == {f"keyfile:{OTHER_TENANT}:1"}  # another tenant's: untouched
    tombstone = await pool.fetchrow(
        "SELECT key_ref, wrapped FROM recording_keys WHERE recording_id = $1", shredded
    )
    assert (tombstone["key_ref"], tombstone["wrapped"]) == (f"keyfile:{TENANT}:1", None)
    assert [(u.key_ref, u.data_keys) for u in await rotation.usage(TENANT)] == [
        (f"keyfile:{TENANT}:1", 0),
        (v2, 3),
    ]
    for recording_id, data_key in {**old, **new}.items():
        if recording_id != shredded:
            assert await keys.get(recording_id, tenant_id=TENANT) == data_key  # the same key, wrapped anew
    # The audio files are not touched: a file sealed before the rotation reads with the re-wrapped key.
    with SealedReader(tmp_path / "call.flac.sealed", await keys.get(first, tenant_id=TENANT)) as plain:
        assert np.array_equal(soundfile.read(plain, dtype="int16")[0], audio)

    assert (await rotation.rewrap(TENANT, DPO)).rewrapped == 0  # nothing left to do

    entries = await pool.fetch("SELECT action, object_id, details FROM audit_log ORDER BY seq")
    assert [(e["action"], e["object_id"]) for e in entries] == [
        ("key.rotate", v2),
        ("key.rewrap", v2),
        ("key.rewrap", v2),
    ]
    assert dict(entries[1]["details"]) == {"rewrapped": 2, "from": [f"keyfile:{TENANT}:1"], "failed": 0}


async def test_a_data_key_that_does_not_unwrap_is_reported_and_left_as_it_was(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    provider = KeyFileProvider(tmp_path / "keys.json")
    keys = RecordingKeys(pool, provider)
    rotation = KeyRotation(pool, provider)
    made = await add_keys(pool, keys, None, 3)
    broken = next(iter(made))
    await pool.execute("UPDATE recording_keys SET wrapped = $2 WHERE recording_id = $1", broken, b"\x00" * 60)
    await rotation.rotate(None, DPO)

    result = await rotation.rewrap(None, DPO, batch=2)
    assert (result.rewrapped, result.failed) == (2, (broken,))
    row = await pool.fetchrow("SELECT key_ref, wrapped FROM recording_keys WHERE recording_id = $1", broken)
    assert (row["key_ref"], bytes(row["wrapped"])) == ("keyfile:system:1", b"\x00" * 60)


async def test_two_rewraps_at_once_share_the_work(pool: asyncpg.Pool, tmp_path: Path) -> None:
    provider = KeyFileProvider(tmp_path / "keys.json")
    keys = RecordingKeys(pool, provider)
    made = await add_keys(pool, keys, TENANT, 40)
    await KeyRotation(pool, provider).rotate(TENANT, DPO)
    # Two nodes (two providers on one key file) re-wrap at the same time.
    results = await asyncio.gather(
        KeyRotation(pool, KeyFileProvider(tmp_path / "keys.json")).rewrap(TENANT, DPO, batch=5),
        KeyRotation(pool, KeyFileProvider(tmp_path / "keys.json")).rewrap(TENANT, DPO, batch=5),
    )
    assert sum(r.rewrapped for r in results) == 40 and all(not r.failed for r in results)
    assert set((await key_refs(pool)).values()) == {f"keyfile:{TENANT}:2"}
    for recording_id, data_key in made.items():
        assert await keys.get(recording_id, tenant_id=TENANT) == data_key


async def test_a_batch_size_below_one_is_refused(pool: asyncpg.Pool, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await KeyRotation(pool, KeyFileProvider(tmp_path / "keys.json")).rewrap(TENANT, DPO, batch=0)
