"""The catalogue's side of the object store: recordings waiting for their upload, its confirmation, renditions
made after it, and the queue of objects to delete (migration 0011).

A finished recording that has to reach the object store waits in status 'uploading' (its outcome in
``pending_status``). :meth:`ObjectUploads.confirm` gives it that outcome in the same statement that names the
confirmed object, and only if the row is still the one that was uploaded: a recording erased, expired or
discarded meanwhile is not brought back, and its caller deletes the object it just stored. Every path the
catalogue names for a file in the store is relative to the recordings directory and equal to its object key.

Objects to delete are queued in the transaction that deletes their recording (:func:`queue_object_deletions`,
called by :func:`storage.disposal.dispose` after destroying the data key) and deleted after that commit.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from .catalogue import recording_from_row
from .errors import translated
from .models import Recording

__all__ = [
    "ObjectUploads",
    "RenditionFile",
    "queue_object_deletions",
]

_RECORDING_COLUMNS = """
    r.*, (SELECT code FROM retention_classes c WHERE c.id = r.retention_class_id) AS retention_class
"""
# A node's own (and those no node claimed); those with a rendition still being made wait for it, so the files
# go up once, in their final form.
_WAITING = f"""
    SELECT {_RECORDING_COLUMNS} FROM recordings r
    WHERE r.status = 'uploading' AND (r.node = $1 OR r.node IS NULL OR $1::text IS NULL)
      AND NOT EXISTS (SELECT 1 FROM renditions x WHERE x.recording_id = r.id AND x.status = 'pending')
    ORDER BY r.ended_at, r.id
    LIMIT $2
"""  # noqa: S608 (column list is a constant)
_WAITING_COUNT = "SELECT count(*) FROM recordings WHERE status = 'uploading'"
_RENDITIONS_OF = """
    SELECT id, file_path FROM renditions
    WHERE recording_id = $1 AND status = 'done' AND file_path IS NOT NULL AND object_key IS NULL
    ORDER BY id
"""
_CONFIRM = f"""
    UPDATE recordings r SET status = r.pending_status, pending_status = NULL, object_key = $3, file_path = $3
    WHERE r.id = $1 AND r.status = 'uploading' AND r.file_path = $2
    RETURNING {_RECORDING_COLUMNS}
"""  # noqa: S608
_CONFIRM_RENDITION = """
    UPDATE renditions SET object_key = $3, file_path = $3 WHERE id = $1 AND file_path = $2
"""
# Renditions made after their recording went to the store (a format asked for later).
_LATE_RENDITIONS = """
    SELECT x.id, x.file_path FROM renditions x JOIN recordings r ON r.id = x.recording_id
    WHERE x.status = 'done' AND x.object_key IS NULL AND x.file_path IS NOT NULL AND r.object_key IS NOT NULL
      AND x.file_path <> r.file_path
    ORDER BY x.id
    LIMIT $1
"""
_QUEUE = """
    INSERT INTO object_deletions (object_key, queued_at) SELECT unnest($1::text[]), $2
    ON CONFLICT (object_key) DO NOTHING
"""
_OBJECTS_OF = """
    SELECT object_key FROM recordings WHERE id = $1 AND object_key IS NOT NULL
    UNION SELECT object_key FROM renditions WHERE recording_id = $1 AND object_key IS NOT NULL
"""
_DUE = "SELECT object_key FROM object_deletions ORDER BY queued_at, object_key LIMIT $1"
_DELETED = "DELETE FROM object_deletions WHERE object_key = $1"
_FAILED = "UPDATE object_deletions SET attempts = attempts + 1, last_error = $2 WHERE object_key = $1"
_QUEUED_COUNT = "SELECT count(*) FROM object_deletions"


@dataclass(frozen=True, slots=True, kw_only=True)
class RenditionFile:
    """A rendition's file waiting for the store: the row and the path the catalogue names now."""

    id: int
    file_path: str


