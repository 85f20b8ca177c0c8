"""Access requests (GDPR Art. 15; permission ``access_request``): a person asks for their recordings.

A case is opened with what the person gave: a phone number in any written form and/or a recording
reference, maybe a time window, and who asked (where the copy goes). It is due one calendar month after it
arrived (Art. 12(3)); the list shows the due date and whether it is overdue. The case's page lists the
recordings found now (the search is audited as ``recording.search``); export writes the bundle (both parties'
audio and the metadata, :mod:`storage.bundle`) and answers with the zip itself, audited as
``access_request.export`` with a ``recording.export`` per recording; then the copy is marked delivered, and
the case closed (which removes the bundle file). No case is asked for, or filtered by, a reason.

:class:`storage.access_requests.AccessRequests` does the work and audits it; another tenant's case is 404,
like a missing one, and the attempt is audited as ``access_request.access_denied``. Listing the cases is
audited too (``access_request.list``: the state asked for and how many were answered).
"""

from __future__ import annotations

import base64
import enum
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from storage.access_requests import AccessRequest
from storage.access_rules import AccessRequestStatus
from storage.errors import NotFoundError
from storage.models import ParticipantRole, RecordingStatus
from storage.principal import Permission, Principal
from storage.retention_class import Basis
from storage.subject_data import SubjectRecording

from .audit_routes import audited_read
from .deps import client_origin, require, services
from .fields import Moment, Number, text_field
from .paging import Cursor, Limit, Position, micros, page_of
from .problems import ApiProblem
from .refusals import ERRORS, NO_STORE, PROBLEM, denied, no_store
from .services import ApiServices

__all__ = ["router"]

router = APIRouter(tags=["access requests"], dependencies=[Depends(no_store)])

Api = Annotated[ApiServices, Depends(services)]
Officer = Annotated[Principal, Depends(require(Permission.ACCESS_REQUEST))]
_ZIP = "application/zip"


class CaseFilter(enum.StrEnum):
    OPEN = "open"  # not answered yet (open or exported), soonest due first
    OVERDUE = "overdue"  # not answered and past the due date
    ALL = "all"  # every case, newest first


class AccessRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requester: str = text_field(500, "who asked: name, e-mail or postal address the copy goes to")
    number: Number | None = None
    reference: str | None = Field(
        default=None, min_length=1, max_length=40, pattern=r"^[^\x00]*$", description="e.g. HT-7K3M-Q9RX"
    )
    from_at: Moment | None = Field(default=None, alias="from", description="calls started at or after")
    until: Moment | None = Field(default=None, description="calls started before")
    received_at: Moment | None = Field(default=None, description="when the request arrived (default: now)")
    notes: str | None = text_field(2000, default=None)


class DeliveryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delivered_at: Moment | None = Field(
        default=None, description="when the copy was handed over (default: now)"
    )
    note: str | None = text_field(2000, "how it was handed over", default=None)


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = text_field(2000, "why, e.g. the person withdrew the request", default=None)


class AccessRequestOut(BaseModel):
    id: UUID
    status: AccessRequestStatus
    requester: str
    number: str | None = Field(description="the E.164 form searched")
    reference: str | None
    from_at: datetime | None = Field(serialization_alias="from")
    until: datetime | None
    received_at: datetime
    due_at: datetime = Field(description="one calendar month after it arrived (GDPR Art. 12(3))")
    overdue: bool
    recording_ids: list[UUID] = Field(description="the recordings in the last bundle exported")
    bundle_sha256: str | None
    exported_at: datetime | None
    delivered_at: datetime | None
    created_by: str
    notes: str | None

    @classmethod
    def of(cls, case: AccessRequest, now: datetime) -> AccessRequestOut:
        return cls(
            id=case.id,
            status=case.status,
            requester=case.requester,
            number=case.number,
            reference=case.reference,
            from_at=case.since,
            until=case.until,
            received_at=case.received_at,
            due_at=case.due_at,
            overdue=case.overdue(now),
            recording_ids=list(case.recording_ids),
            bundle_sha256=case.bundle_sha256,
            exported_at=case.exported_at,
            delivered_at=case.delivered_at,
            created_by=case.created_by,
            notes=case.notes,
        )


class AccessRequestPage(BaseModel):
    items: list[AccessRequestOut]
    next_cursor: str | None


class FoundParticipant(BaseModel):
    aor: str | None
    name: str | None
    role: ParticipantRole


class FoundRecording(BaseModel):
    id: UUID
    reference: str
    status: RecordingStatus
    started_at: datetime
    duration_seconds: float | None
    numbers: list[str]
    participants: list[FoundParticipant]
    basis: Basis | None
    purpose: str | None
    retention_class: str | None
    expires_at: datetime | None
    consent_state: str
    has_audio: bool

    @classmethod
    def of(cls, found: SubjectRecording) -> FoundRecording:
        r = found.recording
        return cls(
            id=r.id,
            reference=r.reference,
            status=r.status,
            started_at=r.started_at,
            duration_seconds=r.duration_seconds,
            numbers=list(r.numbers),
            participants=[FoundParticipant(aor=p.aor, name=p.name, role=p.role) for p in r.participants],
            basis=None if r.basis is None else Basis(r.basis),
            purpose=r.purpose,
            retention_class=r.retention_class,
            expires_at=r.expires_at,
            consent_state=r.consent_state,
            has_audio=bool(r.file_path),
        )


class AccessRequestDetail(AccessRequestOut):
    recordings: list[FoundRecording] = Field(description="what the case's criteria find now, oldest first")


def _soonest_due(case: AccessRequest) -> Position:
    return (micros(case.due_at), micros(case.received_at), str(case.id))


