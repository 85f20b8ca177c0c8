"""The recording catalogue repository: every SQL statement about recordings lives here.

`Catalogue` runs each statement on what it is given: a pool (one pooled connection per call), or a connection
inside a transaction a service opened (`Catalogue(conn)`), since both offer fetch/fetchrow/execute. Driver
errors become `CatalogueError` here; nothing above sees asyncpg exceptions.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from .errors import CatalogueError, RecordingNotFoundError, translated
from .models import (
    MetadataSnapshot,
    NewRecording,
    ParticipantRecord,
    PauseRecord,
    Recording,
    RecordingStatus,
    StreamRecord,
)
from .reference import new_reference, normalize_reference

__all__ = ["Catalogue", "recording_from_row"]

_REFERENCE_ATTEMPTS = 8  # 40 random bits: a second attempt is already astronomically rare
_MAX_LIST = 1000

_COLUMNS = """
    id, reference, call_id, session_ids, group_ids, status, started_at, media_started_at, ended_at,
    duration_seconds, participants, streams, channels, sample_rate, file_path, format, size_bytes, sha256,
    raw_metadata, metadata_history, source_address, created_at, updated_at, conversation_id, duplicate_of,
    pauses, call_facts, tenant_id, policy_id, basis, statute, purpose, retention_class_id, expires_at,
    consent_state, numbers, encryption, node, object_key, pending_status,
    (SELECT code FROM retention_classes c WHERE c.id = recordings.retention_class_id) AS retention_class
"""

# ON CONFLICT on the reference alone: a colliding reference returns no row and is retried, without the
# error that would abort a caller's transaction.
# A recording of a communication session (RFC 7865 session id) already recorded is linked to the first such
# recording; one sharing a session or group id (transfer, park: RFC 7865 §6.2) joins that one's conversation.
_INSERT = f"""
    WITH earlier AS (
        SELECT id, conversation_id, session_ids && $4::text[] AS same_session
        FROM recordings
        WHERE (cardinality($4::text[]) > 0 AND session_ids && $4::text[])
           OR (cardinality($5::text[]) > 0 AND group_ids && $5::text[])
        ORDER BY started_at, id
    )
    INSERT INTO recordings (id, reference, call_id, session_ids, group_ids, status, started_at, participants,
                            streams, channels, sample_rate, file_path, format, raw_metadata, source_address,
                            call_facts, conversation_id, duplicate_of, tenant_id, policy_id, basis, statute,
                            purpose, retention_class_id, expires_at, consent_state, numbers, encryption, node)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
            COALESCE((SELECT conversation_id FROM earlier LIMIT 1), $1),
            (SELECT id FROM earlier WHERE same_session LIMIT 1),
            $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)
    ON CONFLICT (reference) DO NOTHING
    RETURNING {_COLUMNS}
"""  # noqa: S608 (column list is a constant)

# The first metadata document becomes raw_metadata; later ones are appended to the history.
_UPDATE_METADATA = f"""
    UPDATE recordings SET
        raw_metadata = COALESCE(raw_metadata, $2),
        metadata_history = CASE WHEN raw_metadata IS NULL THEN metadata_history
                                ELSE metadata_history || $3::jsonb END,
        participants = COALESCE($4::jsonb, participants),
        call_facts = COALESCE($5::jsonb, call_facts)
    WHERE id = $1
    RETURNING {_COLUMNS}
"""  # noqa: S608

_FINISH = f"""
    UPDATE recordings SET
        status = CASE WHEN $16 THEN 'uploading' ELSE $2 END, pending_status = CASE WHEN $16 THEN $2 END,
        ended_at = $3, media_started_at = $4, duration_seconds = $5, streams = $6,
        file_path = $7, format = $8, size_bytes = $9, sha256 = $10,
        channels = COALESCE($11, channels), sample_rate = COALESCE($12, sample_rate),
        pauses = COALESCE($13::jsonb, pauses), expires_at = COALESCE($14, expires_at),
        encryption = COALESCE($15, encryption)
    WHERE id = $1
    RETURNING {_COLUMNS}
"""  # noqa: S608

# storage.retention.expiry in SQL: started_at + days; a 0-day class ("not kept") expires at hang-up.
_EXPIRE_BY_CLASS = """
    UPDATE recordings r SET expires_at = CASE WHEN c.days = 0 THEN COALESCE(r.ended_at, r.started_at)
                                              ELSE r.started_at + make_interval(days => c.days) END
    FROM retention_classes c
    WHERE r.id = $1 AND c.id = r.retention_class_id AND r.expires_at IS NULL
