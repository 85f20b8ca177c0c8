"""Per-recording data keys wrapped by tenant keys from a key file; crypto-shredding in the real catalogue."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import pytest
import soundfile

from storage.errors import CatalogueError, IntegrityError, KeyUnavailableError, NotFoundError
from storage.keys import KeyFileProvider, RecordingKeys
from storage.sealed import SealedReader, SealedWriter, verify_sealed

TENANT = UUID("5b0c2f7e-3d1a-4c55-9a0e-8f1d2c3b4a59")  # a VPBX subscriber
OTHER_TENANT = UUID("0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b")
RECORDING = UUID("0192f4b5-8c3e-7a01-b2d4-6e8f0a1c3e5d")
NOW = datetime(2026, 11, 28, 14, 3, 7, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def stored_keys(path: Path) -> list[bytes]:
    return [base64.b64decode(entry["key"]) for entry in json.loads(path.read_text())["keys"]]


def test_the_key_file_is_made_private_on_first_use_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "keys.json"
    provider = KeyFileProvider(path)
    assert not path.exists()
    data_key = bytes(range(32))
    ref, wrapped = provider.wrap(TENANT, data_key)
    assert ref == f"keyfile:{TENANT}:1" == provider.key_ref(TENANT)
    assert provider.key_ref(None) == "keyfile:system:1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert data_key not in wrapped and len(wrapped) == 12 + 32 + 16
    document = json.loads(path.read_text())
    assert document["format"] == "hangtar-keys"
    assert {(entry["scope"], entry["version"]) for entry in document["keys"]} == {
        (str(TENANT), 1),
        ("system", 1),
    }

    reopened = KeyFileProvider(path)
    assert reopened.unwrap(ref, wrapped) == data_key
    assert reopened.key_ref(TENANT) == ref  # no new key on reopening
    assert len(stored_keys(path)) == 2


def test_a_wrapped_key_unwraps_only_under_the_key_that_wrapped_it(tmp_path: Path) -> None:
    provider = KeyFileProvider(tmp_path / "keys.json")
    data_key = bytes(range(32))
    ref, wrapped = provider.wrap(TENANT, data_key)
    other_ref = provider.key_ref(OTHER_TENANT)
    with pytest.raises(KeyUnavailableError, match="does not unwrap"):
        provider.unwrap(other_ref, wrapped)
    for position in (0, 12, 30, len(wrapped) - 1):
        damaged = bytearray(wrapped)
        damaged[position] ^= 0x80
        with pytest.raises(KeyUnavailableError, match="does not unwrap"):
            provider.unwrap(ref, bytes(damaged))
    with pytest.raises(KeyUnavailableError, match="does not unwrap"):
        provider.unwrap(ref, wrapped[:20])
    with pytest.raises(KeyUnavailableError, match="holds no key"):
        provider.unwrap(f"keyfile:{uuid4()}:1", wrapped)
    with pytest.raises(KeyUnavailableError, match="holds no key"):
        provider.unwrap(f"keyfile:{TENANT}:2", wrapped)
    for foreign in ("kms:arn:aws:kms:eu-central-1:111122223333:key/1234", "keyfile:system", "", "keyfile::1"):
        with pytest.raises(KeyUnavailableError, match="not a key of this node"):
            provider.unwrap(foreign, wrapped)
    other_node = KeyFileProvider(tmp_path / "other-node.json")
    assert other_node.key_ref(TENANT) == ref  # its own key for the tenant, under the same name
    with pytest.raises(KeyUnavailableError, match="does not unwrap"):
        other_node.unwrap(ref, wrapped)
    assert provider.unwrap(ref, wrapped) == data_key


def test_rotation_adds_a_version_and_the_old_ones_still_unwrap(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    server = KeyFileProvider(path)
    old_ref, old_wrapped = server.wrap(TENANT, b"\x01" * 32)

    cli = KeyFileProvider(path)  # another process on the same node rotates the tenant's key
    new_ref = cli.rotate(TENANT)
    assert new_ref == f"keyfile:{TENANT}:2"
    ref, wrapped = server.wrap(TENANT, b"\x02" * 32)  # the running server sees the rotation
    assert ref == new_ref
    assert server.unwrap(old_ref, old_wrapped) == b"\x01" * 32
    assert KeyFileProvider(path).unwrap(new_ref, wrapped) == b"\x02" * 32
    assert cli.key_refs(TENANT) == [old_ref, new_ref]
    assert cli.key_refs(None) == []


def test_instances_sharing_the_file_never_lose_a_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    tenants = [uuid4() for _ in range(8)]
    wrapped: dict[UUID, tuple[str, bytes]] = {}
    start = threading.Barrier(len(tenants))

    def first_call_of(tenant: UUID) -> None:
        provider = KeyFileProvider(path)  # each like a separate process: its own descriptors and cache
        start.wait()
        provider.key_ref(None)
        wrapped[tenant] = provider.wrap(tenant, tenant.bytes * 2)

    threads = [threading.Thread(target=first_call_of, args=(tenant,)) for tenant in tenants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fresh = KeyFileProvider(path)
    for tenant, (ref, blob) in wrapped.items():
        assert fresh.unwrap(ref, blob) == tenant.bytes * 2
    assert len(stored_keys(path)) == len(tenants) + 1  # one system key, made once


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ref, wrapped = KeyFileProvider(path).wrap(None, bytes(32))
    path.chmod(0o644)
    with pytest.raises(KeyUnavailableError, match="chmod 600"):
        KeyFileProvider(path).unwrap(ref, wrapped)
    path.chmod(0o600)
    assert KeyFileProvider(path).unwrap(ref, wrapped) == bytes(32)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b'{"format": "hangtar-keys", "version": 2, "keys": []}',
        b'{"format": "hangtar-keys", "version": 1, "keys": [{"scope": "system", "version": 1, '
        b'"created_at": "2026-11-28T14:03:07Z", "key": "c2hvcnQ="}]}',
        b'{"format": "hangtar-keys", "version": 1, "keys": [{"scope": "acme", "version": 1, '
        b'"created_at": "2026-11-28T14:03:07Z", "key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}',
    ],
    ids=["empty", "not-json", "future-version", "short-key", "bad-scope"],
)
def test_a_damaged_key_file_is_never_overwritten(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyUnavailableError, match="damaged"):
        KeyFileProvider(path).wrap(TENANT, bytes(32))
    assert path.read_bytes() == content


def test_a_key_file_replaced_by_an_older_copy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    provider = KeyFileProvider(path)
    provider.wrap(None, bytes(32))
    shutil.copy2(path, tmp_path / "old-backup.json")
    ref, wrapped = provider.wrap(TENANT, bytes(32))
    (tmp_path / "old-backup.json").replace(path)  # restored from a backup older than the tenant's key
    with pytest.raises(KeyUnavailableError, match="no longer holds"):
        provider.unwrap(ref, wrapped)
    with pytest.raises(KeyUnavailableError, match="no longer holds"):
        provider.wrap(OTHER_TENANT, bytes(32))  # and no new keys on top of a file that lost some


def test_key_material_stays_out_of_repr(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    provider = KeyFileProvider(path)
    provider.wrap(TENANT, bytes(32))
    text = repr(provider)
    assert str(path) in text
    for key in stored_keys(path):
        assert base64.b64encode(key).decode() not in text and key.hex() not in text


async def test_a_recording_key_is_stored_wrapped_and_read_back(pool: asyncpg.Pool, tmp_path: Path) -> None:
    provider = KeyFileProvider(tmp_path / "keys.json")
    keys = RecordingKeys(pool, provider, clock=Clock())
    async with pool.acquire() as conn, conn.transaction():
        data_key = await keys.create(conn, RECORDING, TENANT)
    assert len(data_key) == 32
    row = await pool.fetchrow("SELECT * FROM recording_keys WHERE recording_id = $1", RECORDING)
    assert (row["tenant_id"], row["key_ref"], row["created_at"], row["destroyed_at"]) == (
        TENANT,
        f"keyfile:{TENANT}:1",
        NOW,
        None,
    )
    assert data_key not in row["wrapped"]
    assert await keys.get(RECORDING, tenant_id=TENANT) == data_key
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(CatalogueError, match="already has a data key"):
            await keys.create(conn, RECORDING, TENANT)

    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await keys.create(conn, uuid4(), TENANT)
        await tx.rollback()
    assert await pool.fetchval("SELECT count(*) FROM recording_keys") == 1


async def test_keys_are_tenant_scoped(pool: asyncpg.Pool, tmp_path: Path) -> None:
    keys = RecordingKeys(pool, KeyFileProvider(tmp_path / "keys.json"), clock=Clock())
    unclaimed = uuid4()
    async with pool.acquire() as conn, conn.transaction():
        data_key = await keys.create(conn, RECORDING, TENANT)
        system_key = await keys.create(conn, unclaimed, None)
    for tenant in (OTHER_TENANT, None):
        with pytest.raises(NotFoundError):
            await keys.get(RECORDING, tenant_id=tenant)
    with pytest.raises(NotFoundError):
        await keys.get(unclaimed, tenant_id=TENANT)
    assert await keys.get(unclaimed, tenant_id=None) == system_key
    assert await pool.fetchval("SELECT key_ref FROM recording_keys WHERE recording_id = $1", unclaimed) == (
        "keyfile:system:1"
    )
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(NotFoundError):
            await keys.destroy(conn, RECORDING, tenant_id=OTHER_TENANT)
    assert await keys.get(RECORDING, tenant_id=TENANT) == data_key

    # A wrapped key moved onto another tenant's row does not unwrap there.
    other_ref = KeyFileProvider(tmp_path / "keys.json").key_ref(OTHER_TENANT)
    await pool.execute(
        "UPDATE recording_keys SET tenant_id = $2, key_ref = $3 WHERE recording_id = $1",
        RECORDING,
        OTHER_TENANT,
        other_ref,
    )
    with pytest.raises(KeyUnavailableError, match="does not unwrap"):
        await keys.get(RECORDING, tenant_id=OTHER_TENANT)


async def test_destroying_the_key_shreds_the_recording(pool: asyncpg.Pool, tmp_path: Path) -> None:
    key_file = tmp_path / "keys.json"
    clock = Clock()
    keys = RecordingKeys(pool, KeyFileProvider(key_file), clock=clock)
    async with pool.acquire() as conn, conn.transaction():
        data_key = await keys.create(conn, RECORDING, TENANT)
    audio = (np.sin(np.arange(16000) / 8000 * 2 * np.pi * 440) * 8000).astype(np.int16)
    recording = tmp_path / f"{RECORDING}.flac"
    with SealedWriter(recording, data_key) as writer:
        soundfile.write(writer, np.stack([audio, audio], axis=1), 8000, format="FLAC", subtype="PCM_16")
    assert verify_sealed(recording, await keys.get(RECORDING, tenant_id=TENANT)) > 0

    clock.now = NOW + timedelta(days=60)
    async with pool.acquire() as conn, conn.transaction():
        assert await keys.destroy(conn, RECORDING, tenant_id=TENANT) is True
    row = await pool.fetchrow(
        "SELECT wrapped, destroyed_at FROM recording_keys WHERE recording_id = $1", RECORDING
    )
    assert (row["wrapped"], row["destroyed_at"]) == (None, NOW + timedelta(days=60))
    with pytest.raises(KeyUnavailableError, match="destroyed"):
        await keys.get(RECORDING, tenant_id=TENANT)

    clock.now = NOW + timedelta(days=61)
    async with pool.acquire() as conn, conn.transaction():
        assert await keys.destroy(conn, RECORDING, tenant_id=TENANT) is False  # idempotent
    assert await pool.fetchval(
        "SELECT destroyed_at FROM recording_keys WHERE recording_id = $1", RECORDING
    ) == NOW + timedelta(days=60)

    # Nothing the node still holds opens the file: the key file has only tenant keys, none of them the data key.
    raw = key_file.read_bytes()
    assert (
        data_key not in raw and base64.b64encode(data_key) not in raw and data_key.hex().encode() not in raw
    )
    for tenant_key in stored_keys(key_file):
        with pytest.raises(IntegrityError):
            SealedReader(recording, tenant_key)


async def test_a_recording_without_a_key(pool: asyncpg.Pool, tmp_path: Path) -> None:
    keys = RecordingKeys(pool, KeyFileProvider(tmp_path / "keys.json"), clock=Clock())
    with pytest.raises(KeyUnavailableError, match="has no data key"):
        await keys.get(RECORDING, tenant_id=TENANT)
    async with pool.acquire() as conn, conn.transaction():
        assert await keys.destroy(conn, RECORDING, tenant_id=TENANT) is False
