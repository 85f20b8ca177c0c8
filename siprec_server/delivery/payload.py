"""What a delivery sends: a recording's metadata document and its decrypted audio in the target's format.

Recordings are encrypted at rest; a recipient gets the audio itself, never the sealed file. The audio is
opened through the recording's data key (:class:`siprec_server.sealing.RecordingCrypto`), fetched here on the
event loop, so the opener a transport calls from a worker thread only reads files. Which audio:

- the target names no format, or the recording's own: the recording's file (``recording.file_path``);
- another format with a finished rendition: that rendition (sealed with the same key);
- otherwise encoded now from the recording's file into the spool directory (sealed with the same key: no
  plaintext reaches the disk), and removed when the delivery attempt ends.

The SHA-256 handed on is the catalogue's (of the plaintext audio); the transport checks what it read against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any, BinaryIO

from media.transcode import EncodeSettings, OutputFormat, TranscodeError, transcode
from storage.blobs import FileBlobStore
from storage.catalogue import Catalogue
from storage.delivery_items import DeliveryItem
from storage.delivery_targets import DeliveryTarget
from storage.errors import CatalogueError, IntegrityError, KeyUnavailableError, NotFoundError
from storage.lifecycle_rows import ACTIVE_HOLD_ON
from storage.models import Recording, format_timestamp
from storage.renditions import Renditions, RenditionStatus

from ..sealing import RecordingCrypto, file_access, open_stored
from .transport import DeliveryFailure, NameFields, Notice, Payload

__all__ = ["PayloadError", "PayloadSource", "name_fields", "recording_metadata"]

_HELD = f"SELECT {ACTIVE_HOLD_ON} FROM recordings r WHERE r.id = $1"  # noqa: S608 (constant fragment)


class PayloadError(DeliveryFailure):
    """The recording cannot be sent as it is (gone, unreadable, not encodable in the format)."""


class PayloadSource:
    """Builds payloads and notices from the catalogue; ``spool`` holds audio encoded for a target's format."""

    def __init__(
        self,
        pool: Any,
        blobs: FileBlobStore,
        crypto: RecordingCrypto,
        *,
        spool: Path,
        settings: EncodeSettings | None = None,
    ) -> None:
        self._pool = pool
        self._blobs = blobs
        self._crypto = crypto
        self._spool = spool
        self._settings = settings or EncodeSettings()

    async def clear_spool(self) -> int:
        """At start-up: remove audio a dead process left encoded in the spool (sealed, but no longer needed).
        Only for a spool no other worker uses at the moment. Returns the files removed."""
        return await asyncio.to_thread(_clear, self._spool)

    @contextlib.asynccontextmanager
    async def payload(self, item: DeliveryItem, target: DeliveryTarget) -> AsyncIterator[Payload]:
        """The recording of ``item`` as ``target`` wants it; :class:`PayloadError` when it cannot be had."""
        recording = await self._recording(item)
        try:
            data_key = await self._crypto.data_key(recording)
            held = bool(await self._pool.fetchval(_HELD, recording.id))
        except (KeyUnavailableError, NotFoundError) as exc:
            raise PayloadError(f"{recording.reference} cannot be decrypted: {exc}", retryable=False) from exc
        except CatalogueError as exc:
            raise PayloadError(f"the catalogue failed: {exc}", retryable=True) from exc
        assert recording.file_path is not None  # only recordings with audio are enqueued
        wanted = str(target.settings.get("format") or recording.format or "flac")
        spooled: Path | None = None
        try:
            if wanted == recording.format:
                path, sha256 = recording.file_path, recording.sha256
            else:
                rendition = await Renditions(self._pool).get(recording.id, wanted)
                if rendition is not None and rendition.status is RenditionStatus.DONE and rendition.file_path:
                    path, sha256 = rendition.file_path, rendition.sha256
                elif wanted == OutputFormat.FLAC.value:
                    raise PayloadError(
                        f"{recording.reference} keeps no FLAC master (its file is {recording.format}); "
                        "set the target's format to that, or to none",
                        retryable=False,
                    )
                else:
                    spooled = await asyncio.to_thread(self._encode, recording, wanted, data_key)
                    path, sha256 = str(spooled), None
            opener = _opener(self._blobs, path, data_key, spooled)
            size, actual = await asyncio.to_thread(_measure, opener, sha256 is None)
            payload = Payload(
                recording_id=recording.id,
                reference=recording.reference,
                names=name_fields(recording),
                metadata=recording_metadata(
                    recording, audio_format=wanted, size=size, sha256=sha256 or actual, restricted=held
                ),
                format=wanted,
                size=size,
                sha256=sha256 or actual or "",
                open=opener,
            )
            yield payload
        finally:
            if spooled is not None:
                spooled.unlink(missing_ok=True)

    async def notice(self, item: DeliveryItem, copy: DeliveryItem | None) -> Notice:
        """The notice ``item`` stands for; ``copy`` is the recording's own delivery to the same target."""
        assert item.event_at is not None and item.reason is not None
        return Notice(
            kind=item.kind,
            recording_id=item.recording_id,
            reference=item.reference,
            at=item.event_at,
            reason=item.reason,
            copy_path=None if copy is None else copy.remote_path,
        )

    async def _recording(self, item: DeliveryItem) -> Recording:
        try:
            recording = await Catalogue(self._pool).get(item.recording_id)
        except CatalogueError as exc:
            raise PayloadError(f"the catalogue failed: {exc}", retryable=True) from exc
        if recording is None:
            raise PayloadError(
                f"{item.reference} was erased before it could be delivered; nothing was sent", retryable=False
            )
        if not recording.file_path:
            raise PayloadError(f"{recording.reference} has no audio to deliver", retryable=False)
        return recording

    def _encode(self, recording: Recording, fmt: str, data_key: bytes | None) -> Path:
        """Blocking: ``fmt`` encoded from the recording's file into the spool, sealed with its key."""
        assert recording.file_path is not None
        self._spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self._spool / f"{recording.id}.{uuid.uuid4().hex[:12]}.{fmt}"
        try:
            source = self._blobs.resolve(recording.file_path)
            remote = self._blobs.remote is not None
            files = None if data_key is None and not remote else file_access(data_key, self._blobs)
            transcode(source, target, OutputFormat(fmt), self._settings, files=files)
        except (TranscodeError, ValueError) as exc:
            raise PayloadError(
                f"{recording.reference} cannot be encoded as {fmt}: {exc}", retryable=False
            ) from exc
        except OSError as exc:
            raise PayloadError(
                f"encoding {recording.reference} as {fmt} failed: {exc}", retryable=True
            ) from exc
        return target


