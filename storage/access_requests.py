"""Access requests (GDPR Art. 15): finding a person's recordings, and the case that answers them in time.

A case is opened with what the person gave (a phone number in any written form and/or a recording
reference, maybe a time window), who asked and when it arrived; it is due one calendar month later
(Art. 12(3), :func:`storage.access_rules.due_at`). Export collects every matching recording of the tenant
into a bundle (:mod:`storage.bundle`) and records its path, SHA-256 and the recordings it holds; then the copy
is marked delivered, and the case closed (which removes the bundle file: the copy has left, and a second
copy must not outlive the recordings' own retention). No case has, or is filtered by, a reason: a copy is
given without asking why.

Every change is in the audit trail, and so is every search and every export's reading of audio. Audit
details hold identifiers and counts only, never the number searched or the requester.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from .access_rules import (
    DEADLINE_ZONE,
    AccessRequestStatus,
    CaseAction,
    SearchCriteria,
    due_at,
    extended_due_at,
    is_overdue,
    next_status,
    parse_criteria,
)
from .audio_opener import AudioOpener, FileOpener
from .audit import Actor, AuditEntry, AuditLog
from .blobs import FileBlobStore
from .bundle import BundleItem, BundleRequest, BundleResult, write_bundle
from .errors import CatalogueError, NotFoundError, translated
from .models import format_timestamp
from .phone import DEFAULT_REGION
from .renditions import Renditions
from .scope import tenant_sql
from .subject_data import SubjectData, SubjectRecording
from .tenant_lookup import find_tenant

__all__ = ["AccessRequest", "AccessRequests", "ExportResult", "RecipientLookup"]

# Who received copies of these recordings through the recording system (CRM, SFTP delivery targets): the
# delivery workers plug a lookup in here; until then there are none.
RecipientLookup = Callable[[UUID | None, Sequence[UUID]], Awaitable[Sequence[str]]]

_SCOPE = tenant_sql("tenant_id", 1)
_INSERT = """
    INSERT INTO access_requests (id, tenant_id, number, reference, from_at, until_at, requester, received_at,
                                 due_at, created_by, notes)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
    RETURNING *
"""
_GET = f"SELECT * FROM access_requests WHERE {_SCOPE} AND id = $2"  # noqa: S608 (constant fragment)
_LOCK = f"SELECT * FROM access_requests WHERE {_SCOPE} AND id = $2 FOR UPDATE"  # noqa: S608
_LIST_OPEN = f"""
    SELECT * FROM access_requests WHERE {_SCOPE} AND status IN ('open', 'exported')
    ORDER BY due_at, received_at, id
"""  # noqa: S608
_LIST_ALL = f"SELECT * FROM access_requests WHERE {_SCOPE} ORDER BY received_at DESC, id"  # noqa: S608
_APPEND_NOTE = (
    "CASE WHEN $3::text IS NULL THEN notes WHEN notes IS NULL THEN $3 ELSE notes || E'\\n' || $3 END"
)
_EXPORTED = """
    UPDATE access_requests SET status = 'exported', recording_ids = $2, bundle_path = $3, bundle_sha256 = $4,
        exported_at = $5
    WHERE id = $1 RETURNING *
"""
_DELIVERED = f"""
    UPDATE access_requests SET status = 'delivered', delivered_at = $2, notes = {_APPEND_NOTE}
    WHERE id = $1 RETURNING *
"""  # noqa: S608
_EXTENDED = """
    UPDATE access_requests SET due_at = $2, extended_at = $3, extension_reason = $4
    WHERE id = $1 RETURNING *
"""
_CLOSED = f"""
    UPDATE access_requests SET status = 'closed', closed_at = $3, notes = {_APPEND_NOTE.replace("$3", "$2")}
    WHERE id = $1 RETURNING *
