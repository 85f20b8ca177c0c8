"""The settings page's forms (permission ``settings``): a new policy version, the retention options, a
tenant's own retention class, and adding or removing numbers.

Each form calls the storage service the API's settings routes call (:mod:`siprec_server.api.settings_routes`),
which validates, audits and announces the change; the page only reads the fields into the service's terms.
What the service refuses (a policy rule, an unknown class, a number another tenant holds, a number whose
policies decided recordings) is shown on the settings page, in the reader's language with the service's
reason, the form refilled: a 409 or 422 page, never a 500. A field a browser cannot send (a direction or kind
that is none of ours) is a 400 page. Another tenant's number is an audited 404 page, as in the API
(``tenant_number.access_denied``). After a change the browser is sent back to the page (303), so reloading
it does not post again.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, TypeVar

from fastapi import APIRouter, Path, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from storage.consent_terms import ConsentTerms
from storage.errors import ConflictError, LifecycleError, NotFoundError, PolicyRuleError
from storage.policies import PolicyScope
from storage.policy_rules import DEFAULT_FORMAT, PolicyDirection, PolicySpec
from storage.principal import Permission
from storage.retention import MAX_EXTRA_OPTIONS
from storage.retention_class import Basis
from storage.tenant_models import NumberKind

from .errors import PageError, PortalRoute, Redirect
from .guard import checked_form, portal_state, signed_in, text
from .i18n import Message
from .lookup import denied
from .settings_page import render_settings

__all__ = ["router"]

router = APIRouter(route_class=PortalRoute)

_BIGINT = 2**63 - 1
NumberId = Annotated[int, Path(ge=1, le=_BIGINT)]
_POLICY_FIELDS = (
    "scope",
    "direction",
    "record",
    "basis",
    "statute",
    "purpose",
    "retention",
    "format",
    "window_seconds",
    "yes_digit",
    "no_digit",
    "stop_digit",
    "prompt_version",
)
_E = TypeVar("_E", bound=StrEnum)


def _choice(kind: type[_E], value: str) -> _E:
    """A value of one of the page's selects; anything else was not sent by the page (400)."""
    try:
        return kind(value)
    except ValueError:
        raise PageError(400) from None


def _whole(value: str) -> int:
    if not value.isascii() or not value.isdigit() or int(value) > _BIGINT:
        raise PageError(400)
    return int(value)


def _refused(exc: Exception, lead: str = "settings.refused") -> Message:
    """The service's reason (English) after a lead-in in the reader's language."""
    detail = "; ".join(exc.problems) if isinstance(exc, PolicyRuleError) else str(exc)
    return Message.of(lead, detail=detail)


def _saved(notice: str, anchor: str) -> Redirect:
    return Redirect(f"/settings?notice={notice}#{anchor}")


# -- policies --------------------------------------------------------------------------------------------------
def _consent_terms(fields: dict[str, str]) -> ConsentTerms:
    """The consent question's terms as typed (the service's type checks them)."""
    try:
        window = float(fields["window_seconds"])
    except ValueError:
        raise PageError(400) from None
    return ConsentTerms(
        window_seconds=window,
        yes_digit=fields["yes_digit"],
        no_digit=fields["no_digit"],
        stop_digit=fields["stop_digit"],
        prompt_version=fields["prompt_version"],
    )


def _policy_spec(fields: dict[str, str]) -> PolicySpec:
    """The form as the API's ``PolicyIn`` would carry it; the consent terms go with a consent basis only (the
    form shows them for that basis)."""
    basis = _choice(Basis, fields["basis"]) if fields["basis"] else None
    return PolicySpec(
        direction=_choice(PolicyDirection, fields["direction"]),
        record=fields["record"] != "no",
        basis=basis,
        statute=fields["statute"] or None,
        purpose=fields["purpose"] or None,
        retention=fields["retention"] or None,
        format=fields["format"] or DEFAULT_FORMAT,
        consent=_consent_terms(fields) if basis is Basis.CONSENT else None,
    )


