"""Recordings encrypted at rest: the server's side of the sealed container (docs/compliance/encryption.md).

A recorded call gets its data key when its media session opens, stored wrapped and committed before any audio
(:meth:`RecordingCrypto.create_key`); the media writer then encodes the FLAC stream straight into
``<id>.flac.sealed`` (:func:`sealed_sink`), so no plaintext audio reaches the disk. At hang-up the file is
read back through the key, every chunk verified, for the SHA-256 of the audio (:func:`stored_sealed_file`): the
catalogue's ``sha256`` is the hash of the audio itself, whatever the key; ``size_bytes`` is the stored file's.
A file a dead process left without its final chunk is finished by crash recovery
(:func:`recover_sealed_file`): the audio up to the writer's last flush.

:class:`Sealer` is left for one case only: crash recovery of a call that an earlier version was recording as a
plain FLAC file. It gives the recording a data key, encrypts the file to ``<file>.sealed`` (temporary name,
fsync, rename, read back against the plaintext's SHA-256); once the catalogue names the sealed file, the
plaintext is removed. If that fails the recording stays a plain file: logged, counted
(``hangtar_sealing_failures_total``), and never lost. A crash between the catalogue's commit and the removal
of the plaintext would leave the plaintext behind for good, so each sealing is noted in a small journal (one
file per recording naming its plaintext) that start-up goes through (:meth:`Sealer.clear_journal`).

Everything that reads a recording's audio decrypts through :class:`RecordingCrypto`: export, the rendition
workers (:func:`file_access`), and the openers of :mod:`storage.audio_opener` for access bundles and integrity
checks (:func:`make_audio_opener`, :func:`make_file_opener`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast
from uuid import UUID

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

from media.transcode import FileAccess
from media.writer import RandomAccessSink, recorded_duration, restore_sample_count
from storage.audio_opener import AudioOpener, FileOpener
from storage.blobs import FileBlobStore
from storage.catalogue import Catalogue
from storage.errors import IntegrityError, KeyUnavailableError
from storage.keyfile import KeyFileProvider
from storage.keys import KeyProvider, RecordingKeys
from storage.models import Recording, RecordingStatus
from storage.sealed import (
    SEALED_FORMAT,
    SealedWriter,
    finish_unfinished,
    is_sealed,
    open_plain,
    open_plain_file,
    patch_sealed,
)

from .config import Config

__all__ = [
    "SEALED_SUFFIX",
    "RecordingCrypto",
    "Sealer",
    "StoredFile",
    "file_access",
    "make_audio_opener",
    "make_file_opener",
    "open_stored",
    "plain_stored_file",
    "recover_plain_file",
    "recover_sealed_file",
    "seal_plain_file",
    "sealed_path",
    "sealed_sink",
    "stored_sealed_file",
]

log = logging.getLogger(__name__)

SEALED_SUFFIX = ".sealed"  # <recording uuid>.flac.sealed, <recording uuid>.opus.sealed
_CHUNK = 1 << 20
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFile:
    """A recording's file as the catalogue is to name it."""

    path: Path
    size_bytes: int  # on disk
    sha256: str | None  # of the plaintext: the audio, independent of the key; None: it did not read back
    encryption: str | None  # storage.sealed.SEALED_FORMAT, or None for a plain file
    plaintext: Path | None = None  # the plain file to remove once the catalogue names ``path``


def sealed_path(plain: Path) -> Path:
    return plain.with_name(plain.name + SEALED_SUFFIX)


def sealed_sink(data_key: bytes) -> Callable[[str], RandomAccessSink]:
    """How a recording's media session creates its file: encrypted with ``data_key`` from the first byte
    (:class:`~storage.sealed.SealedWriter`, the ``open_sink`` of :meth:`media.MediaSession.open`)."""

    def open_sink(path: str) -> RandomAccessSink:
        return SealedWriter(path, data_key)

    return open_sink


# -- blocking file work ------------------------------------------------------------------------------------------
def stored_sealed_file(path: Path, data_key: bytes) -> StoredFile:
    """A recording file written sealed, as the catalogue is to name it: read back through ``data_key`` (every
    chunk verified, :class:`IntegrityError` otherwise) for the SHA-256 of the audio. Blocking."""
    with open_plain(path, data_key) as source:
        sha, _ = _digest(source)
    return StoredFile(path=path, size_bytes=path.stat().st_size, sha256=sha, encryption=SEALED_FORMAT)