"""  # noqa: S608


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessRequest:
    id: UUID
    tenant_id: UUID | None
    number: str | None  # the E.164 key searched
    reference: str | None
    since: datetime | None
    until: datetime | None
    requester: str  # how the person identified themselves / where the copy goes
    received_at: datetime
    due_at: datetime
    status: AccessRequestStatus
    recording_ids: tuple[UUID, ...] = ()
    bundle_path: str | None = None
    bundle_sha256: str | None = None
    exported_at: datetime | None = None
    delivered_at: datetime | None = None
    created_by: str = ""
    notes: str | None = None
    extended_at: datetime | None = None  # Art. 12(3): the deadline was extended then ...
    extension_reason: str | None = None  # ... for this reason, told to the person
    closed_at: datetime | None = None

    def overdue(self, now: datetime) -> bool:
        return is_overdue(self.status, self.due_at, now)

    def criteria(self) -> SearchCriteria:
        return SearchCriteria(
            number=self.number, reference=self.reference, since=self.since, until=self.until
        )

    def to_json(self, *, now: datetime | None = None) -> dict[str, Any]:
        """Every key always present; ``overdue`` only when ``now`` is given."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "tenant_id": None if self.tenant_id is None else str(self.tenant_id),
            "number": self.number,
            "reference": self.reference,
            "from": format_timestamp(self.since),
            "until": format_timestamp(self.until),
            "requester": self.requester,
            "received_at": format_timestamp(self.received_at),
            "due_at": format_timestamp(self.due_at),
            "status": self.status.value,
            "recording_ids": [str(recording_id) for recording_id in self.recording_ids],
            "bundle_path": self.bundle_path,
            "bundle_sha256": self.bundle_sha256,
            "exported_at": format_timestamp(self.exported_at),
            "delivered_at": format_timestamp(self.delivered_at),
            "created_by": self.created_by,
            "notes": self.notes,
            "extended_at": format_timestamp(self.extended_at),
            "extension_reason": self.extension_reason,
            "closed_at": format_timestamp(self.closed_at),
        }
        if now is not None:
            data["overdue"] = self.overdue(now)
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportResult:
    request: AccessRequest
    bundle: BundleResult