@router.post("/settings/policies")
async def set_policy(request: Request) -> Response:
    user = await signed_in(request, Permission.SETTINGS)
    form = await checked_form(request, user)
    fields = {name: text(form, name) for name in _POLICY_FIELDS}
    api = portal_state(request).services
    tenant_id = user.principal.tenant_id
    scope = PolicyScope.for_tenant(tenant_id)
    if fields["scope"] not in ("", "tenant"):
        number_id = _whole(fields["scope"])
        scope = PolicyScope.for_number(tenant_id, number_id)
        try:
            before = {p.id for p in await api.policies.current(scope)}
        except NotFoundError:
            raise await denied(request, user, kind="tenant_number", requested=str(number_id)) from None
    else:
        before = {p.id for p in await api.policies.current(scope)}
    try:
        policy = await api.policies.set(scope, _policy_spec(fields), actor=user.actor(request))
    except (LifecycleError, ValueError, NotFoundError) as exc:  # a rule, bad terms, an unknown class
        return await render_settings(
            request,
            user,
            status=422,
            error=_refused(exc, "settings.policy_refused"),
            entered={"policy": fields},
        )
    notice = "settings.policy_unchanged" if policy.id in before else "settings.policy_saved"
    raise _saved(notice, "policies-title")


# -- retention -------------------------------------------------------------------------------------------------
def _other_codes(form: FormData) -> list[str]:
    return [code for n in range(1, MAX_EXTRA_OPTIONS + 1) if (code := text(form, f"other{n}"))]


@router.post("/settings/retention-options")
async def set_options(request: Request) -> Response:
    user = await signed_in(request, Permission.SETTINGS)
    form = await checked_form(request, user)
    api = portal_state(request).services
    try:
        await api.retention.set_options(
            user.principal.tenant_id, text(form, "default"), _other_codes(form), user.actor(request)
        )
    except (ValueError, NotFoundError) as exc:  # offered twice, another tenant's or an unknown class
        return await render_settings(request, user, status=422, error=_refused(exc))
    raise _saved("settings.options_saved", "retention-title")


@router.post("/settings/retention-classes")
async def create_class(request: Request) -> Response:
    user = await signed_in(request, Permission.SETTINGS)
    form = await checked_form(request, user)
    fields = {name: text(form, name) for name in ("code", "name", "days", "basis", "source")}
    api = portal_state(request).services
    try:
        await api.retention.create_class(
            user.principal.tenant_id,
            code=fields["code"],
            name=fields["name"],
            days=_whole(fields["days"]),
            basis=_choice(Basis, fields["basis"] or Basis.LEGITIMATE_INTEREST.value),
            source=fields["source"],
            actor=user.actor(request),
        )
    except (ValueError, ConflictError) as exc:  # a rule of tenant classes, a code taken
        return await render_settings(
            request, user, status=422, error=_refused(exc), entered={"retention_class": fields}
        )
    raise _saved("settings.class_created", "retention-title")


# -- numbers ---------------------------------------------------------------------------------------------------
@router.post("/settings/numbers")
async def add_number(request: Request) -> Response:
    user = await signed_in(request, Permission.SETTINGS)
    form = await checked_form(request, user)
    fields = {name: text(form, name) for name in ("kind", "value", "label")}
    api = portal_state(request).services
    try:
        await api.tenants.add_number(
            user.principal.tenant_id,
            fields["value"],
            actor=user.actor(request),
            kind=_choice(NumberKind, fields["kind"] or NumberKind.NUMBER.value),
            label=fields["label"] or None,
        )
    except ConflictError as exc:  # held by another tenant (not named), or by this one already
        return await render_settings(
            request, user, status=409, error=_refused(exc), entered={"number": fields}
        )
    except ValueError as exc:  # not a number, range or extension
        return await render_settings(
            request, user, status=422, error=_refused(exc), entered={"number": fields}
        )
    raise _saved("settings.number_added", "numbers-title")


@router.post("/settings/numbers/{number_id}/remove")
async def remove_number(request: Request, number_id: NumberId) -> Response:
    user = await signed_in(request, Permission.SETTINGS)
    await checked_form(request, user)
    api = portal_state(request).services
    try:
        await api.tenants.remove_number(user.principal.tenant_id, number_id, actor=user.actor(request))
    except NotFoundError:
        raise await denied(request, user, kind="tenant_number", requested=str(number_id)) from None
    except LifecycleError as exc:  # its policies decided recordings, which must stay explainable
        return await render_settings(request, user, status=422, error=_refused(exc))
    raise _saved("settings.number_removed", "numbers-title")
