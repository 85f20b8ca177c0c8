"""``/access-requests`` (permission ``access_request``): a person asks for their recordings (GDPR Art. 15).

The workflow of :class:`storage.access_requests.AccessRequests`, a page per step: search by number (any
written form) or reference, optionally within days → open a case with who asked (due one calendar month
after it arrived; the list shows the due date and flags the overdue) → make the copy (the bundle: both
parties' audio and the metadata) → download it → mark it delivered → close the case (which removes the
bundle file). Every search, export and step is audited by the service; downloading the bundle file is
audited here (``access_request.download``), and so is reading the list of cases (``access_request.list``,
as the API's list is). Another tenant's case is an audited 404 page.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path as FilePath
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import FileResponse, Response

from storage.access_requests import AccessRequest
from storage.access_rules import DEADLINE_ZONE
from storage.audit import AuditEntry
from storage.errors import LifecycleError
from storage.principal import Permission

from ..api.audit_routes import audited_read
from .errors import PageError, PortalRoute, Redirect
from .guard import PortalUser, checked_form, portal_state, signed_in, text
from .i18n import Message
from .lookup import access_request_of
from .recordings_page import day_window, party_label
from .web import page

__all__ = ["router"]

router = APIRouter(route_class=PortalRoute)

_ZIP = "application/zip"


def _criteria(source: Any) -> dict[str, str]:
    """The search fields of a query string or a form, as typed."""
    values = {}
    for name in ("number", "reference", "from", "until"):
        value = source.get(name, "")
        values[name] = value.strip()[:200] if isinstance(value, str) else ""
    return values


def _window(criteria: dict[str, str]) -> tuple[datetime | None, datetime | None]:
    try:
        return day_window(criteria["from"], criteria["until"])
    except ValueError:
        raise PageError(400) from None


def _case_row(case: AccessRequest, now: datetime) -> dict[str, Any]:
    return {"case": case, "overdue": case.overdue(now)}


@router.get("/access-requests")
async def cases(request: Request) -> Response:
    user = await signed_in(request, Permission.ACCESS_REQUEST)
    api = portal_state(request).services
    tenant_id = user.principal.tenant_id
    show_all = request.query_params.get("state") == "all"
    now = api.now()
    listed = await api.access.list(tenant_id, include_finished=show_all)
    details = {"state": "all" if show_all else "open", "listed": len(listed), "via": "portal"}
    await audited_read(api, request, user.principal, "access_request.list", details)
    criteria = _criteria(request.query_params)
    found = None
    error: Message | None = None
    if criteria["number"] or criteria["reference"]:
        since, until = _window(criteria)
        try:
            found = await api.access.search(
                tenant_id,
                number=criteria["number"] or None,
                reference=criteria["reference"] or None,
                since=since,
                until=until,
                actor=user.actor(request),
            )
        except ValueError as exc:
            error = Message.of("access.refused", detail=str(exc))
    elif request.query_params.get("find"):
        error = Message.of("access.need_criteria")
    return page(
        request,
        "access_requests.html",
        status=200 if error is None else 422,
        cases=[_case_row(case, now) for case in listed],
        show_all=show_all,
        criteria=criteria,
        found=None if found is None else [_found_row(subject.recording) for subject in found],
        error=error,
        today=now.astimezone(DEADLINE_ZONE).date().isoformat(),
    )


def _found_row(r: Any) -> dict[str, Any]:
    return {
        "reference": r.reference,
        "started_at": r.started_at,
        "duration": r.duration_seconds,
        "parties": [party_label(p) for p in r.participants],
        "retention": r.retention_class,
        "expires_at": r.expires_at,
    }


def _received(form: FormData, now: datetime) -> datetime | None:
    """The day the request arrived (None: today, which counts from now)."""
    text_day = text(form, "received")
    if not text_day:
        return None
    try:
        day = date.fromisoformat(text_day)
    except ValueError:
        raise PageError(400) from None
    if day == now.astimezone(DEADLINE_ZONE).date():
        return None
    start, _ = day_window(day.isoformat(), "")
    return start


@router.post("/access-requests")
async def open_case(request: Request) -> Response:
    user = await signed_in(request, Permission.ACCESS_REQUEST)
    form = await checked_form(request, user)
    api = portal_state(request).services
    criteria = _criteria(form)
    since, until = _window(criteria)
    requester = text(form, "requester")
    if not requester:
        raise PageError(422, "access.need_requester")
    try:
        case = await api.access.open(
            user.principal.tenant_id,
            requester=requester[:500],
            number=criteria["number"] or None,
            reference=criteria["reference"] or None,
            since=since,
            until=until,
            received_at=_received(form, api.now()),
            notes=text(form, "notes")[:2000] or None,
            actor=user.actor(request),
        )
    except ValueError as exc:
        raise PageError(422, "access.refused", detail=str(exc)) from None
    raise Redirect(f"/access-requests/{case.id}")


async def _case_page(
    request: Request,
    user: PortalUser,
    case: AccessRequest,
    *,
    status: int = 200,
    error: Message | None = None,
) -> Response:
    api = portal_state(request).services
    found = await api.access.search(
        user.principal.tenant_id,
        number=case.number,
        reference=case.reference,
        since=case.since,
        until=case.until,
        actor=user.actor(request),
    )
    bundle = case.bundle_path is not None and await asyncio.to_thread(FilePath(case.bundle_path).is_file)
    return page(
        request,
        "access_case.html",
        status=status,
        case=case,
        overdue=case.overdue(api.now()),
        found=[_found_row(subject.recording) for subject in found],
        bundle_ready=bundle,
        error=error,
    )


@router.get("/access-requests/{case_id}")
async def show_case(request: Request, case_id: UUID) -> Response:
    user = await signed_in(request, Permission.ACCESS_REQUEST)
    case = await access_request_of(request, user, case_id)
    return await _case_page(request, user, case)


async def _step(request: Request, case_id: UUID, step: str) -> Response:
    """Export, deliver or close the case; a refused step (e.g. delivering before a copy exists) is shown on
    the case page."""
    user = await signed_in(request, Permission.ACCESS_REQUEST)
    form = await checked_form(request, user)
    case = await access_request_of(request, user, case_id)
    api = portal_state(request).services
    tenant_id, actor = user.principal.tenant_id, user.actor(request)
    note = text(form, "note")[:2000] or None
    try:
        if step == "export":
            await api.access.export(tenant_id, case.id, actor=actor)
            notice = ""
        elif step == "delivered":
            await api.access.mark_delivered(tenant_id, case.id, actor=actor, note=note)
            notice = "?notice=access.delivered"
        else:
            await api.access.close(tenant_id, case.id, actor=actor, note=note)
            notice = "?notice=access.closed"
    except (LifecycleError, ValueError) as exc:
        error = Message.of("access.refused", detail=str(exc))
        return await _case_page(request, user, case, status=409, error=error)
    raise Redirect(f"/access-requests/{case.id}{notice}")


@router.post("/access-requests/{case_id}/export")
async def export(request: Request, case_id: UUID) -> Response:
    return await _step(request, case_id, "export")


@router.post("/access-requests/{case_id}/delivered")
async def delivered(request: Request, case_id: UUID) -> Response:
    return await _step(request, case_id, "delivered")


@router.post("/access-requests/{case_id}/close")
async def close(request: Request, case_id: UUID) -> Response:
    return await _step(request, case_id, "close")


@router.get("/access-requests/{case_id}/bundle")
async def bundle(request: Request, case_id: UUID) -> Response:
    """The copy last made for the case, as the zip file; audited."""
    user = await signed_in(request, Permission.ACCESS_REQUEST)
    case = await access_request_of(request, user, case_id)
    path = None if case.bundle_path is None else FilePath(case.bundle_path)
    if (
        path is None
        or not path.name.startswith(f"access-request-{case.id}-")
        or not await asyncio.to_thread(path.is_file)
    ):
        raise PageError(410, "access.bundle_gone")
    api = portal_state(request).services
    await api.audit.record(
        api.pool,
        AuditEntry(
            actor=user.actor(request),
            action="access_request.download",
            tenant_id=user.principal.tenant_id,
            object_kind="access_request",
            object_id=str(case.id),
            details={"bundle": path.name, "sha256": case.bundle_sha256},
        ),
    )
    return FileResponse(path, media_type=_ZIP, filename=path.name, headers={"Cache-Control": "no-store"})