class AccessRequests:
    """The access-request service, for one controller at a time: a tenant, or (``tenant_id`` None) the calls
    no tenant claimed (the system policy's), whose controller is the operator (``system_controller``)."""

    def __init__(
        self,
        pool: Any,
        *,
        audit: AuditLog,
        open_audio: AudioOpener,
        open_file: FileOpener,
        bundle_dir: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        recipients: RecipientLookup | None = None,
        zone: ZoneInfo = DEADLINE_ZONE,
        system_controller: str = "the operator of the recording service",
    ) -> None:
        self._pool = pool
        self._audit = audit
        self._open_audio = open_audio
        self._open_file = open_file
        self._bundle_dir = Path(bundle_dir)
        self._bundles = FileBlobStore(self._bundle_dir)
        self._clock = clock
        self._recipients = recipients
        self._zone = zone
        self._system_controller = system_controller

    async def search(
        self,
        tenant_id: UUID | None,
        *,
        number: str | None = None,
        reference: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        actor: Actor,
    ) -> builtins.list[SubjectRecording]:
        """The tenant's recordings of ``number`` (any written form, read in the tenant's region) within the
        window, and the one named by ``reference``; oldest first. ValueError for unusable criteria."""
        region = await self._region(tenant_id)
        criteria = parse_criteria(number=number, reference=reference, since=since, until=until, region=region)
        found = await SubjectData(self._pool).search(tenant_id, criteria)
        await self._audit.record(
            self._pool,
            AuditEntry(
                actor=actor,
                action="recording.search",
                tenant_id=tenant_id,
                details={**_criteria_shape(criteria), "found": len(found)},
            ),
        )
        return found

    async def open(
        self,
        tenant_id: UUID | None,
        *,
        requester: str,
        number: str | None = None,
        reference: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        received_at: datetime | None = None,
        notes: str | None = None,
        actor: Actor,
    ) -> AccessRequest:
        """Open a case; it is due one calendar month after ``received_at`` (default: now)."""
        if not requester.strip():
            raise ValueError("say who asked (name, e-mail or postal address the copy goes to)")
        now = self._clock()
        received = now if received_at is None else received_at
        if received.utcoffset() is None:
            raise ValueError("received_at must be timezone-aware")
        if received > now:
            raise ValueError("a request cannot be received in the future")
        region = await self._region(tenant_id)
        criteria = parse_criteria(number=number, reference=reference, since=since, until=until, region=region)
        due = due_at(received, self._zone)
        request_id = uuid4()
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("open an access request"):
                row = await conn.fetchrow(
                    _INSERT,
                    request_id,
                    tenant_id,
                    criteria.number,
                    criteria.reference,
                    criteria.since,
                    criteria.until,
                    requester.strip(),
                    received.astimezone(UTC),
                    due,
                    actor.name,
                    notes,
                )
            await self._audit.append(
                conn,
                AuditEntry(
                    actor=actor,
                    action="access_request.open",
                    tenant_id=tenant_id,
                    object_kind="access_request",
                    object_id=str(request_id),
                    details={**_criteria_shape(criteria), "due_at": format_timestamp(due)},
                ),
            )
        return _request(row)

    async def list(
        self, tenant_id: UUID | None, *, include_finished: bool = False
    ) -> builtins.list[AccessRequest]:
        """Unanswered cases (open, exported) by due date, soonest first; with ``include_finished`` every case,
        newest first."""
        with translated("list access requests"):
            rows = await self._pool.fetch(_LIST_ALL if include_finished else _LIST_OPEN, tenant_id)
        return [_request(row) for row in rows]

    async def show(self, tenant_id: UUID | None, request_id: UUID) -> AccessRequest:
        with translated("look up an access request"):
            row = await self._pool.fetchrow(_GET, tenant_id, request_id)
        if row is None:
            raise NotFoundError(f"no access request {request_id}")
        return _request(row)

    async def export(self, tenant_id: UUID | None, request_id: UUID, *, actor: Actor) -> ExportResult:
        """Collect the case's recordings into a new bundle and mark the case exported."""
        case = await self.show(tenant_id, request_id)
        next_status(case.status, CaseAction.EXPORT)
        controller = self._system_controller
        if tenant_id is not None:
            controller = (await find_tenant(self._pool, tenant_id)).name
        subjects = await SubjectData(self._pool).search(tenant_id, case.criteria())
        ids = [subject.recording.id for subject in subjects]
        proofs = await SubjectData(self._pool).consent_proofs(ids)
        renditions = Renditions(self._pool)
        items = [
            BundleItem(
                subject=subject,
                renditions=tuple(await renditions.for_recording(subject.recording.id)),
                consent_proofs=tuple(proofs.get(subject.recording.id, ())),
            )
            for subject in subjects
        ]
        recipients = () if self._recipients is None else tuple(await self._recipients(tenant_id, ids))
        generated_at = self._clock().astimezone(UTC)
        self._bundle_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self._bundle_dir / f"access-request-{case.id}-{generated_at:%Y%m%dT%H%M%SZ}.zip"
        bundle = await asyncio.to_thread(
            write_bundle,
            target,
            request=BundleRequest(
                request_id=case.id,
                controller=controller,
                received_at=case.received_at,
                number=case.number,
                reference=case.reference,
                since=case.since,
                until=case.until,
                recipients=recipients,
            ),
            items=items,
            generated_at=generated_at,
            open_audio=self._open_audio,
            open_file=self._open_file,
        )
        try:
            updated = await self._record_export(tenant_id, case, bundle, subjects, generated_at, actor)
        except BaseException:
            bundle.path.unlink(missing_ok=True)
            raise
        if case.bundle_path and case.bundle_path != str(bundle.path):
            self._remove_bundle(case.bundle_path)  # the earlier copy, replaced by this one
        return ExportResult(request=updated, bundle=bundle)

    async def mark_delivered(
        self,
        tenant_id: UUID | None,
        request_id: UUID,
        *,
        actor: Actor,
        delivered_at: datetime | None = None,
        note: str | None = None,
    ) -> AccessRequest:
        """The copy was handed over: the request is answered."""
        when = self._clock() if delivered_at is None else delivered_at
        if when.utcoffset() is None:
            raise ValueError("delivered_at must be timezone-aware")
        return await self._move(tenant_id, request_id, CaseAction.DELIVER, actor, _DELIVERED, when, note)

    async def close(
        self, tenant_id: UUID | None, request_id: UUID, *, actor: Actor, note: str | None = None
    ) -> AccessRequest:
        """Close the case and remove its bundle file (its path and SHA-256 stay as the record of what was
        sent)."""
        closed = await self._move(
            tenant_id, request_id, CaseAction.CLOSE, actor, _CLOSED, note, self._clock()
        )
        if closed.bundle_path:
            self._remove_bundle(closed.bundle_path)
        return closed

    async def extend(
        self, tenant_id: UUID | None, request_id: UUID, *, months: int, reason: str, actor: Actor
    ) -> AccessRequest:
        """Extend the deadline by one or two months (Art. 12(3)): once, before the first deadline, with the
        reason the person is told. :class:`LifecycleError` when the case cannot be extended."""
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("extend an access request"):
                row = await conn.fetchrow(_LOCK, tenant_id, request_id)
            if row is None:
                raise NotFoundError(f"no access request {request_id}")
            case = _request(row)
            now = self._clock()
            due = extended_due_at(
                status=case.status,
                received_at=case.received_at,
                due=case.due_at,
                now=now,
                months=months,
                reason=reason,
                zone=self._zone,
            )
            with translated("extend an access request"):
                row = await conn.fetchrow(_EXTENDED, request_id, due, now, reason.strip())
            await self._audit.append(
                conn,
                AuditEntry(
                    actor=actor,
                    action="access_request.extend",
                    tenant_id=tenant_id,
                    object_kind="access_request",
                    object_id=str(request_id),
                    details={
                        "from": format_timestamp(case.due_at),
                        "to": format_timestamp(due),
                        "months": months,
                    },
                ),
            )
        return _request(row)

    async def _move(
        self,
        tenant_id: UUID | None,
        request_id: UUID,
        action: CaseAction,
        actor: Actor,
        statement: str,
        *arguments: Any,
    ) -> AccessRequest:
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("update an access request"):
                row = await conn.fetchrow(_LOCK, tenant_id, request_id)
            if row is None:
                raise NotFoundError(f"no access request {request_id}")
            before = _request(row)
            after = next_status(before.status, action)
            with translated("update an access request"):
                row = await conn.fetchrow(statement, request_id, *arguments)
            await self._audit.append(
                conn,
                AuditEntry(
                    actor=actor,
                    action=f"access_request.{action.value}",
                    tenant_id=tenant_id,
                    object_kind="access_request",
                    object_id=str(request_id),
                    details={"from": before.status.value, "to": after.value},
                ),
            )
        return _request(row)

    async def _record_export(
        self,
        tenant_id: UUID | None,
        case: AccessRequest,
        bundle: BundleResult,
        subjects: Sequence[SubjectRecording],
        generated_at: datetime,
        actor: Actor,
    ) -> AccessRequest:
        async with self._pool.acquire() as conn, conn.transaction():
            with translated("record an export"):
                row = await conn.fetchrow(_LOCK, tenant_id, case.id)
            if row is None:
                raise NotFoundError(f"no access request {case.id}")
            next_status(_request(row).status, CaseAction.EXPORT)  # a concurrent close wins
            with translated("record an export"):
                row = await conn.fetchrow(
                    _EXPORTED,
                    case.id,
                    list(bundle.recording_ids),
                    str(bundle.path),
                    bundle.sha256,
                    generated_at,
                )
            await self._audit.append(
                conn,
                AuditEntry(
                    actor=actor,
                    action="access_request.export",
                    tenant_id=tenant_id,
                    object_kind="access_request",
                    object_id=str(case.id),
                    details={
                        "recordings": len(bundle.recording_ids),
                        "files": len(bundle.files),
                        "bytes": bundle.size,
                        "sha256": bundle.sha256,
                        "bundle": bundle.path.name,
                    },
                ),
            )
            for subject in subjects:  # each recording's audio was read for the copy
                await self._audit.append(
                    conn,
                    AuditEntry(
                        actor=actor,
                        action="recording.export",
                        tenant_id=tenant_id,
                        object_kind="recording",
                        object_id=str(subject.recording.id),
                        details={"access_request": str(case.id), "reference": subject.recording.reference},
                    ),
                )
        return _request(row)

    async def _region(self, tenant_id: UUID | None) -> str:
        if tenant_id is None:
            return DEFAULT_REGION
        return (await find_tenant(self._pool, tenant_id)).region

    def _remove_bundle(self, path: str) -> None:
        """Remove a bundle file, only ever inside the bundle directory (a path outside it is left alone)."""
        with contextlib.suppress(ValueError):
            self._bundles.remove(Path(path).absolute())