def _clear(spool: Path) -> int:
    if not spool.is_dir():
        return 0
    removed = 0
    for leftover in spool.iterdir():
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def _opener(
    blobs: FileBlobStore, path: str, data_key: bytes | None, spooled: Path | None
) -> Callable[[], contextlib.AbstractContextManager[BinaryIO]]:
    def open_audio() -> contextlib.AbstractContextManager[BinaryIO]:
        try:
            if spooled is not None:
                return open_stored(FileBlobStore(spooled.parent), spooled, data_key)
            return open_stored(blobs, path, data_key)
        except FileNotFoundError as exc:
            raise PayloadError(f"the audio file {path} is missing", retryable=False) from exc
        except (IntegrityError, ValueError) as exc:
            raise PayloadError(
                f"the audio file {path} fails its integrity check: {exc}", retryable=False
            ) from exc

    return open_audio


def _measure(
    opener: Callable[[], contextlib.AbstractContextManager[BinaryIO]], hash_it: bool
) -> tuple[int, str | None]:
    """Blocking: the audio's size, and its SHA-256 when the catalogue has none to compare with."""
    with opener() as source:
        if not hash_it:
            return source.seek(0, 2), None
        digest, size = hashlib.sha256(), 0
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        return size, digest.hexdigest()


def name_fields(recording: Recording) -> NameFields:
    started = recording.started_at
    direction = _fact(recording.call_facts, "direction")
    return NameFields(
        date=started.astimezone(UTC).strftime("%Y-%m-%d"),
        time=started.astimezone(UTC).strftime("%H%M%S"),
        reference=recording.reference,
        caller=_party(recording, "calling_number", "caller") or "unknown",
        callee=_party(recording, "called_number", "callee") or "unknown",
        direction=direction if direction in ("inbound", "outbound") else "unknown",
    )


def recording_metadata(
    recording: Recording, *, audio_format: str, size: int, sha256: str | None, restricted: bool
) -> dict[str, Any]:
    """The document a recipient gets beside the audio (``format`` "hangtar-recording", version 1)."""
    fields = name_fields(recording)
    return {
        "format": "hangtar-recording",
        "version": 1,
        "recording_id": str(recording.id),
        "reference": recording.reference,
        "call_id": recording.call_id,
        "conversation_id": None if recording.conversation_id is None else str(recording.conversation_id),
        "status": recording.status.value,
        "started_at": format_timestamp(recording.started_at),
        "ended_at": format_timestamp(recording.ended_at),
        "duration_seconds": recording.duration_seconds,
        "direction": None if fields.direction == "unknown" else fields.direction,
        "caller": _person(recording, "caller", fields.caller),
        "callee": _person(recording, "callee", fields.callee),
        "participants": [p.to_json() for p in recording.participants],
        "numbers": list(recording.numbers),
        "basis": recording.basis,
        "statute": recording.statute,
        "purpose": recording.purpose,
        "retention_class": recording.retention_class,
        "expires_at": format_timestamp(recording.expires_at),
        "restricted": restricted,  # under a legal hold (GDPR Art. 18) when sent
        "pauses": [pause.to_json() for pause in recording.pauses],
        "audio": {
            "format": audio_format,
            "channels": recording.channels,
            "sample_rate": recording.sample_rate,
            "bytes": size,
            "sha256": sha256,
        },
    }


def _fact(facts: Mapping[str, Any], name: str) -> str | None:
    fact = facts.get(name)
    value = fact.get("value") if isinstance(fact, Mapping) else None
    return value if isinstance(value, str) and value else None


def _party(recording: Recording, fact: str, role: str) -> str | None:
    number = _fact(recording.call_facts, fact)
    if number is not None:
        return number
    for participant in recording.participants:
        if participant.role.value == role and participant.aor:
            user = participant.aor.split(":", 1)[-1].split("@", 1)[0].split(";", 1)[0]
            return user or None
    return None


def _person(recording: Recording, role: str, number: str) -> dict[str, Any]:
    for participant in recording.participants:
        if participant.role.value == role:
            return {
                "number": number if number != "unknown" else None,
                "name": participant.name,
                "aor": participant.aor,
            }
    return {"number": number if number != "unknown" else None, "name": None, "aor": None}
