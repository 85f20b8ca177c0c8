"""The tenant's audit trail (permission ``audit``): read-only, newest first, and the hash chain's check.

``GET /audit`` lists the entries about the caller's tenant (every play, download, export, change, erasure
and refused access), filtered by action, object, actor and time, paged back by sequence number.
``GET /audit/verify`` checks the hash chain. The chain is one for the whole catalogue (each entry's hash
covers the entry before it, whatever its tenant), so the check walks the whole chain; its answer gives
counts, sequence numbers, hashes and what is wrong where, never another tenant's entries themselves.

Reading the trail is itself audited, once per request (``audit.list``), as are the lists of holds
(``hold.list``) and of access-request cases (``access_request.list``): :func:`audited_read` records them
through the same audit log as ``recording.play``, in the reader's tenant. An entry says which filters were
used and how many items were answered, never the filter values (an e-mail searched for is personal data).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from storage.audit import AuditEntry, StoredEntry
from storage.audit_verify import AuditQuery, ChainProblem, verify_chain
from storage.principal import Permission, Principal

from .deps import client_origin, require, services
from .fields import TEXT, Moment
from .paging import Cursor, Limit, bad_cursor, decode_cursor, encode_cursor
from .refusals import ERRORS
from .services import ApiServices

__all__ = ["audited_read", "router"]

router = APIRouter(tags=["audit"])

Api = Annotated[ApiServices, Depends(services)]
Auditor = Annotated[Principal, Depends(require(Permission.AUDIT))]
_BIGINT = 2**63 - 1


async def audited_read(
    api: ApiServices, request: Request, principal: Principal, action: str, details: Mapping[str, Any]
) -> None:
    """Record that ``principal`` read a list (``hold.list``, ``access_request.list``, ``audit.list``): one
    entry in its tenant's trail, in a transaction of its own like a playback's. Call it after the read and
    before answering, so a read the trail cannot record is not answered."""
    await api.audit.record(
        api.pool,
        AuditEntry(
            actor=principal.actor(client_origin(request)),
            action=action,
            tenant_id=principal.tenant_id,
            details=dict(details),
        ),
    )


def _filter(description: str, max_length: int = 200) -> Any:
    return Query(min_length=1, max_length=max_length, pattern=TEXT, description=description)


class AuditEntryOut(BaseModel):
    seq: int = Field(description="its place in the chain")
    at: datetime
    actor: str = Field(description="a user's e-mail, api-key:<name>, system:<component> or cli:<user>")
    origin: str | None = Field(description="the client address, 'cli' or 'server'")
    action: str = Field(description="<object>.<verb>, e.g. recording.play")
    object_kind: str | None
    object_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, e: StoredEntry) -> AuditEntryOut:
        return cls(
            seq=e.seq,
            at=e.at,
            actor=e.actor,
            origin=e.origin,
            action=e.action,
            object_kind=e.object_kind,
            object_id=e.object_id,
            details=dict(e.details),
            prev_hash=e.prev_hash,
            hash=e.hash,
        )


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None


class ChainCheck(BaseModel):
    scope: Literal["whole_chain"] = Field(
        description="the chain links every tenant's entries, so the whole of it is checked"
    )
    ok: bool
    from_seq: int
    entries: int = Field(description="entries that passed every check")
    last_seq: int | None = Field(description="the last entry that passed")
    head_hash: str | None = Field(description="its hash: note it elsewhere to detect a truncated log later")
    broken_seq: int | None = Field(description="the first entry that failed (for a gap: the first missing)")
    problem: ChainProblem | None
    detail: str | None


@router.get(
    "/audit", response_model=AuditPage, summary="The tenant's audit trail, newest first", responses=ERRORS
)
async def list_entries(
    api: Api,
    principal: Auditor,
    request: Request,
    action: Annotated[str | None, _filter("e.g. recording.play", 100)] = None,
    object_kind: Annotated[str | None, _filter("e.g. recording, hold, access_request", 100)] = None,
    object_id: Annotated[str | None, _filter("the object's id, e.g. a recording's uuid")] = None,
    actor: Annotated[str | None, _filter("e.g. a user's e-mail")] = None,
    since: Annotated[Moment | None, Query(description="at or after")] = None,
    until: Annotated[Moment | None, Query(description="before")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> AuditPage:
    before = None
    if cursor is not None:
        position = decode_cursor("audit", cursor)
        if len(position) != 1 or not isinstance(position[0], int) or not 1 <= position[0] <= _BIGINT:
            raise bad_cursor()
        before = position[0]
    entries = await AuditQuery(api.pool).list(
        tenant_id=principal.tenant_id,
        action=action,
        object_kind=object_kind,
        object_id=object_id,
        actor=actor,
        since=since,
        until=until,
        before_seq=before,
        limit=limit + 1,
    )
    page = entries[:limit]
    more = len(entries) > limit
    filters = {
        "action": action,
        "object_kind": object_kind,
        "object_id": object_id,
        "actor": actor,
        "since": since,
        "until": until,
        "cursor": cursor,
    }
    used = [name for name, value in filters.items() if value is not None]
    await audited_read(api, request, principal, "audit.list", {"by": used, "listed": len(page)})
    return AuditPage(
        items=[AuditEntryOut.of(e) for e in page],
        next_cursor=encode_cursor("audit", (page[-1].seq,)) if more and page else None,
    )


@router.get(
    "/audit/verify",
    response_model=ChainCheck,
    summary="Check the audit trail's hash chain (the whole chain: it links every tenant's entries)",
    responses=ERRORS,
)
async def verify(
    api: Api,
    principal: Auditor,
    from_seq: Annotated[int, Query(ge=1, le=_BIGINT, description="check from this entry on")] = 1,
) -> ChainCheck:
    report = await verify_chain(api.pool, from_seq=from_seq)
    return ChainCheck(
        scope="whole_chain",
        ok=report.ok,
        from_seq=report.from_seq,
        entries=report.entries,
        last_seq=report.last_seq,
        head_hash=report.head_hash,
        broken_seq=report.broken_seq,
        problem=report.problem,
        detail=report.detail,
    )
