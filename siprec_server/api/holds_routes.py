"""Legal holds (GDPR Art. 18; permission ``hold``): list, read, place on a number, and the two-person release.

A hold on a number covers the tenant's calls of that number (any written form), optionally only those started
within ``[from_at, until_at)``, the ones recorded so far and those still to come; a hold on one recording is
placed through ``POST /recordings/{id_or_reference}/holds``. Release takes two people: one asks
(``release-request``), a different one approves (``release-approval``); the one who asked is refused with a
409 problem. :class:`storage.holds.HoldService` does the work and audits it; another tenant's hold (and the
operator's) is 404, like a missing one, and the attempt is audited as ``hold.access_denied``. Listing the
holds is audited too (``hold.list``: the state asked for and how many were answered), since a hold's number
and reason are personal data.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from storage.errors import NotFoundError
from storage.hold_rules import Hold, HoldState
from storage.holds import HoldFilter
from storage.principal import Permission, Principal

from .audit_routes import audited_read
from .deps import client_origin, require, services
from .fields import Moment, Number, text_field
from .paging import Cursor, Limit, Position, micros, page_of
from .problems import ApiProblem
from .refusals import ERRORS, denied, no_store
from .services import ApiServices

__all__ = ["router"]

router = APIRouter(tags=["holds"], dependencies=[Depends(no_store)])

Api = Annotated[ApiServices, Depends(services)]
Holder = Annotated[Principal, Depends(require(Permission.HOLD))]


class HoldTarget(enum.StrEnum):
    RECORDING = "recording"
    NUMBER = "number"


class LegalHold(BaseModel):
    id: UUID
    state: HoldState = Field(description="release_requested: still in force until a second person approves")
    target: HoldTarget
    recording_id: UUID | None
    number: str | None = Field(description="E.164, or the digits of an extension")
    from_at: datetime | None
    until_at: datetime | None
    reason: str
    placed_by: str
    placed_at: datetime
    release_requested_by: str | None
    release_requested_at: datetime | None
    released_by: str | None
    released_at: datetime | None

    @classmethod
    def of(cls, hold: Hold) -> LegalHold:
        return cls(
            id=hold.id,
            state=hold.state,
            target=HoldTarget.RECORDING if hold.recording_id is not None else HoldTarget.NUMBER,
            recording_id=hold.recording_id,
            number=hold.number,
            from_at=hold.from_at,
            until_at=hold.until_at,
            reason=hold.reason,
            placed_by=hold.placed_by,
            placed_at=hold.placed_at,
            release_requested_by=hold.release_requested_by,
            release_requested_at=hold.release_requested_at,
            released_by=hold.released_by,
            released_at=hold.released_at,
        )


class LegalHoldPage(BaseModel):
    items: list[LegalHold]
    next_cursor: str | None


class NumberHoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: Number
    reason: str = text_field(1000, "why: the request, case or proceedings it preserves evidence for")
    from_at: Moment | None = Field(default=None, description="calls started at or after")
    until_at: Moment | None = Field(default=None, description="calls started before")


class HoldPlaced(BaseModel):
    hold: LegalHold
    covered: list[UUID] = Field(description="the recordings it restricts now; later calls are covered too")


class HoldReleased(BaseModel):
    hold: LegalHold
    unrestricted: list[UUID] = Field(description="covered recordings no other hold keeps: deletable again")


def _newest_first(hold: Hold) -> Position:
    return (-micros(hold.placed_at), str(hold.id))


async def _refused(api: ApiServices, request: Request, principal: Principal, hold_id: UUID) -> ApiProblem:
    return await denied(api, request, principal, kind="hold", object_id=str(hold_id), noun="hold")


@router.get(
    "/holds", response_model=LegalHoldPage, summary="The tenant's holds, newest first", responses=ERRORS
)
async def list_holds(
    api: Api,
    principal: Holder,
    request: Request,
    state: HoldFilter = HoldFilter.ACTIVE,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> LegalHoldPage:
    holds = await api.holds.list(principal.tenant_id, which=state)
    page, next_cursor = page_of(holds, _newest_first, kind="holds", cursor=cursor, limit=limit)
    await audited_read(api, request, principal, "hold.list", {"state": state.value, "listed": len(page)})
    return LegalHoldPage(items=[LegalHold.of(hold) for hold in page], next_cursor=next_cursor)


@router.post(
    "/holds",
    status_code=201,
    response_model=HoldPlaced,
    summary="Hold a number's calls (any written form), optionally within a time range",
    responses=ERRORS,
)
async def place_on_number(api: Api, principal: Holder, request: Request, body: NumberHoldIn) -> HoldPlaced:
    placement = await api.holds.place_on_number(
        principal.tenant_id,
        body.number,
        reason=body.reason,
        actor=principal.actor(client_origin(request)),
        from_at=body.from_at,
        until_at=body.until_at,
    )
    return HoldPlaced(hold=LegalHold.of(placement.hold), covered=list(placement.covered))


@router.get("/holds/{hold_id}", response_model=LegalHold, summary="One hold", responses=ERRORS)
async def get_hold(api: Api, principal: Holder, request: Request, hold_id: UUID) -> LegalHold:
    try:
        return LegalHold.of(await api.holds.get(principal.tenant_id, hold_id))
    except NotFoundError:
        raise await _refused(api, request, principal, hold_id) from None


@router.post(
    "/holds/{hold_id}/release-request",
    response_model=LegalHold,
    summary="Ask for a hold's release; it stays in force until a different person approves",
    responses=ERRORS,
)
async def request_release(api: Api, principal: Holder, request: Request, hold_id: UUID) -> LegalHold:
    try:
        hold = await api.holds.request_release(
            principal.tenant_id, hold_id, principal.actor(client_origin(request))
        )
    except NotFoundError:
        raise await _refused(api, request, principal, hold_id) from None
    return LegalHold.of(hold)


@router.post(
    "/holds/{hold_id}/release-approval",
    response_model=HoldReleased,
    summary="Approve a requested release (not by the one who asked: 409); the hold ends",
    responses=ERRORS,
)
async def approve_release(api: Api, principal: Holder, request: Request, hold_id: UUID) -> HoldReleased:
    try:
        release = await api.holds.approve_release(
            principal.tenant_id, hold_id, principal.actor(client_origin(request))
        )
    except NotFoundError:
        raise await _refused(api, request, principal, hold_id) from None
    return HoldReleased(hold=LegalHold.of(release.hold), unrestricted=list(release.unrestricted))
