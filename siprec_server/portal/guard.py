"""Who reads a portal page, and whether they may: the login session, the permission, the CSRF token.

The portal uses the API's own login sessions (:mod:`storage.login_sessions`): the ``hangtar_session`` cookie
(HttpOnly) names the session; the ``hangtar_csrf`` cookie holds its CSRF token, which the pages put into
every form as ``csrf_token``, and a form is taken only when the token matches the session's (the server
keeps only its hash). Without a session a page redirects to ``/login``; while a one-time password is
unchanged, to ``/password``; without the permission it is a 403 page.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request

from storage.audit import Actor
from storage.login_sessions import ActiveSession
from storage.principal import Permission, Principal

from ..api.deps import CSRF_COOKIE, SESSION_COOKIE, client_origin
from ..api.services import ApiServices
from .errors import PageError, Redirect
from .peaks import PeaksCache

__all__ = ["CSRF_FIELD", "PortalState", "PortalUser", "checked_form", "portal_state", "signed_in", "text"]

CSRF_FIELD = "csrf_token"
_MAX_FIELD = 4000  # longer form values are refused rather than stored


@dataclass(frozen=True, slots=True, kw_only=True)
class PortalState:
    """What the portal's handlers share: the API's services and the waveform cache."""

    services: ApiServices
    peaks: PeaksCache


def portal_state(request: Request) -> PortalState:
    state: PortalState = request.state.portal
    return state


@dataclass(frozen=True, slots=True, kw_only=True)
class PortalUser:
    principal: Principal
    session: ActiveSession
    csrf_token: str | None  # from the CSRF cookie, for the forms of the page

    @property
    def must_change_password(self) -> bool:
        return self.session.must_change_password

    @property
    def name(self) -> str:
        return self.principal.name

    def can(self, permission: Permission) -> bool:
        return self.principal.can(permission)

    def actor(self, request: Request) -> Actor:
        """The audit trail's name for this reader, acting from the request's client address."""
        return self.principal.actor(client_origin(request))


def _login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target, safe='')}"


async def signed_in(
    request: Request, needs: Permission | None = None, *, password_page: bool = False
) -> PortalUser:
    """The reader of this page; a redirect to the login (or the password change) or a 403 page otherwise."""
    api = portal_state(request).services
    session = await api.sessions.resolve_session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise Redirect(_login_url(request) if request.method == "GET" else "/login")
    user = PortalUser(
        principal=session.principal, session=session, csrf_token=request.cookies.get(CSRF_COOKIE)
    )
    request.state.portal_user = user
    if session.must_change_password and not password_page:
        raise Redirect("/password")
    if needs is not None and not user.can(needs):
        raise PageError(403)
    return user


async def checked_form(request: Request, user: PortalUser) -> FormData:
    """The posted form, if it carries the session's CSRF token; a 403 page otherwise."""
    form = await request.form(max_files=0, max_fields=50)
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not user.session.csrf_matches(token):
        raise PageError(403, "error.403.csrf")
    return form


def text(form: FormData, name: str) -> str:
    """A text field, stripped; empty when absent. NUL (which PostgreSQL refuses) and overlong values are a
    400 page."""
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > _MAX_FIELD or "\x00" in value:
        raise PageError(400)
    return value.strip()
