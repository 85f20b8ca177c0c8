"""FastAPI dependencies: the services, who is calling, and whether they may.

A caller authenticates with an API key (``Authorization: Bearer htk_…``) or the portal's session cookie
(``hangtar_session``). A cookie session must echo its CSRF token in ``X-CSRF-Token`` on every unsafe method
(POST, PUT, PATCH, DELETE); a key is exempt, since a browser never sends it on its own. A user who must change
a one-time password may do only that (and read ``/me``, log out): :func:`require` answers anything else 403.

No credentials, or ones that do not work, are 401; a role without the permission is 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from storage.login_sessions import ActiveSession
from storage.principal import Permission, Principal

from .problems import ApiProblem
from .services import ApiServices

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "PASSWORD_CHANGE_REQUIRED",
    "SESSION_COOKIE",
    "Caller",
    "authenticate",
    "client_origin",
    "require",
    "services",
]

SESSION_COOKIE = "hangtar_session"
CSRF_COOKIE = "hangtar_csrf"
CSRF_HEADER = "X-CSRF-Token"
PASSWORD_CHANGE_REQUIRED = "urn:hangtar:problem:password-change-required"  # noqa: S105 (a problem type)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # RFC 9110 §9.2.1

# Declared for the OpenAPI document; the header and cookie are read by `authenticate` itself.
_bearer = HTTPBearer(
    auto_error=False, scheme_name="apiKey", description="An API key: `Authorization: Bearer htk_…`"
)
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description="The portal's session cookie (from `POST /api/v1/session`); unsafe methods need "
    "the `X-CSRF-Token` header too.",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """An authenticated caller: the principal, and the login session when it came with a cookie."""

    principal: Principal
    session: ActiveSession | None = None

    @property
    def must_change_password(self) -> bool:
        return self.session is not None and self.session.must_change_password


def services(request: Request) -> ApiServices:
    found: ApiServices = request.app.state.services
    return found


def client_origin(request: Request) -> str:
    """The client's address, for the audit trail and the login limits."""
    return request.client.host if request.client is not None else "unknown"


def _unauthorized(detail: str) -> ApiProblem:
    # RFC 9110 §11.6.1: a 401 names the scheme that would work.
    return ApiProblem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="hangtar"'})


async def authenticate(
    request: Request,
    _key: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _session: Annotated[str | None, Depends(_cookie)],
) -> Caller:
    """The caller, from an API key or the session cookie (CSRF-checked on unsafe methods)."""
    api = services(request)
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        principal = await api.api_keys.resolve(value.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            raise _unauthorized("the API key is not valid")
        caller = Caller(principal=principal)
    else:
        session = await api.sessions.resolve_session(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise _unauthorized("log in first, or send an API key")
        if request.method not in _SAFE_METHODS and not session.csrf_matches(request.headers.get(CSRF_HEADER)):
            raise ApiProblem(
                403,
                f"missing or wrong {CSRF_HEADER} header",
                title="CSRF check failed",
                type="urn:hangtar:problem:csrf",
            )
        caller = Caller(principal=session.principal, session=session)
    request.state.caller = caller
    return caller


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the authenticated principal, if its role has ``permission``."""

    async def dependency(caller: Annotated[Caller, Depends(authenticate)]) -> Principal:
        if caller.must_change_password:
            raise ApiProblem(
                403,
                "password change required: set a new password with POST /api/v1/me/password",
                title="Password change required",
                type=PASSWORD_CHANGE_REQUIRED,
            )
        if not caller.principal.can(permission):
            raise ApiProblem(
                403, f"the role {caller.principal.role.value} may not do this ({permission.value})"
            )
        return caller.principal

    return dependency
