"""Renditions repository: every SQL statement about a recording's extra formats and their encoding jobs.

A rendition row is also its job (migration 0003): ``pending`` → ``done`` | ``failed``. A worker claims one with
:meth:`Renditions.claim_next` inside a transaction and keeps that transaction open while it encodes; the row
lock (``FOR UPDATE SKIP LOCKED``) keeps every other node off it, and if the worker dies the lock goes with its
connection, leaving the row pending for the next claim. :meth:`complete` and :meth:`fail` then run on the same
connection before the commit. Like :class:`~storage.catalogue.Catalogue`, the repository runs on a pool or on
a connection the caller opened a transaction on; driver errors become :class:`CatalogueError`.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from .errors import CatalogueError, RecordingNotFoundError, translated
from .models import format_timestamp

__all__ = [
    "RENDITION_FORMATS",
    "CompletedRendition",
    "Rendition",
    "RenditionJob",
    "RenditionStatus",
    "Renditions",
]

RENDITION_FORMATS = ("wav", "opus", "mp3")  # the table's CHECK; media.transcode.RENDITION_FORMATS

_COLUMNS = """
    r.id, r.recording_id, r.format, r.status, r.file_path, r.size_bytes, r.sha256, r.error, r.attempts,
    r.replaces_master, r.not_before, r.created_at, r.updated_at, r.finished_at
"""

_INSERT = f"""
    INSERT INTO renditions AS r (recording_id, format, replaces_master, not_before)
    SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM recordings WHERE id = $1)
    ON CONFLICT (recording_id, format) DO NOTHING
    RETURNING {_COLUMNS}
"""  # noqa: S608 (column list is a constant)
_ONE = f"SELECT {_COLUMNS} FROM renditions r WHERE r.recording_id = $1 AND r.format = $2"  # noqa: S608
_OF_RECORDING = f"SELECT {_COLUMNS} FROM renditions r WHERE r.recording_id = $1 ORDER BY r.id"  # noqa: S608
# A failed rendition asked for again starts over; pending and done ones are left alone.
_REQUEUE = f"""
    UPDATE renditions r SET status = 'pending', attempts = 0, error = NULL, not_before = $3, finished_at = NULL
    WHERE r.recording_id = $1 AND r.format = $2 AND r.status = 'failed'
    RETURNING {_COLUMNS}
"""  # noqa: S608
_BACKLOG = """
    SELECT count(*) FROM renditions r JOIN recordings rec ON rec.id = r.recording_id WHERE r.status = 'pending'
"""

# Only renditions of finished recordings; the oldest due first. OF r: the recording row stays unlocked.
_CLAIM = f"""
    SELECT {_COLUMNS}, rec.file_path AS source_path, rec.format AS source_format, rec.sha256 AS source_sha256,
           rec.started_at AS recording_started_at
    FROM renditions r JOIN recordings rec ON rec.id = r.recording_id
    WHERE r.status = 'pending' AND r.not_before <= $1 AND rec.status <> 'recording'
    ORDER BY r.not_before, r.id
    LIMIT 1
    FOR UPDATE OF r SKIP LOCKED
"""  # noqa: S608

# keep_master = false: the recording row moves to the rendition only if it still names the master the
# rendition was made from; only then is the master remembered for removal.
_COMPLETE = f"""
    WITH moved AS (
        UPDATE recordings rec SET file_path = $2, format = x.format, size_bytes = $3, sha256 = $4
        FROM renditions x
        WHERE x.id = $1 AND x.replaces_master AND rec.id = x.recording_id AND rec.file_path = $6
        RETURNING rec.id
    )
    UPDATE renditions r SET
        status = 'done', file_path = $2, size_bytes = $3, sha256 = $4, error = NULL,
        attempts = r.attempts + 1, finished_at = $5,
        master_path = CASE WHEN EXISTS (SELECT 1 FROM moved) THEN $6 END, master_removed_at = NULL
    WHERE r.id = $1
    RETURNING {_COLUMNS}, r.master_path
"""  # noqa: S608
_FAIL = f"""
    UPDATE renditions r SET
        attempts = r.attempts + 1, error = $2,
        status = CASE WHEN $3::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
        not_before = COALESCE($3, r.not_before),
        finished_at = CASE WHEN $3::timestamptz IS NULL THEN $4::timestamptz END
    WHERE r.id = $1
    RETURNING {_COLUMNS}
"""  # noqa: S608
_MASTERS_LEFT = """
    SELECT id, master_path FROM renditions
    WHERE replaces_master AND status = 'done' AND master_removed_at IS NULL AND master_path IS NOT NULL
    ORDER BY id