def recover_sealed_file(path: Path, data_key: bytes) -> tuple[StoredFile | None, float | None]:
    """Crash recovery of a file a dead process was writing sealed: finish it (a torn trailing chunk dropped,
    the last complete one sealed as final: the audio up to the writer's last flush; its FLAC sample count
    brought up to every frame in it), then the file as the
    catalogue is to name it and the seconds of audio in it (None if the audio does not decode). A file that
    holds nothing (the process died before its first flush) is removed: (None, None). Blocking."""
    if finish_unfinished(path, data_key) == 0:
        _remove(path)
        return None, None
    duration: float | None = None
    try:
        with open_plain(path, data_key) as source:
            restore_sample_count(source, lambda data, offset: patch_sealed(path, data_key, data, offset))
        with open_plain(path, data_key) as source:
            duration = recorded_duration(source)
    except RuntimeError as exc:  # soundfile's (or the recount's) error for audio it cannot read
        log.error("%s: the audio left behind does not decode: %s", path.name, exc)
    return stored_sealed_file(path, data_key), duration


def seal_plain_file(plain: Path, data_key: bytes) -> StoredFile:
    """Encrypt ``plain`` to ``<plain>.sealed``: written under a temporary name, fsynced, read back and compared
    with the plaintext's SHA-256 and size, renamed, the directory fsynced. The plaintext is left in place.
    Blocking."""
    target = sealed_path(plain)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")
    digest = hashlib.sha256()
    try:
        with plain.open("rb") as source, SealedWriter(temporary, data_key) as out:
            while piece := source.read(_CHUNK):
                digest.update(piece)
                out.write(piece)
            size = out.plaintext_size
        _fsync(temporary)
        expected = digest.hexdigest()
        with open_plain(temporary, data_key) as back:
            again, length = _digest(back)
        if (again, length) != (expected, size):
            raise IntegrityError(f"the sealed copy of {plain} does not read back as the plaintext")
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)
    return StoredFile(
        path=target,
        size_bytes=target.stat().st_size,
        sha256=expected,
        encryption=SEALED_FORMAT,
        plaintext=plain,
    )


def recover_plain_file(path: Path) -> float:
    """Crash recovery of a plain recording file (made before encryption): its FLAC sample count brought up to
    every frame in it; the seconds of audio. ``RuntimeError`` for audio that does not decode. Blocking."""
    with path.open("r+b") as file:
        restore_sample_count(file, lambda data, offset: os.pwrite(file.fileno(), data, offset))
    return recorded_duration(path)


def plain_stored_file(path: Path) -> StoredFile:
    """A file kept as it is (sealing failed, or no sealing configured). Blocking."""
    with path.open("rb") as source:
        sha, _ = _digest(source)
    return StoredFile(path=path, size_bytes=path.stat().st_size, sha256=sha, encryption=None)


def open_stored(blobs: FileBlobStore, path: str | Path, data_key: bytes | None) -> BinaryIO:
    """The plaintext of a file under the recordings directory, to use as a context manager: decrypted with
    ``data_key`` (``IntegrityError`` on any damage), or as it lies with ``None`` (recordings made before
    encryption). A file that is not on disk is read from the object store, when there is one.
    ``ValueError`` for a path outside the directory. Blocking."""
    resolved = blobs.resolve(path)
    try:
        return open_plain(resolved, data_key)
    except FileNotFoundError:
        if blobs.remote is None:
            raise
    return open_plain_file(blobs.open_read(resolved), data_key)


def file_access(data_key: bytes | None, blobs: FileBlobStore | None = None) -> FileAccess:
    """How :func:`media.transcode.transcode` reads a sealed master and writes a sealed rendition, with the
    recording's data key (the same container, so one key destruction erases both); ``None`` for a plain
    recording. With ``blobs``, a master no longer on this node's disk is read from the object store."""

    def open_read(path: Path) -> BinaryIO:
        if blobs is not None and not path.is_file():
            return open_stored(blobs, path, data_key)
        return open_plain(path, data_key)

    def open_write(path: Path) -> BinaryIO:
        if data_key is None:
            return path.open("w+b")
        # SealedWriter is a binary file object to libsndfile and FFmpeg (write, seek, tell, close).
        return cast(BinaryIO, SealedWriter(path, data_key))

    return FileAccess(open_read=open_read, open_write=open_write)