def _criteria_shape(criteria: SearchCriteria) -> dict[str, Any]:
    """What kind of search it was, without the number itself (the audit trail keeps no personal data)."""
    return {
        "by": [name for name in ("number", "reference") if getattr(criteria, name) is not None],
        "window": criteria.since is not None or criteria.until is not None,
    }


def _request(row: Mapping[str, Any]) -> AccessRequest:
    try:
        return AccessRequest(
            id=row["id"],
            tenant_id=row["tenant_id"],
            number=row["number"],
            reference=row["reference"],
            since=row["from_at"],
            until=row["until_at"],
            requester=row["requester"],
            received_at=row["received_at"],
            due_at=row["due_at"],
            status=AccessRequestStatus(row["status"]),
            recording_ids=tuple(row["recording_ids"]),
            bundle_path=row["bundle_path"],
            bundle_sha256=row["bundle_sha256"],
            exported_at=row["exported_at"],
            delivered_at=row["delivered_at"],
            created_by=row["created_by"],
            notes=row["notes"],
            extended_at=row["extended_at"],
            extension_reason=row["extension_reason"],
            closed_at=row["closed_at"],
        )
    except (KeyError, ValueError) as exc:
        raise CatalogueError(f"access request {row.get('id')} has a malformed row: {exc}") from exc
