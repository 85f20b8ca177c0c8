"""Consent withdrawal and erasure (GDPR Art. 7(3), 17; permission ``erase``).

- ``POST /consent-withdrawals``: a person withdraws consent by number (any written form): the tenant's
  consent-based recordings of that number are erased, and nothing else; those under a legal hold, or still
  being recorded, are marked withdrawn and erased once they may be. One withdrawal record proves it.
- ``DELETE /recordings/{id_or_reference}``: erase one recording. A legal hold (Art. 18) or a statutory
  retention floor (Art. 17(3)(b)) refuses it with a 409 problem whose detail gives the reason (and the hold);
  the refusal is audited (``recording.erase_refused``) like the erasure (``recording.erase``).

:class:`storage.erasure.ErasureService` does the work and audits it. Another tenant's recording is 404, like a
missing one, and the attempt is audited as ``recording.access_denied``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from storage.disposal import Disposal, DisposalReason
from storage.errors import NotFoundError
from storage.principal import Permission, Principal
from storage.recording_search import get_recording
from storage.reference import normalize_reference

from .deps import client_origin, require, services
from .fields import TEXT, Number
from .problems import not_found
from .refusals import ERRORS, denied, no_store
from .services import ApiServices

__all__ = ["router"]

router = APIRouter(tags=["erasure"], dependencies=[Depends(no_store)])

Api = Annotated[ApiServices, Depends(services)]
Eraser = Annotated[Principal, Depends(require(Permission.ERASE))]
Ref = Annotated[
    str, Path(max_length=100, description="the recording's uuid or its reference (HT-7K3M-Q9RX, in any case)")
]
Reason = Annotated[
    str,
    Query(
        min_length=1,
        max_length=500,
        pattern=TEXT,
        description="why, for the audit trail: e.g. the erasure request's reference",
    ),
]


class WithdrawalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: Number


class ErasedRecording(BaseModel):
    recording_id: UUID
    reference: str
    reason: DisposalReason
    retention_class: str | None
    disposed_at: datetime
    disposed_by: str
    files: int = Field(description="files removed: the recording and its renditions")
    bytes: int

    @classmethod
    def of(cls, disposal: Disposal) -> ErasedRecording:
        return cls(
            recording_id=disposal.recording_id,
            reference=disposal.reference,
            reason=disposal.reason,
            retention_class=disposal.retention_class,
            disposed_at=disposal.disposed_at,
            disposed_by=disposal.disposed_by,
            files=disposal.files,
            bytes=disposal.bytes,
        )


class WithdrawalOut(BaseModel):
    id: int
    number: str = Field(description="the E.164 form")
    withdrawn_at: datetime
    erased: list[ErasedRecording]
    held: list[UUID] = Field(description="under a legal hold: marked withdrawn, erased once released")
    in_progress: list[UUID] = Field(description="still being recorded: marked withdrawn, erased at the end")


@router.post(
    "/consent-withdrawals",
    status_code=201,
    response_model=WithdrawalOut,
    summary="Withdraw consent by number: its consent-based recordings are erased, nothing else",
    responses=ERRORS,
)
async def withdraw_consent(
    api: Api, principal: Eraser, request: Request, body: WithdrawalIn
) -> WithdrawalOut:
    withdrawal = await api.erasure.withdraw_consent(
        principal.tenant_id, body.number, principal.actor(client_origin(request))
    )
    return WithdrawalOut(
        id=withdrawal.id,
        number=withdrawal.number,
        withdrawn_at=withdrawal.withdrawn_at,
        erased=[ErasedRecording.of(disposal) for disposal in withdrawal.erased],
        held=list(withdrawal.held),
        in_progress=list(withdrawal.in_progress),
    )


def _canonical(text: str) -> str:
    """The id the audit trail names: the uuid or the reference in canonical form, else the text as sent."""
    try:
        return str(UUID(text))
    except ValueError:
        return normalize_reference(text) or text


@router.delete(
    "/recordings/{id_or_reference}",
    response_model=ErasedRecording,
    summary="Erase one recording; refused (409, with the reason) under a legal hold or a statutory floor",
    responses=ERRORS,
)
async def erase_recording(
    api: Api,
    principal: Eraser,
    request: Request,
    id_or_reference: Ref,
    reason: Reason = "erasure request",
) -> ErasedRecording:
    recording = await get_recording(api.pool, principal.tenant_id, id_or_reference)
    if recording is None:
        requested = _canonical(id_or_reference.strip())
        raise await denied(api, request, principal, kind="recording", object_id=requested, noun="recording")
    try:
        disposal = await api.erasure.erase(
            principal.tenant_id, recording.id, principal.actor(client_origin(request)), reason.strip()
        )
    except NotFoundError:  # erased meanwhile by someone else
        raise not_found("recording") from None
    return ErasedRecording.of(disposal)