def _digest(source: BinaryIO) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    while piece := source.read(_CHUNK):
        digest.update(piece)
        size += len(piece)
    return digest.hexdigest(), size


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- keys --------------------------------------------------------------------------------------------------------
class RecordingCrypto:
    """The recordings' data keys: the node's key provider and the catalogue's ``recording_keys``."""

    def __init__(self, pool: Any, provider: KeyProvider) -> None:
        self._pool = pool
        self._provider = provider
        self._keys = RecordingKeys(pool, provider)

    @classmethod
    def from_config(cls, config: Config, pool: Any) -> RecordingCrypto:
        """The key file of ``[storage] key_file`` (made on first use), over ``pool``."""
        return cls(pool, KeyFileProvider(config.key_file_path))

    @property
    def pool(self) -> Any:
        return self._pool

    @property
    def keys(self) -> RecordingKeys:
        return self._keys

    async def create_key(self, recording_id: UUID, tenant_id: UUID | None) -> bytes:
        """A new data key for the recording, stored wrapped and committed before it encrypts anything."""
        # One INSERT, committed on its own: no transaction around it, and no connection held while the key is
        # wrapped on a worker thread.
        key: bytes = await self._keys.create(self._pool, recording_id, tenant_id)
        return key

    async def key_for_sealing(self, recording_id: UUID, tenant_id: UUID | None) -> bytes:
        """The key a previous attempt made (a crash after it was committed), else a new one. A destroyed key is
        never replaced: creating one fails on its tombstone."""
        try:
            return await self._keys.get(recording_id, tenant_id=tenant_id)
        except KeyUnavailableError:
            return await self.create_key(recording_id, tenant_id)

    async def data_key(self, recording: Recording) -> bytes | None:
        """The key that decrypts the recording's files; None for a plain recording.
        :class:`KeyUnavailableError` when it was destroyed or cannot be unwrapped."""
        if recording.encryption is None:
            return None
        if recording.encryption != SEALED_FORMAT:
            raise KeyUnavailableError(
                f"recording {recording.reference} is stored as {recording.encryption!r}, "
                "which this version cannot read"
            )
        return await self._keys.get(recording.id, tenant_id=recording.tenant_id)


# -- openers for services that read stored audio from a worker thread ----------------------------------------------
def make_audio_opener(
    crypto: RecordingCrypto, blobs: FileBlobStore, *, loop: asyncio.AbstractEventLoop | None = None
) -> AudioOpener:
    """An :data:`~storage.audio_opener.AudioOpener` that decrypts. Create it on the event loop (or pass
    ``loop``); call it from a worker thread: it waits for the key on the loop."""
    home = loop or asyncio.get_running_loop()

    def open_audio(recording: Recording) -> BinaryIO:
        if not recording.file_path:
            raise FileNotFoundError(f"recording {recording.reference} has no audio file")
        return open_stored(blobs, recording.file_path, _wait_on(home, crypto.data_key(recording)))

    return open_audio


def make_file_opener(
    crypto: RecordingCrypto, blobs: FileBlobStore, *, loop: asyncio.AbstractEventLoop | None = None
) -> FileOpener:
    """A :data:`~storage.audio_opener.FileOpener` that decrypts a catalogued file (a rendition) with the key of
    the recording it belongs to, named by the file (``<recording uuid>.<ext>[.sealed]``, the blob store's
    layout). Same threading rules as :func:`make_audio_opener`."""
    home = loop or asyncio.get_running_loop()

    def open_file(path: str) -> BinaryIO:
        resolved = blobs.resolve(path)
        owner = _owner(resolved)
        recording = None if owner is None else _wait_on(home, Catalogue(crypto.pool).get(owner))
        if recording is not None:
            return open_stored(blobs, resolved, _wait_on(home, crypto.data_key(recording)))
        if resolved.is_file() and is_sealed(resolved):
            raise KeyUnavailableError(f"{path} is encrypted and belongs to no recording in the catalogue")
        return open_stored(blobs, resolved, None)

    return open_file


def _owner(path: Path) -> UUID | None:
    try:
        return UUID(path.name.split(".", 1)[0])
    except ValueError:
        return None


def _wait_on(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, _T]) -> _T:
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        work.close()
        raise RuntimeError("a decrypting opener blocks: call it from a worker thread, not the event loop")
    return asyncio.run_coroutine_threadsafe(work, loop).result()