"""
_MARK_STATUS = f"UPDATE recordings SET status = $2 WHERE id = $1 RETURNING {_COLUMNS}"  # noqa: S608
_BY_ID = f"SELECT {_COLUMNS} FROM recordings WHERE id = $1"  # noqa: S608
_BY_REFERENCE = f"SELECT {_COLUMNS} FROM recordings WHERE reference = $1"  # noqa: S608
_LIST = f"""
    SELECT {_COLUMNS} FROM recordings
    WHERE $2::timestamptz IS NULL OR started_at < $2
    ORDER BY started_at DESC, id DESC
    LIMIT $1
"""  # noqa: S608
_CONVERSATION = f"""
    SELECT {_COLUMNS} FROM recordings WHERE conversation_id = $1 ORDER BY started_at, id
"""  # noqa: S608
# A node's own, and those from before nodes were named (NULL: there was one node then).
_UNFINISHED = f"""
    SELECT {_COLUMNS} FROM recordings
    WHERE status = 'recording' AND (node = $1 OR node IS NULL OR $1 IS NULL)
    ORDER BY started_at
"""  # noqa: S608


class Catalogue:
    """Create, complete and look up recordings."""

    def __init__(self, db: Any, *, reference_factory: Callable[[], str] = new_reference) -> None:
        self._db = db  # an asyncpg Pool, or a Connection inside the caller's transaction
        self._new_reference = reference_factory

    async def create(self, new: NewRecording) -> Recording:
        """Insert a row in status 'recording' under a fresh unique reference."""
        for _ in range(_REFERENCE_ATTEMPTS):
            with translated("create a recording"):
                row = await self._db.fetchrow(
                    _INSERT,
                    new.id,
                    self._new_reference(),
                    new.call_id,
                    list(new.session_ids),
                    list(new.group_ids),
                    RecordingStatus.RECORDING.value,
                    new.started_at,
                    [participant.to_json() for participant in new.participants],
                    [stream.to_json() for stream in new.streams],
                    new.channels,
                    new.sample_rate,
                    new.file_path,
                    new.format,
                    new.raw_metadata,
                    new.source_address,
                    dict(new.call_facts),
                    new.tenant_id,
                    new.policy_id,
                    new.basis,
                    new.statute,
                    new.purpose,
                    new.retention_class_id,
                    new.expires_at,
                    new.consent_state,
                    list(new.numbers),
                    new.encryption,
                    new.node,
                )
            if row is not None:
                return recording_from_row(row)
        raise CatalogueError(f"no unused reference found in {_REFERENCE_ATTEMPTS} attempts")

    async def update_metadata(
        self,
        recording_id: UUID,
        raw_xml: str,
        participants: Sequence[ParticipantRecord] | None = None,
        *,
        received_at: datetime | None = None,
        call_facts: Mapping[str, Any] | None = None,
    ) -> Recording:
        """Keep a metadata document received mid-call; replace the participants and call facts when given."""
        snapshot = MetadataSnapshot(received_at=received_at or datetime.now(UTC), xml=raw_xml)
        people = None if participants is None else [participant.to_json() for participant in participants]
        with translated("store recording metadata"):
            row = await self._db.fetchrow(
                _UPDATE_METADATA,
                recording_id,
                raw_xml,
                [snapshot.to_json()],
                people,
                None if call_facts is None else dict(call_facts),
            )
        return _found(row, recording_id)

    async def finish(
        self,
        recording_id: UUID,
        *,
        status: RecordingStatus,
        ended_at: datetime,
        media_started_at: datetime | None,
        duration_seconds: float | None,
        streams: Sequence[StreamRecord],
        file_path: str | None,
        format: str | None,
        size_bytes: int | None,
        sha256: str | None,
        channels: int | None = None,
        sample_rate: int | None = None,
        pauses: Sequence[PauseRecord] | None = None,
        expires_at: datetime | None = None,
        encryption: str | None = None,
        upload: bool = False,
    ) -> Recording:
        """Record how the recording ended; channels, sample rate, pauses, expiry and the file's encryption
        (``storage.sealed.SEALED_FORMAT``) change only when given. ``upload``: its file still has to reach the
        object store, so the row waits in status 'uploading' with ``status`` as its pending outcome
        (:class:`storage.object_uploads.ObjectUploads` confirms it)."""
        if RecordingStatus(status) is RecordingStatus.RECORDING:
            raise ValueError("finish() needs a final status")
        with translated("finish a recording"):
            row = await self._db.fetchrow(
                _FINISH,
                recording_id,
                RecordingStatus(status).value,
                ended_at,
                media_started_at,
                duration_seconds,
                [stream.to_json() for stream in streams],
                file_path,
                format,
                size_bytes,
                sha256,
                channels,
                sample_rate,
                None if pauses is None else [pause.to_json() for pause in pauses],
                expires_at,
                encryption,
                upload,
            )
        return _found(row, recording_id)

    async def expire_by_class(self, recording_id: UUID) -> None:
        """Give a finished recording without an expiry the one its retention class sets (crash recovery)."""
        with translated("set a recording's expiry"):
            await self._db.execute(_EXPIRE_BY_CLASS, recording_id)

    async def mark_status(self, recording_id: UUID, status: RecordingStatus) -> Recording:
        with translated("change a recording's status"):
            row = await self._db.fetchrow(_MARK_STATUS, recording_id, RecordingStatus(status).value)
        return _found(row, recording_id)

    async def get(self, id_or_reference: str | UUID) -> Recording | None:
        """Look a recording up by its uuid or by its reference as a person typed it (any case, O for 0...)."""
        key: UUID | str
        if isinstance(id_or_reference, UUID):
            query, key = _BY_ID, id_or_reference
        else:
            text = id_or_reference.strip()
            try:
                query, key = _BY_ID, UUID(text)
            except ValueError:
                reference = normalize_reference(text)
                if reference is None:
                    return None
                query, key = _BY_REFERENCE, reference
        with translated("look up a recording"):
            row = await self._db.fetchrow(query, key)
        return None if row is None else recording_from_row(row)

    async def list(self, *, limit: int = 50, before: datetime | None = None) -> builtins.list[Recording]:
        """Newest first (by started_at); `before` pages back: only recordings started strictly before it."""
        if not 1 <= limit <= _MAX_LIST:
            raise ValueError(f"limit must be between 1 and {_MAX_LIST}")
        with translated("list recordings"):
            rows = await self._db.fetch(_LIST, limit, before)
        return [recording_from_row(row) for row in rows]

    async def conversation(self, conversation_id: UUID) -> builtins.list[Recording]:
        """Every recording of one conversation (transfer and park segments, duplicates), oldest first."""
        with translated("list a conversation"):
            rows = await self._db.fetch(_CONVERSATION, conversation_id)
        return [recording_from_row(row) for row in rows]

    async def unfinished(self, node: str | None = None) -> builtins.list[Recording]:
        """Rows still in status 'recording', oldest first: after a crash, the calls that were cut off. With
        ``node``: that node's (and rows that name no node); None: every node's."""
        with translated("list unfinished recordings"):
            rows = await self._db.fetch(_UNFINISHED, node)
        return [recording_from_row(row) for row in rows]


def _found(row: Mapping[str, Any] | None, recording_id: UUID) -> Recording:
    if row is None:
        raise RecordingNotFoundError(f"no recording {recording_id}")
    return recording_from_row(row)


def recording_from_row(row: Mapping[str, Any]) -> Recording:
    """A :class:`Recording` from a row holding the catalogue's columns (``recordings.*`` with ``retention_class``,
    the code of its class); :class:`CatalogueError` for a malformed row."""
    try:
        return Recording(
            id=row["id"],
            reference=row["reference"],
            call_id=row["call_id"],
            session_ids=row["session_ids"],
            group_ids=row["group_ids"],
            status=RecordingStatus(row["status"]),
            started_at=row["started_at"],
            media_started_at=row["media_started_at"],
            ended_at=row["ended_at"],
            duration_seconds=row["duration_seconds"],
            participants=[ParticipantRecord.from_json(item) for item in row["participants"]],
            streams=[StreamRecord.from_json(item) for item in row["streams"]],
            channels=row["channels"],
            sample_rate=row["sample_rate"],
            file_path=row["file_path"],
            format=row["format"],
            size_bytes=row["size_bytes"],
            sha256=row["sha256"],
            raw_metadata=row["raw_metadata"],
            metadata_history=[MetadataSnapshot.from_json(item) for item in row["metadata_history"]],
            source_address=row["source_address"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            conversation_id=row["conversation_id"],
            duplicate_of=row["duplicate_of"],
            pauses=[PauseRecord.from_json(item) for item in row["pauses"]],
            call_facts=row["call_facts"],
            tenant_id=row["tenant_id"],
            policy_id=row["policy_id"],
            basis=row["basis"],
            statute=row["statute"],
            purpose=row["purpose"],
            retention_class_id=row["retention_class_id"],
            retention_class=row["retention_class"],
            expires_at=row["expires_at"],
            consent_state=row["consent_state"],
            numbers=row["numbers"],
            object_key=row.get("object_key"),
            pending_status=None
            if row.get("pending_status") is None
            else RecordingStatus(row["pending_status"]),
            encryption=row["encryption"],
            node=row.get("node"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogueError(f"recording {row.get('id')} has a malformed row: {exc}") from exc
