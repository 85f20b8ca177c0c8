"""``/holds`` (permission ``hold``): the tenant's legal holds (GDPR Art. 18) and their two-person release.

- The list: the active holds, newest first (``?state=all`` adds the released ones), each with what it covers
  (one recording, or a number's calls, maybe only those started within a time range), who placed it, when
  and why, and where its release stands. Reading it is audited (``hold.list``), as the API's list is.
- A hold on a number: the number in any written form, optionally the first and the last day (Budapest time,
  both included) of the calls it covers, and the reason; :meth:`storage.holds.HoldService.place_on_number`
  covers the calls recorded so far and those still to come.
- Release: one person asks (``/holds/{id}/release-request``), a different one approves
  (``/holds/{id}/release-approval``). The service enforces it; its refusal (the same person, nothing asked
  yet, already released) is shown on the hold's page. The recording page posts the same forms for the holds
  restricting a recording, and is shown again after them.
- ``/holds/{id}``: one hold. Another tenant's hold, or the operator's, is an audited 404 page
  (``hold.access_denied``), like a missing one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response

from storage.errors import LifecycleError, NotFoundError, TwoPersonRuleError
from storage.hold_rules import Hold
from storage.holds import HoldFilter
from storage.lifecycle_rows import recording_facts
from storage.principal import Permission

from ..api.audit_routes import audited_read
from .errors import PageError, PortalRoute, Redirect
from .guard import PortalUser, checked_form, portal_state, signed_in, text
from .i18n import Message
from .lookup import denied
from .recordings_page import day_window
from .web import local_path, page

__all__ = ["router"]

router = APIRouter(route_class=PortalRoute)

_PLACE_FIELDS = ("number", "from", "until", "reason")


async def _target(request: Request, user: PortalUser, hold: Hold) -> dict[str, Any]:
    """A hold with the reference of the recording it covers (a person reads references, not uuids)."""
    if hold.recording_id is None:
        return {"hold": hold, "reference": None}
    pool = portal_state(request).services.pool
    try:
        facts = await recording_facts(pool, user.principal.tenant_id, hold.recording_id)
    except NotFoundError:  # erased after the hold was released: the uuid is all there is
        return {"hold": hold, "reference": None}
    return {"hold": hold, "reference": facts.reference}


async def _list_page(
    request: Request,
    user: PortalUser,
    *,
    show_all: bool,
    status: int = 200,
    error: Message | None = None,
    entered: Mapping[str, str] | None = None,
) -> Response:
    api = portal_state(request).services
    which = HoldFilter.ALL if show_all else HoldFilter.ACTIVE
    holds = await api.holds.list(user.principal.tenant_id, which=which)
    rows = [await _target(request, user, hold) for hold in holds]
    details = {"state": which.value, "listed": len(holds), "via": "portal"}
    await audited_read(api, request, user.principal, "hold.list", details)
    return page(
        request,
        "holds.html",
        status=status,
        rows=rows,
        show_all=show_all,
        error=error,
        entered=entered or dict.fromkeys(_PLACE_FIELDS, ""),
    )


@router.get("/holds")
async def holds(request: Request) -> Response:
    user = await signed_in(request, Permission.HOLD)
    return await _list_page(request, user, show_all=request.query_params.get("state") == "all")


@router.post("/holds")
async def place_on_number(request: Request) -> Response:
    user = await signed_in(request, Permission.HOLD)
    form = await checked_form(request, user)
    entered = {name: text(form, name) for name in _PLACE_FIELDS}
    try:
        since, until = day_window(entered["from"], entered["until"])
    except ValueError:
        error = Message.of("holds.bad_day")
        return await _list_page(request, user, show_all=False, status=422, error=error, entered=entered)
    api = portal_state(request).services
    try:
        placement = await api.holds.place_on_number(
            user.principal.tenant_id,
            entered["number"],
            reason=entered["reason"],
            actor=user.actor(request),
            from_at=since,
            until_at=until,
        )
    except ValueError as exc:  # not a number, no reason, a range that ends before it starts
        error = Message.of("holds.refused", detail=str(exc))
        return await _list_page(request, user, show_all=False, status=422, error=error, entered=entered)
    raise Redirect(f"/holds/{placement.hold.id}?notice=holds.placed")


async def _hold_of(request: Request, user: PortalUser, hold_id: UUID) -> Hold:
    try:
        return await portal_state(request).services.holds.get(user.principal.tenant_id, hold_id)
    except NotFoundError:
        raise await denied(request, user, kind="hold", requested=str(hold_id)) from None


async def _hold_page(
    request: Request,
    user: PortalUser,
    hold: Hold,
    *,
    status: int = 200,
    error: Message | None = None,
    back: str | None = None,
) -> Response:
    shown = await _target(request, user, hold)
    return page(request, "hold.html", status=status, error=error, back=back, **shown)


@router.get("/holds/{hold_id}")
async def show_hold(request: Request, hold_id: UUID) -> Response:
    user = await signed_in(request, Permission.HOLD)
    return await _hold_page(request, user, await _hold_of(request, user, hold_id))


def _with_notice(path: str, notice: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}notice={notice}"


async def _release(request: Request, hold_id: UUID, *, approve: bool) -> Response:
    """Ask for the release, or approve it; then back to the page the form was on."""
    user = await signed_in(request, Permission.HOLD)
    form = await checked_form(request, user)
    hold = await _hold_of(request, user, hold_id)
    back = local_path(text(form, "next"), default=f"/holds/{hold.id}")
    holds, actor = portal_state(request).services.holds, user.actor(request)
    try:
        if approve:
            await holds.approve_release(user.principal.tenant_id, hold.id, actor)
        else:
            await holds.request_release(user.principal.tenant_id, hold.id, actor)
    except TwoPersonRuleError:  # Art. 18: the one who asked cannot approve
        error = Message.of("holds.two_people", who=hold.release_requested_by or user.name)
        return await _hold_page(request, user, hold, status=409, error=error, back=back)
    except (LifecycleError, ValueError) as exc:  # not asked yet, asked already, released already
        error = Message.of("holds.refused", detail=str(exc))
        return await _hold_page(request, user, hold, status=422, error=error, back=back)
    except NotFoundError:  # gone between the two reads: as if never there
        raise PageError(404) from None
    raise Redirect(_with_notice(back, "holds.released" if approve else "holds.release_requested"))


@router.post("/holds/{hold_id}/release-request")
async def request_release(request: Request, hold_id: UUID) -> Response:
    return await _release(request, hold_id, approve=False)


@router.post("/holds/{hold_id}/release-approval")
async def approve_release(request: Request, hold_id: UUID) -> Response:
    return await _release(request, hold_id, approve=True)
