"""Deleting one recording for good: the one path every erasure, discard, withdrawal and sweep goes through.

Inside the caller's transaction (in a savepoint of it), with the recording's row locked (``FOR UPDATE``),
:func:`dispose`:

1. checks that every file it will remove lies inside the recordings directory (nothing is changed otherwise);
2. destroys the data key (``recording_keys.wrapped`` NULL: crypto-shredding, so any copy left anywhere, a
   backup included, is unreadable);
3. deletes the renditions' rows and the recording's row — the hold trigger refuses a held recording here
   (:class:`UnderHoldError`), consent proofs go with the row;
4. removes the files: the recording's file, every rendition and any replaced master still on disk, and queues
   their objects in the object store for deletion (:mod:`storage.object_uploads`), deleted after the commit;
5. writes a disposal row (no personal data: ids, class code, reason, counts) and an ``erased`` event in the
   outbox for recipients of copies (GDPR Art. 19).

Files go after the DELETE passed and before the commit: a failure from there on rolls the rows back and leaves a
recording whose file may be gone (a retry finishes it; a missing file is not an error), never a file that no
row points at.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from .blobs import FileBlobStore
from .errors import CatalogueError, NotFoundError, UnderHoldError, translated
from .lifecycle_rows import RecordingFacts
from .models import format_timestamp
from .object_uploads import queue_object_deletions

__all__ = ["Disposal", "DisposalReason", "dispose", "files_inside"]


class DisposalReason(enum.StrEnum):
    """Why a recording was deleted (the disposals table's CHECK)."""

    EXPIRED = "expired"  # its retention period ended (the sweeper)
    ERASURE_REQUEST = "erasure_request"  # Art. 17
    CONSENT_REFUSED = "consent_refused"  # Art. 7: no or no answer at the prompt
    CONSENT_WITHDRAWN = "consent_withdrawn"  # Art. 7(3): by number afterwards, or the stop key in the call
    NOT_KEPT = "not_kept"  # a 0-day class: nothing kept after hang-up (Art. 5(1)(c),(e))


@dataclass(frozen=True, slots=True, kw_only=True)
class Disposal:
    """A deleted recording, as the disposal log keeps it (plus its reference, for the person who asked)."""

    recording_id: UUID
    reference: str
    tenant_id: UUID | None
    reason: DisposalReason
    retention_class: str | None
    disposed_at: datetime
    disposed_by: str
    files: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "recording_id": str(self.recording_id),
            "reference": self.reference,
            "tenant_id": None if self.tenant_id is None else str(self.tenant_id),
            "reason": self.reason.value,
            "retention_class": self.retention_class,
            "disposed_at": format_timestamp(self.disposed_at),
            "disposed_by": self.disposed_by,
            "files": self.files,
            "bytes": self.bytes,
        }


_FILES = "SELECT file_path, master_path FROM renditions WHERE recording_id = $1"
_DESTROY_KEY = """
    UPDATE recording_keys SET wrapped = NULL, destroyed_at = $2 WHERE recording_id = $1 AND destroyed_at IS NULL
"""
_DELETE_RENDITIONS = "DELETE FROM renditions WHERE recording_id = $1"
_DELETE_RECORDING = "DELETE FROM recordings WHERE id = $1"
_LOG = """
    INSERT INTO disposals (recording_id, tenant_id, retention_class, reason, disposed_at, disposed_by, files, bytes)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""
_OUTBOX = """
    INSERT INTO lifecycle_outbox (tenant_id, recording_id, reference, event, created_at)
    VALUES ($1, $2, $3, 'erased', $4)
"""


async def dispose(
    conn: Any,
    facts: RecordingFacts,
    *,
    reason: DisposalReason,
    disposed_by: str,
    now: datetime,
    blobs: FileBlobStore,
) -> Disposal:
    """Delete the recording ``facts`` names (locked by the caller) and its files; see the module docstring.

    Runs in a savepoint of the caller's transaction: when it fails (a hold placed meanwhile, a file that cannot
    be removed), nothing of it stays and the caller's transaction goes on."""
    async with conn.transaction():
        with translated("find a recording's files"):
            rows = await conn.fetch(_FILES, facts.id)
        named = [facts.file_path, *(row["file_path"] for row in rows), *(row["master_path"] for row in rows)]
        paths = files_inside(blobs, [path for path in named if path])
        with translated("destroy a recording's key"):
            await conn.execute(_DESTROY_KEY, facts.id, now)
        # Its objects in the store are deleted after this commits: unreadable from here on, the key is gone.
        objects = await queue_object_deletions(conn, facts.id, now)
        with translated("delete a recording's renditions"):
            await conn.execute(_DELETE_RENDITIONS, facts.id)
        with translated("delete a recording"):
            try:
                status = await conn.execute(_DELETE_RECORDING, facts.id)
            except asyncpg.RestrictViolationError as exc:  # the hold trigger (migration 0004)
                raise UnderHoldError(
                    f"{facts.reference} is restricted by a legal hold (GDPR Art. 18) and cannot be deleted"
                ) from exc
        if status != "DELETE 1":
            raise NotFoundError(f"recording {facts.reference} was deleted meanwhile")
        try:
            files, size = await asyncio.to_thread(_remove, blobs, paths)
        except OSError as exc:
            raise CatalogueError(f"cannot remove the files of {facts.reference}: {exc}") from exc
        files += objects
        class_code = None if facts.retention_class is None else facts.retention_class.code
        with translated("log a disposal"):
            await conn.execute(
                _LOG, facts.id, facts.tenant_id, class_code, reason.value, now, disposed_by, files, size
            )
            await conn.execute(_OUTBOX, facts.tenant_id, facts.id, facts.reference, now)
        return Disposal(
            recording_id=facts.id,
            reference=facts.reference,
            tenant_id=facts.tenant_id,
            reason=reason,
            retention_class=class_code,
            disposed_at=now,
            disposed_by=disposed_by,
            files=files,
            bytes=size,
        )


def files_inside(blobs: FileBlobStore, paths: Iterable[str]) -> list[Path]:
    """The resolved paths (:meth:`FileBlobStore.resolve`), without duplicates; :class:`CatalogueError` if any
    lies outside the recordings directory, before anything is deleted."""
    resolved: list[Path] = []
    for path in paths:
        try:
            candidate = blobs.resolve(path)
        except ValueError as exc:
            raise CatalogueError(f"{exc}; nothing was deleted") from exc
        if candidate not in resolved:
            resolved.append(candidate)
    return resolved


def _remove(blobs: FileBlobStore, paths: Sequence[Path]) -> tuple[int, int]:
    """Remove each file; one already gone is skipped (an earlier attempt removed it). Returns (files, bytes)."""
    files = size = 0
    for path in paths:
        if path.exists():
            size += blobs.remove(path)
            files += 1
    return files, size
