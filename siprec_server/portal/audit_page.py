"""``/audit`` (permission ``audit``): the tenant's audit trail, newest first, 50 a page, read-only.

Filters by action, actor and object id; the "older" link pages back by sequence number
(:meth:`storage.audit_verify.AuditQuery.list` with ``before_seq``), so a deep page costs one indexed query.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from storage.audit_verify import AuditQuery
from storage.principal import Permission

from .errors import PageError, PortalRoute
from .guard import portal_state, signed_in
from .web import page, page_url

__all__ = ["router"]

router = APIRouter(route_class=PortalRoute)

_PAGE = 50
_MAX_SEQ = 2**63 - 1


def _filter(request: Request, name: str) -> str:
    value = request.query_params.get(name, "").strip()
    if len(value) > 200 or any(ord(c) < 32 for c in value):
        raise PageError(400)
    return value


@router.get("/audit")
async def audit(request: Request) -> Response:
    user = await signed_in(request, Permission.AUDIT)
    api = portal_state(request).services
    action, actor, object_id = (_filter(request, name) for name in ("action", "actor", "object_id"))
    before_text = request.query_params.get("before", "")
    before = None
    if before_text:
        if not before_text.isdigit() or not 1 <= int(before_text) <= _MAX_SEQ:
            raise PageError(400)
        before = int(before_text)
    entries = await AuditQuery(api.pool).list(
        tenant_id=user.principal.tenant_id,
        action=action or None,
        actor=actor or None,
        object_id=object_id or None,
        before_seq=before,
        limit=_PAGE + 1,
    )
    shown = entries[:_PAGE]
    keep = {"action": action, "actor": actor, "object_id": object_id}
    older = None
    if len(entries) > _PAGE and shown:
        older = page_url("/audit", **keep, before=str(shown[-1].seq))
    return page(
        request,
        "audit.html",
        entries=shown,
        filters=keep,
        older_url=older,
        newest_url=page_url("/audit", **keep) if before is not None else None,
    )
