"""Integrity checks (GDPR Art. 5(1)(f), 32(1)(d)): is every stored file still what the catalogue vouches for?

The SHA-256 of a recording's audio is taken when it is finalised, and of each rendition when it is made.
:meth:`Integrity.verify` reads the files again (the audio through the injected opener, so an encrypted file
is checked by its plaintext, and a damaged container shows up as damage) and compares; one flipped byte
changes the hash. A recording still being written is skipped; a file the catalogue has no hash for is
reported as unverifiable, not as damaged.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO
from uuid import UUID

from .audio_opener import AudioOpener, FileOpener
from .audit import Actor, AuditEntry, AuditLog
from .catalogue import Catalogue
from .errors import IntegrityError, KeyUnavailableError, translated
from .models import Recording, RecordingStatus
from .renditions import Renditions, RenditionStatus
from .scope import ALL_TENANTS, TenantScope, scope_args, scope_sql

__all__ = ["CheckStatus", "FileCheck", "Integrity", "IntegrityResult"]

_CHUNK = 1 << 20
_PAGE = f"""
    SELECT id, started_at FROM recordings
    WHERE {scope_sql("tenant_id", 1)}
      AND ($3::timestamptz IS NULL OR (started_at, id) > ($3, $4::uuid))
    ORDER BY started_at, id
    LIMIT $5
"""  # noqa: S608 (constant fragment)


class CheckStatus(enum.StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"  # the content differs from the catalogue's hash, or its container is damaged
    MISSING = "missing"  # the file is gone
    UNREADABLE = "unreadable"  # cannot be read: I/O error, key destroyed, path outside the store
    UNVERIFIABLE = "unverifiable"  # the catalogue holds no hash to compare with


FAILED = frozenset({CheckStatus.MISMATCH, CheckStatus.MISSING, CheckStatus.UNREADABLE})


@dataclass(frozen=True, slots=True, kw_only=True)
class FileCheck:
    kind: str  # "audio" or "rendition:<format>"
    path: str
    status: CheckStatus
    expected_sha256: str | None = None
    actual_sha256: str | None = None
    size: int | None = None  # bytes read (plaintext)
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILED

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "status": self.status.value,
            "expected_sha256": self.expected_sha256,
            "actual_sha256": self.actual_sha256,
            "size": self.size,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class IntegrityResult:
    recording_id: UUID
    reference: str
    checks: tuple[FileCheck, ...] = ()
    skipped: str | None = None  # why nothing was checked: "in progress", "no audio"

    @property
    def ok(self) -> bool:
        return not any(check.failed for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "recording_id": str(self.recording_id),
            "reference": self.reference,
            "ok": self.ok,
            "skipped": self.skipped,
            "checks": [check.to_json() for check in self.checks],
        }


class Integrity:
    """Recomputes hashes of stored files. With ``actor`` given, the check itself is audited
    (``recording.verify``, or one ``integrity.verify`` entry with the counts of a whole run)."""

    def __init__(
        self,
        pool: Any,
        *,
        open_audio: AudioOpener,
        open_file: FileOpener,
        audit: AuditLog | None = None,
        page_size: int = 100,
    ) -> None:
        self._pool = pool
        self._open_audio = open_audio
        self._open_file = open_file
        self._audit = audit or AuditLog()
        self._page_size = page_size

    async def verify(self, recording: Recording, *, actor: Actor | None = None) -> IntegrityResult:
        result = await self._check(recording)
        if actor is not None:
            await self._audit.record(
                self._pool,
                AuditEntry(
                    actor=actor,
                    action="recording.verify",
                    object_kind="recording",
                    object_id=str(recording.id),
                    details={
                        "ok": result.ok,
                        "files": len(result.checks),
                        "failed": [check.kind for check in result.checks if check.failed],
                    },
                ),
            )
        return result

    async def verify_all(
        self, scope: TenantScope = ALL_TENANTS, *, actor: Actor | None = None
    ) -> AsyncIterator[IntegrityResult]:
        """Every recording in ``scope`` (one tenant's, the unclaimed calls, or by default all), oldest first,
        one result as each is checked."""
        counts = {"recordings": 0, "files": 0, "failed": 0, "skipped": 0}
        after: tuple[datetime | None, UUID | None] = (None, None)
        while True:
            with translated("list recordings to verify"):
                rows = await self._pool.fetch(_PAGE, *scope_args(scope), after[0], after[1], self._page_size)
            for row in rows:
                recording = await Catalogue(self._pool).get(row["id"])
                if recording is None:  # deleted meanwhile (expired, erased)
                    continue
                result = await self._check(recording)
                counts["recordings"] += 1
                counts["files"] += len(result.checks)
                counts["failed"] += 0 if result.ok else 1
                counts["skipped"] += 1 if result.skipped else 0
                yield result
            if len(rows) < self._page_size:
                break
            after = (rows[-1]["started_at"], rows[-1]["id"])
        if actor is not None:
            await self._audit.record(
                self._pool,
                AuditEntry(
                    actor=actor,
                    action="integrity.verify",
                    tenant_id=None if scope is ALL_TENANTS else scope,
                    details=counts,
                ),
            )

    async def _check(self, recording: Recording) -> IntegrityResult:
        if recording.status is RecordingStatus.RECORDING:
            return IntegrityResult(
                recording_id=recording.id, reference=recording.reference, skipped="in progress"
            )
        checks = []
        if recording.file_path:
            checks.append(
                await asyncio.to_thread(
                    _check_file,
                    "audio",
                    recording.file_path,
                    recording.sha256,
                    functools.partial(self._open_audio, recording),
                )
            )
        for rendition in await Renditions(self._pool).for_recording(recording.id):
            if (
                rendition.status is not RenditionStatus.DONE
                or not rendition.file_path
                or rendition.file_path == recording.file_path  # it replaced the master: checked above
            ):
                continue
            path = rendition.file_path
            checks.append(
                await asyncio.to_thread(
                    _check_file,
                    f"rendition:{rendition.format}",
                    path,
                    rendition.sha256,
                    functools.partial(self._open_file, path),
                )
            )
        return IntegrityResult(
            recording_id=recording.id,
            reference=recording.reference,
            checks=tuple(checks),
            skipped=None if checks else "no audio",
        )


def _check_file(
    kind: str,
    path: str,
    expected: str | None,
    open_source: Callable[[], contextlib.AbstractContextManager[BinaryIO]],
) -> FileCheck:
    digest, size = hashlib.sha256(), 0
    try:
        with open_source() as source:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError as exc:
        return FileCheck(
            kind=kind, path=path, status=CheckStatus.MISSING, expected_sha256=expected, error=str(exc)
        )
    except IntegrityError as exc:
        return FileCheck(
            kind=kind, path=path, status=CheckStatus.MISMATCH, expected_sha256=expected, error=str(exc)
        )
    except (KeyUnavailableError, OSError, ValueError) as exc:
        return FileCheck(
            kind=kind, path=path, status=CheckStatus.UNREADABLE, expected_sha256=expected, error=str(exc)
        )
    actual = digest.hexdigest()
    if expected is None:
        status = CheckStatus.UNVERIFIABLE
    else:
        status = CheckStatus.OK if actual == expected else CheckStatus.MISMATCH
    return FileCheck(
        kind=kind, path=path, status=status, expected_sha256=expected, actual_sha256=actual, size=size
    )
