"""``/recordings/{reference}``: one recording — player and waveform, participants, stream quality, basis and
purpose, retention (with the selector of the tenant's periods), legal hold, and its audit trail.

- The player is the browser's own ``<audio controls>`` (keyboard-usable as it is) on
  ``/api/v1/recordings/{id}/audio``, which answers byte ranges and audits each playback. It preloads
  nothing, so opening the page is not a playback; pressing play is.
- The waveform is drawn from ``/recordings/{id}/waveform`` (:mod:`siprec_server.portal.peaks`).
- Retention: a form posts the class; :meth:`RetentionService.change_retention` decides (a statutory floor or
  a hold refuses, with the reason shown) and audits; the page then shows the old and the new deletion time.
- Hold (permission ``hold``): a reason, then :meth:`HoldService.place_on_recording`. Each of the tenant's
  holds restricting the recording has the release forms of :mod:`.holds_page` (ask, approve), which come back
  here; an operator's hold is listed without them (it is not the tenant's to release).
- The audit trail (permission ``audit``): the entries about this recording, newest first. Reading it is
  reading the audit log, audited once per page view (``audit.list``, with no object of its own, so the entry
  does not show up in this trail).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from starlette.responses import JSONResponse, Response

from storage.audit_verify import AuditQuery
from storage.errors import ConflictError, LifecycleError, NotFoundError, StatutoryFloorError, UnderHoldError
from storage.lifecycle_rows import active_holds, find_class
from storage.models import Recording, RecordingStatus
from storage.principal import Permission
from storage.retention_class import Basis

from ..api.audit_routes import audited_read
from .errors import PageError, PortalRoute, Redirect
from .guard import PortalUser, checked_form, portal_state, signed_in, text
from .i18n import Message
from .lookup import recording_of
from .peaks import recording_peaks
from .recordings_page import call_direction
from .web import page

__all__ = ["router"]

router = APIRouter(route_class=PortalRoute)

Ref = Annotated[str, Path(max_length=100)]
_CODE = re.compile(r"^[A-Za-z0-9_]{1,40}$")
_TRAIL = 50  # audit entries shown on the page; the audit log has the rest


async def _detail(
    request: Request,
    user: PortalUser,
    r: Recording,
    *,
    status: int = 200,
    error: Message | None = None,
    was: datetime | None = None,
) -> Response:
    api = portal_state(request).services
    tenant_id = user.principal.tenant_id
    holds = await active_holds(api.pool, r.id)
    retention = (
        None if r.retention_class is None else await find_class(api.pool, tenant_id, r.retention_class)
    )
    options = await api.retention.options(tenant_id)
    offered = options.all or tuple(await api.retention.classes(tenant_id))
    # A statutory period applies only to a call recorded under that legal obligation (storage.retention).
    selectable = [c for c in offered if not c.statutory or r.basis == Basis.LEGAL_OBLIGATION.value]
    trail = []
    if user.can(Permission.AUDIT):
        trail = await AuditQuery(api.pool).list(
            tenant_id=tenant_id, object_kind="recording", object_id=str(r.id), limit=_TRAIL
        )
        details = {"by": ["object_kind", "object_id"], "listed": len(trail), "via": "portal"}
        await audited_read(api, request, user.principal, "audit.list", details)
    changed = None
    if was is not None and r.expires_at is not None:
        changed = {"old": was, "new": r.expires_at}
    return page(
        request,
        "recording.html",
        status=status,
        r=r,
        direction=call_direction(r),
        holds=holds,
        own_holds={h.id for h in holds if h.tenant_id == tenant_id},
        retention=retention,
        selectable=selectable,
        default_code=None if options.default is None else options.default.code,
        trail=trail,
        error=error,
        changed=changed,
        playable=r.status is not RecordingStatus.RECORDING and bool(r.file_path),
        can_listen=user.can(Permission.LISTEN),
        can_keep=user.can(Permission.RETENTION),
        can_hold=user.can(Permission.HOLD),
        can_audit=user.can(Permission.AUDIT),
        audio_url=f"/api/v1/recordings/{r.id}/audio",
        download_url=f"/api/v1/recordings/{r.id}/download",
        waveform_url=f"/recordings/{r.id}/waveform",
    )


@router.get("/recordings/{ref}")
async def recording(request: Request, ref: Ref) -> Response:
    user = await signed_in(request, Permission.VIEW)
    r = await recording_of(request, user, ref)
    return await _detail(request, user, r, was=_moment(request.query_params.get("was")))


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else None


@router.post("/recordings/{ref}/retention")
async def change_retention(request: Request, ref: Ref) -> Response:
    user = await signed_in(request, Permission.RETENTION)
    form = await checked_form(request, user)
    r = await recording_of(request, user, ref)
    code = text(form, "retention_class")
    if not _CODE.match(code):
        raise PageError(400)
    api = portal_state(request).services
    try:
        change = await api.retention.change_retention(
            user.principal.tenant_id, r.id, actor=user.actor(request), class_code=code
        )
    except (StatutoryFloorError, UnderHoldError, ConflictError) as exc:
        error = Message.of("recording.change_refused", detail=str(exc))
        return await _detail(request, user, r, status=409, error=error)
    except (LifecycleError, ValueError, NotFoundError) as exc:  # a class not offered, or unknown
        error = Message.of("recording.change_refused", detail=str(exc))
        return await _detail(request, user, r, status=422, error=error)
    was = "" if change.old_expires_at is None else f"?was={quote(change.old_expires_at.isoformat())}"
    raise Redirect(f"/recordings/{r.reference}{was}")


@router.post("/recordings/{ref}/holds")
async def place_hold(request: Request, ref: Ref) -> Response:
    user = await signed_in(request, Permission.HOLD)
    form = await checked_form(request, user)
    r = await recording_of(request, user, ref)
    reason = text(form, "reason")
    if not reason or len(reason) > 1000:
        return await _detail(request, user, r, status=422, error=Message.of("recording.reason_needed"))
    api = portal_state(request).services
    await api.holds.place_on_recording(
        user.principal.tenant_id, r.id, reason=reason, actor=user.actor(request)
    )
    raise Redirect(f"/recordings/{r.reference}?notice=recording.hold_placed")


@router.get("/recordings/{ref}/waveform")
async def waveform(request: Request, ref: Ref) -> Response:
    """About a thousand (min, max) pairs per channel, as JSON, for the page's waveform."""
    user = await signed_in(request, Permission.LISTEN)
    r = await recording_of(request, user, ref)
    state = portal_state(request)
    if r.status is RecordingStatus.RECORDING:
        return JSONResponse({"detail": "still being recorded"}, status_code=409)
    if state.services.audio is None or not r.file_path:
        raise PageError(404)
    try:
        peaks = await recording_peaks(state.peaks, state.services.audio, r)
    except FileNotFoundError:
        raise PageError(404) from None
    body: dict[str, Any] = peaks.to_json()
    return JSONResponse(body, headers={"Cache-Control": "private, no-store"})
