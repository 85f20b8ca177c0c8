"""Recordings sealed at rest (siprec_server.sealing): real FLAC audio, the real container, the real key file and
a real PostgreSQL catalogue."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import pytest
import soundfile
from prometheus_client import CollectorRegistry

from media.transcode import EncodeSettings, transcode
from siprec_server.metrics import Metrics
from siprec_server.sealing import (
    RecordingCrypto,
    Sealer,
    StoredFile,
    file_access,
    make_audio_opener,
    make_file_opener,
    open_stored,
    recover_plain_file,
    recover_sealed_file,
    seal_plain_file,
)
from siprec_server.transcoder import TranscodePool
from storage import migrate, open_pool
from storage.blobs import FileBlobStore
from storage.catalogue import Catalogue
from storage.errors import CatalogueError, IntegrityError, KeyUnavailableError
from storage.keyfile import KeyFileProvider
from storage.models import NewRecording, Recording, RecordingStatus
from storage.renditions import Rendition, Renditions, RenditionStatus
from storage.sealed import SEALED_FORMAT, is_sealed, sealed_size
from tests.audio import peak_frequency, read_audio
from tests.pg import PgCluster, running_cluster, scratch_dir

RATE = 8000
TONES = (440.0, 1000.0)


def two_party_call(seconds: float, seed: int = 7) -> np.ndarray:
    """A caller at 440 Hz and a callee at 1 kHz over a noisy line, G.711-level quantised: what the media
    writer leaves at hang-up."""
    t = np.arange(round(seconds * RATE)) / RATE
    noise = np.random.default_rng(seed).normal(0, 300, (len(t), 2))
    tones = np.stack([8000 * np.sin(2 * np.pi * f * t) for f in TONES], axis=1)
    return np.round(tones + noise).clip(-32768, 32767).astype(np.int16)


def write_call(blobs: FileBlobStore, recording_id: UUID, seconds: float) -> Path:
    path = blobs.path_for(recording_id, datetime.now(UTC), "flac")
    soundfile.write(str(path), two_party_call(seconds), RATE, format="FLAC", subtype="PCM_16")
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plaintext(blobs: FileBlobStore, path: Path, data_key: bytes | None) -> bytes:
    with open_stored(blobs, path, data_key) as source:
        return source.read()


def flip_byte(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    with scratch_dir() as data_dir, running_cluster(data_dir) as cluster:
        yield cluster


@pytest.fixture
async def pool(pg: PgCluster) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(await pg.create_database("sealing"), max_size=4)
    try:
        await migrate(pool)
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def blobs(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "recordings")


@pytest.fixture
def crypto(pool: asyncpg.Pool, tmp_path: Path) -> RecordingCrypto:
    return RecordingCrypto(pool, KeyFileProvider(tmp_path / "keys" / "keys.json"))


async def recording_row(
    pool: asyncpg.Pool,
    *,
    file_path: Path | None,
    encryption: str | None,
    recording_id: UUID | None = None,
    finished: bool = True,
    stored: StoredFile | None = None,  # the file's hash and size, as the call's finalisation records them
) -> Recording:
    catalogue = Catalogue(pool)
    started = datetime.now(UTC)
    row = await catalogue.create(
        NewRecording(
            id=recording_id or uuid4(),
            call_id=f"{uuid4().hex}@192.0.2.10",
            started_at=started,
            channels=2,
            sample_rate=RATE,
            file_path=None if file_path is None else str(file_path),
            format="flac",
        )
    )
    if not finished:
        return row
    return await catalogue.finish(
        row.id,
        status=RecordingStatus.COMPLETE,
        ended_at=started,
        media_started_at=started,
        duration_seconds=3.0,
        streams=[],
        file_path=None if file_path is None else str(file_path),
        format="flac",
        size_bytes=None if stored is None else stored.size_bytes,
        sha256=None if stored is None else stored.sha256,
        encryption=encryption,
    )


# -- the container around a finished call -------------------------------------------------------------------------
def test_a_sealed_call_keeps_its_audio_hash_and_reads_back_only_with_its_key(blobs: FileBlobStore) -> None:
    plain = write_call(blobs, uuid4(), 20.0)  # several 64 KiB chunks
    original = plain.read_bytes()
    key = os.urandom(32)
    stored = seal_plain_file(plain, key)

    assert stored.path == plain.with_name(plain.name + ".sealed") and stored.plaintext == plain
    assert stored.encryption == SEALED_FORMAT
    assert stored.sha256 == hashlib.sha256(original).hexdigest()  # the audio's hash, not the file's
    assert stored.size_bytes == stored.path.stat().st_size == sealed_size(len(original))
    assert plain.read_bytes() == original  # removing the plaintext is the caller's step, after the catalogue
    assert sorted(p.name for p in plain.parent.iterdir()) == [plain.name, stored.path.name]
    assert is_sealed(stored.path)
    with pytest.raises(soundfile.LibsndfileError):
        soundfile.info(str(stored.path))

    assert plaintext(blobs, stored.path, key) == original
    with open_stored(blobs, stored.path, key) as source:
        audio, rate = soundfile.read(source, dtype="int16", always_2d=True)
    assert rate == RATE and np.array_equal(audio, two_party_call(20.0))
    with pytest.raises(IntegrityError):
        plaintext(blobs, stored.path, os.urandom(32))
    with pytest.raises(ValueError, match="outside the recordings directory"):
        open_stored(blobs, blobs.root / ".." / "elsewhere.flac", None)


def test_a_missing_plaintext_is_not_sealed_and_leaves_nothing(blobs: FileBlobStore) -> None:
    plain = blobs.path_for(uuid4(), datetime.now(UTC), "flac")
    with pytest.raises(FileNotFoundError):
        seal_plain_file(plain, os.urandom(32))
    assert list(plain.parent.iterdir()) == []


def test_renditions_are_encoded_from_and_to_the_container(blobs: FileBlobStore, tmp_path: Path) -> None:
    key = os.urandom(32)
    stored = seal_plain_file(write_call(blobs, uuid4(), 20.0), key)
    files = file_access(key)

    wav = stored.path.with_name(stored.path.name.replace(".flac.", ".wav."))
    result = transcode(stored.path, wav, "wav", files=files)
    assert is_sealed(wav) and result.size_bytes == wav.stat().st_size
    wav_plain = plaintext(blobs, wav, key)
    assert result.sha256 == hashlib.sha256(wav_plain).hexdigest()
    with open_stored(blobs, wav, key) as source:
        samples, _ = soundfile.read(source, dtype="int16", always_2d=True)
    assert np.array_equal(samples, two_party_call(20.0))  # sample for sample

    opus = stored.path.with_name(stored.path.name.replace(".flac.", ".opus."))
    result = transcode(stored.path, opus, "opus", files=files)
    decoded = tmp_path / "decoded.opus"
    decoded.write_bytes(plaintext(blobs, opus, key))
    assert decoded.read_bytes()[:4] == b"OggS" and result.sha256 == digest(decoded)
    audio = read_audio(decoded)
    assert audio.channels == 2 and abs(audio.duration - 20.0) < 0.002
    for channel, tone in enumerate(TONES):
        assert abs(peak_frequency(audio.channel(channel), audio.sample_rate) - tone) < 5


def assert_sealed_rendition(blobs: FileBlobStore, done: Rendition, key: bytes, frames: np.ndarray) -> None:
    """Stored sealed, its size the stored file's, its hash the plaintext's, its audio the master's."""
    wav = Path(str(done.file_path))
    assert is_sealed(wav) and done.size_bytes == wav.stat().st_size
    assert done.sha256 == hashlib.sha256(plaintext(blobs, wav, key)).hexdigest()
    with open_stored(blobs, wav, key) as source:
        samples, _ = soundfile.read(source, dtype="int16", always_2d=True)
    assert np.array_equal(samples, frames)  # sample for sample


