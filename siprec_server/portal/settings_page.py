"""``/settings`` (permission ``settings``): the tenant's recording policies, retention periods and numbers,
with the forms that change them (:mod:`.settings_forms`); with permission ``users`` also its users and API
keys, with the forms the API has for them.

A new user's one-time password and a new key's secret appear once, in the answer to the form that made them
(never stored in clear, never in a URL, never shown again). Disabling a user ends their sessions at once; a
revoked key stops working at once. The storage services validate and audit every change. Another tenant's
user or key is an audited 404 page.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response

from storage.consent_terms import ConsentTerms
from storage.errors import ConflictError, LifecycleError, NotFoundError
from storage.policy_rules import FORMATS, PolicyDirection
from storage.principal import Permission, Role
from storage.retention import MAX_EXTRA_OPTIONS
from storage.retention_class import Basis
from storage.tenant_models import NumberKind

from .errors import PortalRoute
from .guard import PortalUser, checked_form, portal_state, signed_in, text
from .i18n import Message
from .lookup import denied
from .web import page

__all__ = ["render_settings", "router"]

router = APIRouter(route_class=PortalRoute)

_LISTED = 200  # users and keys shown; a tenant has far fewer
_TERMS = ConsentTerms()  # the consent form's initial values


async def render_settings(
    request: Request,
    user: PortalUser,
    *,
    status: int = 200,
    notice: Message | None = None,
    error: Message | None = None,
    secret: str | None = None,
    entered: Mapping[str, Mapping[str, str]] | None = None,
) -> Response:
    """The settings page; ``error`` is shown at the top and ``entered`` refills the form it came from (by
    form name: ``policy``, ``retention_class``, ``number``)."""
    api = portal_state(request).services
    tenant_id = user.principal.tenant_id
    numbers = await api.tenants.numbers(tenant_id)
    number_values = {n.id: n.value for n in numbers}
    policies = await api.policies.list_current(tenant_id)
    options = await api.retention.options(tenant_id)
    manages_users = user.can(Permission.USERS)
    users = await api.users.list(tenant_id, limit=_LISTED) if manages_users else []
    keys = await api.api_keys.list(tenant_id, limit=_LISTED) if manages_users else []
    typed = entered or {}
    context: dict[str, Any] = {
        "policies": [{"policy": p, "number": number_values.get(p.number_id or 0)} for p in policies],
        "options": options,
        "other_codes": [c.code for c in options.others] + [""] * (MAX_EXTRA_OPTIONS - len(options.others)),
        "classes": await api.retention.classes(tenant_id),
        "numbers": numbers,
        "directions": [d.value for d in PolicyDirection],
        "bases": [b.value for b in Basis],
        "own_bases": [Basis.LEGITIMATE_INTEREST.value, Basis.CONSENT.value],
        "formats": FORMATS,
        "kinds": [k.value for k in NumberKind],
        "terms": _TERMS,
        # what was typed into the form refused (blank for every other field and form)
        "policy_form": defaultdict(str, typed.get("policy", {})),
        "class_form": defaultdict(str, typed.get("retention_class", {})),
        "number_form": defaultdict(str, typed.get("number", {})),
        "manages_users": manages_users,
        "users": users,
        "keys": keys,
        "roles": [role.value for role in Role],
        "notice_message": notice,
        "error": error,
        "secret": secret,
        "me": user.principal.user_id,
    }
    return page(request, "settings.html", status=status, **context)


@router.get("/settings")
async def settings(request: Request) -> Response:
    user = await signed_in(request, Permission.SETTINGS)
    return await render_settings(request, user)


def _role(value: str) -> Role | None:
    return Role(value) if value in set(Role) else None


@router.post("/settings/users")
async def create_user(request: Request) -> Response:
    user = await signed_in(request, Permission.USERS)
    form = await checked_form(request, user)
    api = portal_state(request).services
    email, role = text(form, "email"), _role(text(form, "role"))
    if role is None:
        return await render_settings(request, user, status=422, error=Message.of("error.400"))
    try:
        made, password = await api.users.create(user.principal.tenant_id, email, role, user.actor(request))
    except (ValueError, ConflictError) as exc:
        error = Message.of("settings.refused", detail=str(exc))
        return await render_settings(request, user, status=422, error=error)
    notice = Message.of("settings.user_created", email=made.email)
    return await render_settings(request, user, status=201, notice=notice, secret=password)


@router.post("/settings/users/{user_id}/disable")
async def disable_user(request: Request, user_id: UUID) -> Response:
    user = await signed_in(request, Permission.USERS)
    await checked_form(request, user)
    api = portal_state(request).services
    try:
        gone = await api.users.disable(user.principal.tenant_id, user_id, user.actor(request))
    except NotFoundError:
        raise await denied(request, user, kind="user", requested=str(user_id)) from None
    except (LifecycleError, ConflictError, ValueError) as exc:
        error = Message.of("settings.refused", detail=str(exc))
        return await render_settings(request, user, status=409, error=error)
    return await render_settings(request, user, notice=Message.of("settings.user_disabled", email=gone.email))


@router.post("/settings/api-keys")
async def create_key(request: Request) -> Response:
    user = await signed_in(request, Permission.USERS)
    form = await checked_form(request, user)
    api = portal_state(request).services
    name, role = text(form, "name"), _role(text(form, "role"))
    if role is None:
        return await render_settings(request, user, status=422, error=Message.of("error.400"))
    try:
        key, secret = await api.api_keys.create(user.principal.tenant_id, name, role, user.actor(request))
    except (ValueError, ConflictError) as exc:
        error = Message.of("settings.refused", detail=str(exc))
        return await render_settings(request, user, status=422, error=error)
    notice = Message.of("settings.key_created", name=key.name)
    return await render_settings(request, user, status=201, notice=notice, secret=secret)


@router.post("/settings/api-keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: UUID) -> Response:
    user = await signed_in(request, Permission.USERS)
    await checked_form(request, user)
    api = portal_state(request).services
    try:
        key = await api.api_keys.revoke(user.principal.tenant_id, key_id, user.actor(request))
    except NotFoundError:
        raise await denied(request, user, kind="api_key", requested=str(key_id)) from None
    return await render_settings(request, user, notice=Message.of("settings.key_revoked", name=key.name))
