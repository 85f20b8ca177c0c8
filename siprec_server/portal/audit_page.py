"""``/audit`` (permission ``audit``): the tenant's audit trail, newest first, 50 a page, read-only.

Filters by action, actor and object id; the "older" link pages back by sequence number
(:meth:`storage.audit_verify.AuditQuery.list` with ``before_seq``), so a deep page costs one indexed query.
Each entry's details (the JSON stored with it) open in a ``<details>`` element: a one-line summary, then the
whole of it, indented. Reading the page is audited as the API's ``GET /audit`` is: one ``audit.list`` entry
per page view, naming the filters used (not their values) and how many entries were shown; the entry is
written after the page's own read, so a view never lists itself, and nothing on the page reads again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from storage.audit import StoredEntry
from storage.audit_verify import AuditQuery
from storage.principal import Permission

from ..api.audit_routes import audited_read
from .errors import PageError, PortalRoute
from .guard import portal_state, signed_in
from .web import page, page_url

__all__ = ["router"]

router = APIRouter(route_class=PortalRoute)

_PAGE = 50
_MAX_SEQ = 2**63 - 1
_SUMMARY = 90  # characters of the one-line summary of an entry's details


def _summary(details: Mapping[str, Any]) -> str:
    line = "; ".join(f"{key}: {_compact(value)}" for key, value in details.items())
    return line if len(line) <= _SUMMARY else line[: _SUMMARY - 1] + "…"


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _row(entry: StoredEntry) -> dict[str, Any]:
    """An entry with its details as a summary line and as indented JSON (escaped by the template)."""
    details = dict(entry.details)
    return {
        "entry": entry,
        "summary": _summary(details),
        "json": json.dumps(details, ensure_ascii=False, indent=2, sort_keys=True, default=str)
        if details
        else "",
    }


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
    used = [name for name, value in (*keep.items(), ("before", before_text)) if value]
    details = {"by": used, "listed": len(shown), "via": "portal"}
    await audited_read(api, request, user.principal, "audit.list", details)
    older = None
    if len(entries) > _PAGE and shown:
        older = page_url("/audit", **keep, before=str(shown[-1].seq))
    return page(
        request,
        "audit.html",
        rows=[_row(entry) for entry in shown],
        filters=keep,
        older_url=older,
        newest_url=page_url("/audit", **keep) if before is not None else None,
    )