def _newest_first(case: AccessRequest) -> Position:
    return (-micros(case.received_at), str(case.id))


async def _refused(api: ApiServices, request: Request, principal: Principal, case_id: UUID) -> ApiProblem:
    return await denied(
        api, request, principal, kind="access_request", object_id=str(case_id), noun="access request"
    )


@router.post(
    "/access-requests",
    status_code=201,
    response_model=AccessRequestOut,
    response_model_by_alias=True,
    summary="Open a case for a number (any written form) and/or a reference; due in one calendar month",
    responses=ERRORS,
)
async def open_case(
    api: Api, principal: Officer, request: Request, body: AccessRequestIn
) -> AccessRequestOut:
    case = await api.access.open(
        principal.tenant_id,
        requester=body.requester,
        number=body.number,
        reference=body.reference,
        since=body.from_at,
        until=body.until,
        received_at=body.received_at,
        notes=body.notes,
        actor=principal.actor(client_origin(request)),
    )
    return AccessRequestOut.of(case, api.now())


@router.get(
    "/access-requests",
    response_model=AccessRequestPage,
    response_model_by_alias=True,
    summary="The tenant's cases: unanswered by due date (open, overdue), or all newest first",
    responses=ERRORS,
)
async def list_cases(
    api: Api,
    principal: Officer,
    request: Request,
    state: CaseFilter = CaseFilter.OPEN,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> AccessRequestPage:
    now = api.now()
    cases = await api.access.list(principal.tenant_id, include_finished=state is CaseFilter.ALL)
    if state is CaseFilter.OVERDUE:
        cases = [case for case in cases if case.overdue(now)]
    order = _newest_first if state is CaseFilter.ALL else _soonest_due
    page, next_cursor = page_of(cases, order, kind=f"access-requests:{state}", cursor=cursor, limit=limit)
    details = {"state": state.value, "listed": len(page)}
    await audited_read(api, request, principal, "access_request.list", details)
    return AccessRequestPage(items=[AccessRequestOut.of(case, now) for case in page], next_cursor=next_cursor)


@router.get(
    "/access-requests/{case_id}",
    response_model=AccessRequestDetail,
    response_model_by_alias=True,
    summary="One case, with the recordings its criteria find now (the search is audited)",
    responses=ERRORS,
)
async def get_case(api: Api, principal: Officer, request: Request, case_id: UUID) -> AccessRequestDetail:
    try:
        case = await api.access.show(principal.tenant_id, case_id)
    except NotFoundError:
        raise await _refused(api, request, principal, case_id) from None
    found = await api.access.search(
        principal.tenant_id,
        number=case.number,
        reference=case.reference,
        since=case.since,
        until=case.until,
        actor=principal.actor(client_origin(request)),
    )
    summary = AccessRequestOut.of(case, api.now())
    return AccessRequestDetail(
        **summary.model_dump(), recordings=[FoundRecording.of(subject) for subject in found]
    )


_EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {_ZIP: {"schema": {"type": "string", "format": "binary"}}},
        "description": "the bundle: audio of both parties, metadata, consent proofs, a summary, a manifest",
    },
    **dict.fromkeys((401, 403, 404, 410, 422), PROBLEM),
}


@router.post(
    "/access-requests/{case_id}/export",
    response_class=FileResponse,
    summary="Make the copy: the bundle of every recording found, as a zip (audited); may be made again",
    responses=_EXPORT_RESPONSES,
)
async def export_bundle(api: Api, principal: Officer, request: Request, case_id: UUID) -> FileResponse:
    try:
        result = await api.access.export(
            principal.tenant_id, case_id, actor=principal.actor(client_origin(request))
        )
    except NotFoundError:
        raise await _refused(api, request, principal, case_id) from None
    bundle = result.bundle
    headers = {
        **NO_STORE,
        # RFC 9530 §3: the client checks what it saved against the case's recorded hash.
        "Repr-Digest": f"sha-256=:{base64.b64encode(bytes.fromhex(bundle.sha256)).decode()}:",
    }
    return FileResponse(bundle.path, media_type=_ZIP, filename=bundle.path.name, headers=headers)


@router.post(
    "/access-requests/{case_id}/delivered",
    response_model=AccessRequestOut,
    response_model_by_alias=True,
    summary="The copy was handed over: the request is answered",
    responses=ERRORS,
)
async def mark_delivered(
    api: Api,
    principal: Officer,
    request: Request,
    case_id: UUID,
    body: Annotated[DeliveryIn | None, Body()] = None,
) -> AccessRequestOut:
    delivery = body or DeliveryIn()
    try:
        case = await api.access.mark_delivered(
            principal.tenant_id,
            case_id,
            actor=principal.actor(client_origin(request)),
            delivered_at=delivery.delivered_at,
            note=delivery.note,
        )
    except NotFoundError:
        raise await _refused(api, request, principal, case_id) from None
    return AccessRequestOut.of(case, api.now())


@router.post(
    "/access-requests/{case_id}/close",
    response_model=AccessRequestOut,
    response_model_by_alias=True,
    summary="Close the case; its bundle file is removed (its SHA-256 stays on record)",
    responses=ERRORS,
)
async def close_case(
    api: Api,
    principal: Officer,
    request: Request,
    case_id: UUID,
    body: Annotated[CloseIn | None, Body()] = None,
) -> AccessRequestOut:
    closing = body or CloseIn()
    try:
        case = await api.access.close(
            principal.tenant_id, case_id, actor=principal.actor(client_origin(request)), note=closing.note
        )
    except NotFoundError:
        raise await _refused(api, request, principal, case_id) from None
    return AccessRequestOut.of(case, api.now())
