"""The copy handed to a person who asked for their recordings (GDPR Art. 15(3)): one zip file.

Layout::

    summary.txt, summary.html          the Art. 15(1)/(2) information, Hungarian and English
    manifest.json                      size and SHA-256 of every other file in the zip
    recordings/<start>_<reference>/
        audio.flac                     the master as stored: every party's channel (plaintext)
        rendition.<wav|opus|mp3>       output formats made after the call, if any
        metadata.json                  participants, times, streams' quality, legal basis, purpose,
                                       retention and expiry, consent proofs, the raw SIPREC metadata

Audio is streamed from the injected openers in 1 MiB chunks (nothing holds a whole recording in memory),
hashed as it is copied, and checked against the catalogue's SHA-256: a file that differs from what the
catalogue vouches for stops the export (:class:`IntegrityError`). The zip is written under a temporary
name, synced, then renamed, so a bundle at its final name is always complete. It is readable by its owner
only (0600). Blocking: run :func:`write_bundle` in a thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID

from .audio_opener import AudioOpener, FileOpener
from .bundle_summary import (
    AudioState,
    SummaryFacts,
    SummaryRecording,
    party_label,
    summary_html,
    summary_text,
)
from .consent import ConsentProof
from .errors import IntegrityError
from .models import RecordingStatus, format_timestamp
from .renditions import Rendition, RenditionStatus
from .retention_class import RetentionClass
from .subject_data import SubjectRecording

__all__ = ["BUNDLE_FORMAT", "BundleItem", "BundleRequest", "BundleResult", "ManifestEntry", "write_bundle"]

BUNDLE_FORMAT = "hangtar-access-bundle/1"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleItem:
    """One recording to put in the bundle, with what hangs off it."""

    subject: SubjectRecording
    renditions: tuple[Rendition, ...] = ()
    consent_proofs: tuple[ConsentProof, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleRequest:
    """The request the bundle answers."""

    request_id: UUID
    controller: str  # the tenant's name
    received_at: datetime
    number: str | None = None
    reference: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestEntry:
    path: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleResult:
    path: Path
    size: int
    sha256: str  # of the zip file itself
    files: tuple[ManifestEntry, ...]
    recording_ids: tuple[UUID, ...]


def write_bundle(
    target: Path,
    *,
    request: BundleRequest,
    items: Sequence[BundleItem],
    generated_at: datetime,
    open_audio: AudioOpener,
    open_file: FileOpener,
) -> BundleResult:
    """Write the bundle to ``target`` (replacing an older one); nothing is left at ``target`` on failure."""
    partial = target.with_name(target.name + ".part")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as raw:
            writer = _Writer(raw, generated_at)
            with writer.zip:
                summaries = [_add_recording(writer, item, open_audio, open_file) for item in items]
                facts = SummaryFacts(
                    controller=request.controller,
                    request_id=request.request_id,
                    received_at=request.received_at,
                    number=request.number,
                    reference=request.reference,
                    since=request.since,
                    until=request.until,
                    generated_at=generated_at,
                    recordings=tuple(summaries),
                    recipients=request.recipients,
                    consent_proofs=any(item.consent_proofs for item in items),
                    dtmf_digits=any(_has_digits(item) for item in items),
                )
                writer.add_bytes("summary.txt", summary_text(facts).encode())
                writer.add_bytes("summary.html", summary_html(facts).encode())
                manifest = {
                    "format": BUNDLE_FORMAT,
                    "access_request": str(request.request_id),
                    "generated_at": format_timestamp(generated_at),
                    "controller": request.controller,
                    "files": [entry.to_json() for entry in writer.entries],
                }
                writer.add_bytes("manifest.json", _json(manifest), listed=False)
            raw.flush()
            os.fsync(raw.fileno())
        digest, size = _digest(partial)
        partial.replace(target)
        _sync_directory(target.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BundleResult(
        path=target,
        size=size,
        sha256=digest,
        files=tuple(writer.entries),
        recording_ids=tuple(item.subject.recording.id for item in items),
    )


class _Writer:
    """Zip members with their manifest entries; timestamps fixed to the bundle's time."""

    def __init__(self, raw: BinaryIO, generated_at: datetime) -> None:
        self.zip = zipfile.ZipFile(raw, "w", allowZip64=True)
        self.entries: list[ManifestEntry] = []
        at = generated_at.astimezone(UTC)
        self._date_time = (at.year, at.month, at.day, at.hour, at.minute, at.second)

    def _info(self, name: str, compress: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self._date_time)
        info.compress_type = compress
        info.external_attr = 0o600 << 16
        return info

    def add_bytes(self, name: str, data: bytes, *, listed: bool = True) -> None:
        self.zip.writestr(self._info(name, zipfile.ZIP_DEFLATED), data)
        if listed:
            self.entries.append(
                ManifestEntry(path=name, size=len(data), sha256=hashlib.sha256(data).hexdigest())
            )

    def add_stream(
        self, name: str, source: BinaryIO, expected_sha256: str | None, what: str
    ) -> ManifestEntry:
        """Copy ``source`` in chunks; compressed audio gains nothing from deflate, so it is stored."""
        digest, size = hashlib.sha256(), 0
        with self.zip.open(self._info(name, zipfile.ZIP_STORED), "w", force_zip64=True) as member:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                member.write(chunk)
        if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
            raise IntegrityError(f"{what} differs from its catalogued SHA-256: it was changed or damaged")
        entry = ManifestEntry(path=name, size=size, sha256=digest.hexdigest())
        self.entries.append(entry)
        return entry