class ObjectUploads:
    """Statements about what is, or is to be, in the object store; over a pool or a connection."""

    def __init__(self, db: Any) -> None:
        self._db = db

    async def waiting(self, node: str | None, *, limit: int = 100) -> builtins.list[Recording]:
        """Recordings of ``node`` (None: any node) in status 'uploading' whose renditions are settled, oldest
        first."""
        with translated("list the recordings waiting for their upload"):
            rows = await self._db.fetch(_WAITING, node, limit)
        return [recording_from_row(row) for row in rows]

    async def waiting_count(self) -> int:
        with translated("count the recordings waiting for their upload"):
            count: int = await self._db.fetchval(_WAITING_COUNT)
        return count

    async def renditions_of(self, recording_id: UUID) -> builtins.list[RenditionFile]:
        """The recording's finished renditions not yet in the store."""
        with translated("list a recording's renditions"):
            rows = await self._db.fetch(_RENDITIONS_OF, recording_id)
        return [RenditionFile(id=row["id"], file_path=row["file_path"]) for row in rows]

    async def late_renditions(self, *, limit: int = 100) -> builtins.list[RenditionFile]:
        """Finished renditions of recordings already in the store, themselves not yet in it."""
        with translated("list the renditions waiting for their upload"):
            rows = await self._db.fetch(_LATE_RENDITIONS, limit)
        return [RenditionFile(id=row["id"], file_path=row["file_path"]) for row in rows]

    async def confirm(
        self,
        recording: Recording,
        object_key: str,
        renditions: Sequence[tuple[RenditionFile, str]] = (),
    ) -> Recording | None:
        """The store confirmed ``object_key`` (and each rendition's key): the recording takes its outcome and
        names the object; None when the row is gone or changed meanwhile (the caller deletes the objects)."""
        async with self._connection() as conn, conn.transaction():
            with translated("confirm a recording's upload"):
                row = await conn.fetchrow(_CONFIRM, recording.id, recording.file_path, object_key)
                if row is None:
                    return None
                for rendition, key in renditions:
                    await conn.execute(_CONFIRM_RENDITION, rendition.id, rendition.file_path, key)
        return recording_from_row(row)

    async def confirm_rendition(self, rendition: RenditionFile, object_key: str) -> bool:
        """A late rendition is in the store; False when its row is gone or changed meanwhile."""
        with translated("confirm a rendition's upload"):
            status = await self._db.execute(_CONFIRM_RENDITION, rendition.id, rendition.file_path, object_key)
        return bool(status == "UPDATE 1")

    # -- deletions ---------------------------------------------------------------------------------------------------
    async def due_deletions(self, *, limit: int = 100) -> builtins.list[str]:
        with translated("list the objects to delete"):
            rows = await self._db.fetch(_DUE, limit)
        return [row["object_key"] for row in rows]

    async def deleted(self, object_key: str) -> None:
        with translated("forget a deleted object"):
            await self._db.execute(_DELETED, object_key)

    async def deletion_failed(self, object_key: str, error: str) -> None:
        with translated("note a failed object deletion"):
            await self._db.execute(_FAILED, object_key, error[:500])

    async def queued_deletions(self) -> int:
        with translated("count the objects to delete"):
            count: int = await self._db.fetchval(_QUEUED_COUNT)
        return count

    def _connection(self) -> Any:
        if hasattr(self._db, "acquire"):
            return self._db.acquire()
        return _Borrowed(self._db)


async def queue_object_deletions(conn: Any, recording_id: UUID, now: datetime) -> int:
    """In the caller's transaction, before the recording's row goes: queue its objects (and its renditions')
    for deletion; how many."""
    with translated("queue a recording's objects for deletion"):
        rows = await conn.fetch(_OBJECTS_OF, recording_id)
        keys = [row["object_key"] for row in rows]
        if keys:
            await conn.execute(_QUEUE, keys, now)
    return len(keys)


class _Borrowed:
    """A connection the caller owns, as an async context manager that leaves it open."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def __aenter__(self) -> Any:
        return self._conn

    async def __aexit__(self, *_: object) -> None:
        return None