"""
_MASTER_REMOVED = "UPDATE renditions SET master_removed_at = $2 WHERE id = $1"


class RenditionStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for a worker, or being encoded (its row locked), or waiting to retry
    DONE = "done"
    FAILED = "failed"  # gave up: the error says why


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendition:
    id: int
    recording_id: UUID
    format: str  # "wav" | "opus" | "mp3"
    status: RenditionStatus
    attempts: int = 0
    file_path: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    error: str | None = None
    replaces_master: bool = False
    not_before: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", RenditionStatus(self.status))

    def to_json(self) -> dict[str, Any]:
        """``{format, status, file_path, size_bytes, sha256, attempts, error, replaces_master, created_at,
        finished_at}``; every key always present, unknown values null."""
        return {
            "format": self.format,
            "status": self.status.value,
            "file_path": self.file_path,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "attempts": self.attempts,
            "error": self.error,
            "replaces_master": self.replaces_master,
            "created_at": format_timestamp(self.created_at),
            "finished_at": format_timestamp(self.finished_at),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RenditionJob:
    """A claimed rendition and what encoding it needs from its recording."""

    rendition: Rendition
    source_path: str | None  # the recording's audio file now (the FLAC master unless it was replaced)
    source_format: str | None
    source_sha256: str | None  # what the catalogue vouches for: checked before encoding
    recording_started_at: datetime  # names the rendition's day directory, like the master's


@dataclass(frozen=True, slots=True, kw_only=True)
class CompletedRendition:
    rendition: Rendition
    master_to_remove: str | None  # set when the recording now points at the rendition


class Renditions:
    def __init__(self, db: Any) -> None:
        self._db = db  # an asyncpg Pool, or a Connection inside the caller's transaction

    async def request(
        self, recording_id: UUID, format: str, *, now: datetime, replaces_master: bool = False
    ) -> Rendition:
        """Ask for a rendition: a new pending row, or the one already there (a failed one starts over)."""
        if format not in RENDITION_FORMATS:
            raise ValueError(f"no rendition format {format!r}; one of {', '.join(RENDITION_FORMATS)}")
        with translated("request a rendition"):
            row = await self._db.fetchrow(_INSERT, recording_id, format, replaces_master, now)
            if row is None:
                row = await self._db.fetchrow(_REQUEUE, recording_id, format, now)
            if row is None:
                row = await self._db.fetchrow(_ONE, recording_id, format)
        if row is None:
            raise RecordingNotFoundError(f"no recording {recording_id}")
        return _rendition(row)

    async def get(self, recording_id: UUID, format: str) -> Rendition | None:
        with translated("look up a rendition"):
            row = await self._db.fetchrow(_ONE, recording_id, format)
        return None if row is None else _rendition(row)

    async def for_recording(self, recording_id: UUID) -> builtins.list[Rendition]:
        with translated("list renditions"):
            rows = await self._db.fetch(_OF_RECORDING, recording_id)
        return [_rendition(row) for row in rows]

    async def backlog(self) -> int:
        """Pending renditions on every node: waiting, being encoded, or waiting to retry."""
        with translated("count pending renditions"):
            return int(await self._db.fetchval(_BACKLOG))

    async def claim_next(self, *, now: datetime) -> RenditionJob | None:
        """Lock the oldest due pending rendition that no other transaction holds; None when there is none.

        Must run inside a transaction, which holds the claim until it ends."""
        in_transaction = getattr(self._db, "is_in_transaction", None)
        if in_transaction is None or not in_transaction():
            raise RuntimeError("claim_next() needs a connection inside a transaction")
        with translated("claim a rendition"):
            row = await self._db.fetchrow(_CLAIM, now)
        if row is None:
            return None
        return RenditionJob(
            rendition=_rendition(row),
            source_path=row["source_path"],
            source_format=row["source_format"],
            source_sha256=row["source_sha256"],
            recording_started_at=row["recording_started_at"],
        )

    async def complete(
        self,
        rendition_id: int,
        *,
        file_path: str,
        size_bytes: int,
        sha256: str,
        now: datetime,
        master_path: str | None,
    ) -> CompletedRendition:
        """Record the finished file. A rendition that replaces its master also becomes the recording's file
        (path, format, size, SHA-256) if the recording still names ``master_path``; the caller removes the
        master after the commit and reports it with :meth:`master_removed`."""
        with translated("complete a rendition"):
            row = await self._db.fetchrow(
                _COMPLETE, rendition_id, file_path, size_bytes, sha256, now, master_path
            )
        if row is None:
            raise CatalogueError(f"no rendition {rendition_id}")
        return CompletedRendition(rendition=_rendition(row), master_to_remove=row["master_path"])

    async def fail(
        self, rendition_id: int, *, error: str, now: datetime, retry_at: datetime | None
    ) -> Rendition:
        """Count a failed attempt: pending again from ``retry_at``, or failed for good when it is None."""
        with translated("record a failed rendition"):
            row = await self._db.fetchrow(_FAIL, rendition_id, error[:2000], retry_at, now)
        if row is None:
            raise CatalogueError(f"no rendition {rendition_id}")
        return _rendition(row)

    async def masters_left(self) -> builtins.list[tuple[int, str]]:
        """(rendition id, master path) of replaced masters not yet reported removed."""
        with translated("list replaced masters"):
            rows = await self._db.fetch(_MASTERS_LEFT)
        return [(int(row["id"]), str(row["master_path"])) for row in rows]

    async def master_removed(self, rendition_id: int, *, now: datetime) -> None:
        with translated("record a removed master"):
            await self._db.execute(_MASTER_REMOVED, rendition_id, now)


def _rendition(row: Mapping[str, Any]) -> Rendition:
    try:
        return Rendition(
            id=row["id"],
            recording_id=row["recording_id"],
            format=row["format"],
            status=RenditionStatus(row["status"]),
            attempts=row["attempts"],
            file_path=row["file_path"],
            size_bytes=row["size_bytes"],
            sha256=row["sha256"],
            error=row["error"],
            replaces_master=row["replaces_master"],
            not_before=row["not_before"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            finished_at=row["finished_at"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogueError(f"rendition {row.get('id')} has a malformed row: {exc}") from exc