def _add_recording(
    writer: _Writer, item: BundleItem, open_audio: AudioOpener, open_file: FileOpener
) -> SummaryRecording:
    recording, retention = item.subject.recording, item.subject.retention
    folder = f"recordings/{recording.started_at.astimezone(UTC):%Y-%m-%dT%H%M%SZ}_{recording.reference}"
    if recording.status is RecordingStatus.RECORDING:
        audio_state = AudioState.IN_PROGRESS
    elif recording.file_path:
        audio_state = AudioState.INCLUDED
    else:
        audio_state = AudioState.NONE
    audio_entry = None
    if audio_state is AudioState.INCLUDED:
        extension = recording.format or Path(recording.file_path or "").suffix.lstrip(".") or "audio"
        with open_audio(recording) as source:
            audio_entry = writer.add_stream(
                f"{folder}/audio.{extension}", source, recording.sha256, f"the audio of {recording.reference}"
            )
    rendition_entries = []
    if recording.status is not RecordingStatus.RECORDING:
        for rendition in item.renditions:
            if (
                rendition.status is not RenditionStatus.DONE
                or not rendition.file_path
                or rendition.file_path == recording.file_path  # it replaced the master: already copied
            ):
                continue
            with open_file(rendition.file_path) as source:
                entry = writer.add_stream(
                    f"{folder}/rendition.{rendition.format}",
                    source,
                    rendition.sha256,
                    f"the {rendition.format} rendition of {recording.reference}",
                )
            rendition_entries.append((rendition, entry))
    metadata = recording.to_json(detailed=True)
    for internal in ("file_path", "created_at", "updated_at", "encrypted", "object_key"):
        metadata.pop(internal, None)
    metadata.update(
        audio_file=None if audio_entry is None else audio_entry.path,
        audio_note={
            AudioState.INCLUDED: None,
            AudioState.NONE: "no audio was recorded",
            AudioState.IN_PROGRESS: "the call was still being recorded when this bundle was made",
        }[audio_state],
        renditions=[
            {"format": rendition.format, "file": entry.path, "size_bytes": entry.size, "sha256": entry.sha256}
            for rendition, entry in rendition_entries
        ],
        policy_version=item.subject.policy_version,
        retention={
            **({} if retention is None else _retention_json(retention)),
            "expires_at": format_timestamp(recording.expires_at),
        },
        consent={
            "state": recording.consent_state,
            "proofs": [proof.to_json() for proof in item.consent_proofs],
        },
    )
    writer.add_bytes(f"{folder}/metadata.json", _json(metadata))
    return SummaryRecording(
        reference=recording.reference,
        started_at=recording.started_at,
        duration_seconds=recording.duration_seconds,
        parties=tuple(party_label(p.name, p.aor) for p in recording.participants),
        basis=recording.basis,
        statute=recording.statute,
        purpose=recording.purpose,
        retention_days=None if retention is None else retention.days,
        retention_statutory=retention is not None and retention.statutory,
        retention_source=None if retention is None else retention.source,
        expires_at=recording.expires_at,
        folder=folder,
        audio=audio_state,
    )


def _retention_json(retention: RetentionClass) -> dict[str, Any]:
    """The retention class as the copy's metadata states it."""
    return {
        "class": retention.code,
        "name": retention.name,
        "days": retention.days,
        "max_days": retention.max_days,
        "statutory": retention.statutory,
        "basis": retention.basis.value,
        "source": retention.source,
    }


def _has_digits(item: BundleItem) -> bool:
    return any(press.digit for stream in item.subject.recording.streams for press in stream.dtmf)


def _json(data: Any) -> bytes:
    return json.dumps(data, indent=2, ensure_ascii=False).encode() + b"\n"


def _digest(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