async def settled(renditions: Renditions, recording_id: UUID, fmt: str) -> Rendition:
    async with asyncio.timeout(60):  # worker processes start at a low priority
        while True:
            found = await renditions.get(recording_id, fmt)
            if found is not None and found.status is not RenditionStatus.PENDING:
                return found
            await asyncio.sleep(0.05)


async def test_the_rendition_pool_encodes_an_encrypted_master_into_a_sealed_rendition(
    crypto: RecordingCrypto, pool: asyncpg.Pool, blobs: FileBlobStore
) -> None:
    transcoder = TranscodePool(
        db=pool, blobs=blobs, metrics=Metrics(), settings=EncodeSettings(), poll_interval=0.2, crypto=crypto
    )
    await transcoder.start()
    try:
        recordings = []
        for _ in range(2):
            recording_id = uuid4()
            key = await crypto.create_key(recording_id, None)
            plain = write_call(blobs, recording_id, 20.0)
            stored = seal_plain_file(plain, key)
            plain.unlink()  # as at hang-up, once the catalogue names the sealed file
            row = await recording_row(
                pool,
                file_path=stored.path,
                encryption=SEALED_FORMAT,
                recording_id=recording_id,
                stored=stored,
            )
            recordings.append((row.id, key, stored))
        # The second master is changed on disk after the call: it fails its check, once and for good.
        flip_byte(recordings[1][2].path, recordings[1][2].size_bytes // 2)
        for recording_id, _, _ in recordings:
            await transcoder.request(recording_id, "wav")

        (good_id, key, master), (bad_id, _, damaged) = recordings
        done = await settled(Renditions(pool), good_id, "wav")
        assert done.status is RenditionStatus.DONE and done.file_path is not None
        wav = Path(done.file_path)
        assert wav.name == f"{good_id}.wav.sealed"
        await asyncio.to_thread(assert_sealed_rendition, blobs, done, key, two_party_call(20.0))

        failed = await settled(Renditions(pool), bad_id, "wav")
        assert failed.status is RenditionStatus.FAILED and failed.attempts == 1
        assert failed.error is not None and "integrity check" in failed.error
        left = await asyncio.to_thread(lambda: sorted(p.name for p in damaged.path.parent.iterdir()))
        # The masters' plaintexts went at hang-up; the damaged master is kept, and got no rendition.
        assert left == sorted([master.path.name, wav.name, damaged.path.name])
    finally:
        await transcoder.stop()


# -- data keys ----------------------------------------------------------------------------------------------------
async def test_a_data_key_is_committed_before_it_encrypts_and_never_replaced(
    crypto: RecordingCrypto, pool: asyncpg.Pool
) -> None:
    recording = await recording_row(pool, file_path=None, encryption=SEALED_FORMAT)
    key = await crypto.create_key(recording.id, None)
    row = await pool.fetchrow(
        "SELECT key_ref, wrapped FROM recording_keys WHERE recording_id = $1", recording.id
    )
    assert row["key_ref"] == "keyfile:system:1" and key not in bytes(row["wrapped"])
    assert await crypto.data_key(recording) == key
    assert await crypto.key_for_sealing(recording.id, None) == key  # a crash after the commit: same key

    plain = await recording_row(pool, file_path=None, encryption=None)
    assert await crypto.data_key(plain) is None
    future = await recording_row(pool, file_path=None, encryption="aes-256-gcm-chunked-v9")
    with pytest.raises(KeyUnavailableError, match="cannot read"):
        await crypto.data_key(future)

    async with pool.acquire() as conn:
        assert await crypto.keys.destroy(conn, recording.id, tenant_id=None)
    with pytest.raises(KeyUnavailableError, match="destroyed"):
        await crypto.data_key(recording)
    with pytest.raises(CatalogueError, match="already has a data key"):
        await crypto.key_for_sealing(recording.id, None)


# -- sealing at hang-up and in recovery ------------------------------------------------------------------------------
def failures(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("hangtar_sealing_failures_total")


async def test_a_call_is_sealed_and_its_plaintext_removed_once_the_catalogue_names_the_sealed_file(
    crypto: RecordingCrypto, blobs: FileBlobStore, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    sealer = Sealer(crypto, journal=tmp_path / "sealing", registry=registry)
    recording_id = uuid4()
    plain = write_call(blobs, recording_id, 3.0)
    original = plain.read_bytes()

    stored = await sealer.seal(recording_id, None, plain)
    assert stored.encryption == SEALED_FORMAT and stored.plaintext == plain
    assert (tmp_path / "sealing" / str(recording_id)).read_text() == str(plain)  # until the plaintext is gone
    key = await crypto.keys.get(recording_id, tenant_id=None)
    assert plaintext(blobs, stored.path, key) == original

    await sealer.discard_plaintext(recording_id, stored)
    assert not plain.exists() and stored.path.is_file()
    assert list((tmp_path / "sealing").iterdir()) == []
    assert failures(registry) == 0


async def test_when_sealing_fails_the_call_stays_a_plain_file_and_is_counted(
    pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    # A key file others may read: the provider refuses it, so no data key can be made.
    key_file = tmp_path / "keys.json"
    key_file.write_text(json.dumps({"format": "hangtar-keys", "version": 1, "keys": []}))
    key_file.chmod(0o644)
    registry = CollectorRegistry()
    sealer = Sealer(
        RecordingCrypto(pool, KeyFileProvider(key_file)), journal=tmp_path / "sealing", registry=registry
    )
    recording_id = uuid4()
    plain = write_call(blobs, recording_id, 3.0)
    original = plain.read_bytes()

    stored = await sealer.seal(recording_id, None, plain)
    assert stored == StoredFile(
        path=plain,
        size_bytes=len(original),
        sha256=hashlib.sha256(original).hexdigest(),
        encryption=None,
    )
    assert plain.read_bytes() == original and [p.name for p in plain.parent.iterdir()] == [plain.name]
    assert failures(registry) == 1
    await sealer.discard_plaintext(
        recording_id, stored
    )  # nothing to discard: the plain file is the recording
    assert plain.read_bytes() == original


async def test_recovery_seals_with_the_key_made_before_the_crash_and_never_replaces_a_destroyed_one(
    crypto: RecordingCrypto, blobs: FileBlobStore, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    sealer = Sealer(crypto, journal=tmp_path / "sealing", registry=registry)
    recording_id = uuid4()
    plain = write_call(blobs, recording_id, 3.0)
    key = await crypto.create_key(recording_id, None)  # committed; then the process died
    stored = await sealer.seal(recording_id, None, plain, recovering=True)
    assert stored.encryption == SEALED_FORMAT
    assert plaintext(blobs, stored.path, key) == plain.read_bytes()

    async with crypto.pool.acquire() as conn:
        await crypto.keys.destroy(conn, recording_id, tenant_id=None)
    again = await sealer.seal(recording_id, None, plain, recovering=True)
    assert again.encryption is None and again.path == plain
    assert not stored.path.exists()  # the sealed copy of the earlier attempt is not the recording
    assert failures(registry) == 1


async def test_start_up_removes_what_a_crash_left_between_the_commit_and_the_removal(
    crypto: RecordingCrypto, pool: asyncpg.Pool, blobs: FileBlobStore, tmp_path: Path
) -> None:
    journal = tmp_path / "sealing"
    sealer = Sealer(crypto, journal=journal, registry=CollectorRegistry())
    key = os.urandom(32)

    def crash_left(recording_id: UUID, *, sealed: bool = True) -> tuple[Path, Path]:
        plain = write_call(blobs, recording_id, 1.0)
        stored = seal_plain_file(plain, key).path if sealed else plain.with_name(plain.name + ".sealed")
        journal.mkdir(exist_ok=True)
        (journal / str(recording_id)).write_text(str(plain))
        return plain, stored

    ids = [uuid4() for _ in range(5)]
    # The catalogue names the sealed file: the plaintext must go.
    sealed_plain, sealed_file = crash_left(ids[0])
    await recording_row(pool, file_path=sealed_file, encryption=SEALED_FORMAT, recording_id=ids[0])
    # Sealing did not take (the catalogue names the plain file): the sealed copy is spare.
    kept_plain, spare = crash_left(ids[1])
    await recording_row(pool, file_path=kept_plain, encryption=None, recording_id=ids[1])
    # Erased meanwhile: nothing of it may stay.
    erased_plain, erased_sealed = crash_left(ids[2])
    # Still 'recording' (crash recovery could not finish it): left for the next start.
    open_plain_file, open_sealed = crash_left(ids[3])
    await recording_row(pool, file_path=open_plain_file, encryption=None, recording_id=ids[3], finished=False)
    # The catalogue names a sealed file that is missing: the plaintext is all there is, it stays.
    lonely_plain, missing = crash_left(ids[4], sealed=False)
    await recording_row(pool, file_path=missing, encryption=SEALED_FORMAT, recording_id=ids[4])
    (journal / ".0192f4b5.part").write_text("")  # a temporary a crash left mid-write

    assert await sealer.clear_journal(Catalogue(pool)) == 2
    assert not sealed_plain.exists() and sealed_file.is_file()
    assert kept_plain.is_file() and not spare.exists()
    assert not erased_plain.exists() and not erased_sealed.exists()
    assert open_plain_file.is_file() and open_sealed.is_file()
    assert lonely_plain.is_file()
    assert sorted(p.name for p in journal.iterdir()) == sorted([".0192f4b5.part", str(ids[3])])


# -- openers for the services that read stored audio ----------------------------------------------------------------
async def test_openers_decrypt_from_a_worker_thread_and_refuse_to_block_the_loop(
    crypto: RecordingCrypto, pool: asyncpg.Pool, blobs: FileBlobStore
) -> None:
    recording_id = uuid4()
    plain = write_call(blobs, recording_id, 3.0)
    original = plain.read_bytes()
    key = await crypto.create_key(recording_id, None)
    stored = seal_plain_file(plain, key)
    sealed_rendition = stored.path.with_name(f"{recording_id}.wav.sealed")
    transcode(stored.path, sealed_rendition, "wav", files=file_access(key))
    recording = await recording_row(
        pool, file_path=stored.path, encryption=SEALED_FORMAT, recording_id=recording_id
    )
    legacy_id = uuid4()
    legacy_file = write_call(blobs, legacy_id, 2.0)
    legacy = await recording_row(pool, file_path=legacy_file, encryption=None, recording_id=legacy_id)

    open_audio = make_audio_opener(crypto, blobs)
    open_file = make_file_opener(crypto, blobs)

    def read_audio_of(item: Recording) -> bytes:
        with open_audio(item) as source:
            return source.read()

    def read_file(path: Path) -> bytes:
        with open_file(str(path)) as source:
            return source.read()

    assert await asyncio.to_thread(read_audio_of, recording) == original
    assert await asyncio.to_thread(read_audio_of, legacy) == legacy_file.read_bytes()
    wav = await asyncio.to_thread(read_file, sealed_rendition)
    assert wav[:4] == b"RIFF" and wav == plaintext(blobs, sealed_rendition, key)
    assert await asyncio.to_thread(read_file, legacy_file) == legacy_file.read_bytes()

    stray = blobs.root / "stray.flac.sealed"  # sealed, but no recording's file
    stray.write_bytes(stored.path.read_bytes())
    with pytest.raises(KeyUnavailableError, match="belongs to no recording"):
        await asyncio.to_thread(read_file, stray)
    with pytest.raises(RuntimeError, match="worker thread"):
        open_audio(recording)  # on the event loop: it would wait for itself


CRASHING_RECORDER = """
import os, sys
import numpy as np
from media.writer import FlacWriter
from storage.sealed import SealedWriter
from tests.unit.test_sealing import two_party_call
audio = two_party_call(13)
sink = sys.argv[1] if sys.argv[2] == "plain" else SealedWriter(sys.argv[1], bytes(range(32)))
writer = FlacWriter(sink, 2, 8000, count_every=10.0)
for start in range(0, len(audio), 8000):
    writer.write(audio[start : start + 8000])
os._exit(0)  # killed 13 s in: the sample count on disk was last updated at 11 s
"""


@pytest.mark.parametrize("kind", ["sealed", "plain"])
def test_recovery_restores_every_flushed_second_though_the_sample_count_lagged(
    kind: str, tmp_path: Path
) -> None:
    root = Path(__file__).resolve().parents[2]
    path = tmp_path / ("call.flac.sealed" if kind == "sealed" else "call.flac")
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-c", CRASHING_RECORDER, str(path), kind], cwd=root, env=env, check=True)
    audio = two_party_call(13)
    on_disk = (len(audio) - 1) // 1152 * 1152  # every FLAC block finished by the last flush, at 13 s
    key = bytes(range(32))
    if kind == "sealed":
        stored, duration = recover_sealed_file(path, key)
        assert stored is not None and stored.encryption == SEALED_FORMAT
    else:
        duration = recover_plain_file(path)
    assert duration == on_disk / RATE
    with open_stored(FileBlobStore(tmp_path), path, key if kind == "sealed" else None) as source:
        recovered, _ = soundfile.read(source, dtype="int16", always_2d=True)
    assert np.array_equal(recovered, audio[:on_disk])
