"""``/consent`` (permission ``erase``): a person withdraws consent by number (GDPR Art. 7(3)).

:meth:`storage.erasure.ErasureService.withdraw_consent` erases the tenant's consent-based recordings of the
number and nothing else; those under a legal hold or still being recorded are marked withdrawn and erased
as soon as they may be. It is irreversible, so the form asks for a confirmation first. The service audits
it and keeps the withdrawal record.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from storage.errors import LifecycleError
from storage.principal import Permission

from .errors import PortalRoute
from .guard import checked_form, portal_state, signed_in, text
from .i18n import Message
from .web import page

__all__ = ["router"]

router = APIRouter(route_class=PortalRoute)


@router.get("/consent")
async def consent_form(request: Request) -> Response:
    await signed_in(request, Permission.ERASE)
    return page(request, "consent.html", number="", error=None, result=None)


@router.post("/consent")
async def withdraw(request: Request) -> Response:
    user = await signed_in(request, Permission.ERASE)
    form = await checked_form(request, user)
    number = text(form, "number")[:64]
    if form.get("confirm") != "yes":
        error = Message.of("consent.must_confirm")
        return page(request, "consent.html", status=422, number=number, error=error, result=None)
    api = portal_state(request).services
    try:
        result = await api.erasure.withdraw_consent(user.principal.tenant_id, number, user.actor(request))
    except (LifecycleError, ValueError) as exc:
        error = Message.of("consent.refused", detail=str(exc))
        return page(request, "consent.html", status=422, number=number, error=error, result=None)
    return page(request, "consent.html", number="", error=None, result=result)