# -- sealing plain files an earlier version left (crash recovery) ----------------------------------------------------
class Sealer:
    """Seals recordings' plain files (those an earlier version was writing when it died); one per server, used
    by crash recovery.

    ``journal``: a directory of one small file per recording being sealed, naming its plaintext; it is
    created on first use."""

    def __init__(
        self, crypto: RecordingCrypto, *, journal: Path, registry: CollectorRegistry | None = None
    ) -> None:
        self._crypto = crypto
        self._journal = journal
        self._failures = PromCounter(
            "hangtar_sealing_failures",
            "Recordings that could not be encrypted at rest and were kept as plain files",
            registry=registry if registry is not None else CollectorRegistry(),
        )

    @property
    def crypto(self) -> RecordingCrypto:
        return self._crypto

    async def seal(
        self, recording_id: UUID, tenant_id: UUID | None, plain: Path, *, recovering: bool = False
    ) -> StoredFile:
        """The file the catalogue is to name: ``plain`` sealed with a new data key (``recovering``: the key a
        previous attempt made, if any), or ``plain`` itself when that fails. Raises only if ``plain`` cannot be
        read at all."""
        try:
            if recovering:
                data_key = await self._crypto.key_for_sealing(recording_id, tenant_id)
            else:
                data_key = await self._crypto.create_key(recording_id, tenant_id)
            await asyncio.to_thread(self._note, recording_id, plain)
            return await asyncio.to_thread(seal_plain_file, plain, data_key)
        except Exception:
            log.exception("recording %s: could not be encrypted; it is kept as a plain file", recording_id)
            self._failures.inc()
        await asyncio.to_thread(self._give_up, recording_id, plain)
        return await asyncio.to_thread(plain_stored_file, plain)

    async def discard_plaintext(self, recording_id: UUID, stored: StoredFile) -> None:
        """Once the catalogue names the sealed file: remove the plaintext (then its journal entry)."""
        if stored.plaintext is None:
            return
        try:
            await asyncio.to_thread(_remove, stored.plaintext)
        except OSError as exc:
            log.error(
                "recording %s: the plaintext %s stays until the next start: %s",
                recording_id,
                stored.plaintext,
                exc,
            )
            return
        await asyncio.to_thread(self._forget, recording_id)

    async def clear_journal(self, catalogue: Catalogue) -> int:
        """Start-up, after crash recovery: finish what a dead process left between the catalogue's commit and
        the removal of a plaintext. Returns the plaintext files removed."""
        removed = 0
        entries = await asyncio.to_thread(self._entries)
        for recording_id, plain in entries:
            recording = await catalogue.get(recording_id)
            if recording is not None and recording.status is RecordingStatus.RECORDING:
                continue  # crash recovery could not finish it; it tries again at the next start
            removed += await asyncio.to_thread(_settle, recording, plain)
            await asyncio.to_thread(self._forget, recording_id)
        return removed

    # -- the journal (blocking) --
    def _entry(self, recording_id: UUID) -> Path:
        return self._journal / str(recording_id)

    def _note(self, recording_id: UUID, plain: Path) -> None:
        self._journal.mkdir(mode=0o700, parents=True, exist_ok=True)
        entry = self._entry(recording_id)
        temporary = entry.with_name(f".{entry.name}.part")
        temporary.write_text(str(plain.absolute()))
        _fsync(temporary)
        temporary.replace(entry)
        _fsync_directory(self._journal)

    def _forget(self, recording_id: UUID) -> None:
        self._entry(recording_id).unlink(missing_ok=True)

    def _give_up(self, recording_id: UUID, plain: Path) -> None:
        """Sealing failed: the plain file is the recording; a sealed copy an earlier attempt left is not."""
        sealed_path(plain).unlink(missing_ok=True)
        self._forget(recording_id)

    def _entries(self) -> list[tuple[UUID, Path]]:
        if not self._journal.is_dir():
            return []
        found = []
        for entry in sorted(self._journal.iterdir()):
            try:
                found.append((UUID(entry.name), Path(entry.read_text())))
            except (ValueError, OSError):  # a temporary left by a crash, or something that is not ours
                log.warning("ignoring %s in the sealing journal", entry)
        return found


def _settle(recording: Recording | None, plain: Path) -> int:
    """Remove what the catalogue no longer needs of a recording whose sealing was interrupted; 1 if a
    plaintext was removed."""
    sealed = sealed_path(plain)
    if recording is None:  # deleted meanwhile (erased, expired): none of its files may stay
        sealed.unlink(missing_ok=True)
        return _remove(plain)
    if recording.file_path == str(plain):  # the catalogue kept the plain file: the sealed copy is spare
        sealed.unlink(missing_ok=True)
        return 0
    if recording.encryption is None:
        return 0
    if recording.file_path == str(sealed) and not sealed.is_file():
        log.error(
            "recording %s: the catalogue names %s, which is missing; keeping its plaintext %s",
            recording.reference,
            sealed,
            plain,
        )
        return 0
    removed = _remove(plain)
    if removed:
        log.warning("recording %s: removed the plaintext a crash left after sealing", recording.reference)
    return removed


def _remove(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    _fsync_directory(path.parent)
    return 1
