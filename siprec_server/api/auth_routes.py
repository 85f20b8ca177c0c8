"""Logging in and out of the portal, and who the caller is: ``/session``, ``/me``, ``/me/password``.

A login sets two cookies: ``hangtar_session`` (the session token: HttpOnly, so scripts never see it) and
``hangtar_csrf`` (readable by the portal's script, which echoes it in ``X-CSRF-Token``). Both are
``SameSite=Strict``, ``Path=/`` and ``Secure`` unless the API was built for plain-HTTP development. A failed
login gets one answer whatever the reason; too many failures get 429 with ``Retry-After``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from storage.login_limit import LoginThrottledError
from storage.principal import ROLE_PERMISSIONS, Permission, Role

from .deps import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    Caller,
    authenticate,
    client_origin,
    services,
)
from .fields import TEXT
from .problems import PROBLEM_JSON, ApiProblem, throttled
from .services import ApiServices

__all__ = ["router"]

router = APIRouter(tags=["session"])

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}, "description": "a problem document (RFC 9457)"}
_NO_STORE = {"Cache-Control": "no-store"}


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=1, max_length=320, pattern=TEXT)
    password: str = Field(min_length=1, max_length=1024)


class TenantRef(BaseModel):
    id: UUID
    slug: str
    name: str


class Me(BaseModel):
    kind: str = Field(description="'user' (a login session) or 'api_key'")
    name: str = Field(description="the user's e-mail, or 'api-key:<name>'")
    role: Role
    permissions: list[Permission]
    tenant: TenantRef
    user_id: UUID | None = None
    api_key_id: UUID | None = None
    must_change_password: bool = False
    session_expires_at: datetime | None = None


class LoginResponse(BaseModel):
    csrf_token: str = Field(description=f"send it back in the {CSRF_HEADER} header on unsafe requests")
    me: Me


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


async def _me(api: ApiServices, caller: Caller) -> Me:
    principal = caller.principal
    tenant = await api.tenants.get(principal.tenant_id)
    session = caller.session
    return Me(
        kind="user" if principal.user_id is not None else "api_key",
        name=principal.name,
        role=principal.role,
        permissions=sorted(ROLE_PERMISSIONS[principal.role]),
        tenant=TenantRef(id=tenant.id, slug=tenant.slug, name=tenant.name),
        user_id=principal.user_id,
        api_key_id=principal.api_key_id,
        must_change_password=caller.must_change_password,
        session_expires_at=None if session is None else session.expires_at,
    )


def _set_cookies(response: Response, api: ApiServices, token: str, csrf: str) -> None:
    common: dict[str, Any] = {"path": "/", "secure": api.secure_cookies, "samesite": "strict"}
    response.set_cookie(SESSION_COOKIE, token, httponly=True, **common)
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, **common)


def _clear_cookies(response: Response, api: ApiServices) -> None:
    common: dict[str, Any] = {"path": "/", "secure": api.secure_cookies, "samesite": "strict"}
    response.delete_cookie(SESSION_COOKIE, httponly=True, **common)
    response.delete_cookie(CSRF_COOKIE, httponly=False, **common)


@router.post(
    "/session",
    response_model=LoginResponse,
    summary="Log in: sets the session and CSRF cookies",
    responses={401: _PROBLEM, 422: _PROBLEM, 429: _PROBLEM},
)
async def login(body: LoginRequest, request: Request, response: Response) -> LoginResponse:
    api = services(request)
    origin = client_origin(request)
    try:
        user = await api.users.authenticate(body.email, body.password, origin)
    except LoginThrottledError as exc:
        raise throttled(exc) from None
    if user is None:
        raise ApiProblem(
            401, "wrong e-mail or password", headers={"WWW-Authenticate": 'Bearer realm="hangtar"'}
        )
    token, csrf = await api.sessions.create(user, origin=origin)
    session = await api.sessions.resolve_session(token)
    if session is None:  # pragma: no cover - a session that ended the moment it began
        raise ApiProblem(503, "the session could not be started; try again")
    _set_cookies(response, api, token, csrf)
    response.headers.update(_NO_STORE)
    me = await _me(api, Caller(principal=session.principal, session=session))
    return LoginResponse(csrf_token=csrf, me=me)


@router.delete(
    "/session",
    status_code=204,
    summary="Log out: ends the session on the server and clears the cookies",
    responses={403: _PROBLEM},
)
async def logout(request: Request) -> Response:
    api = services(request)
    token = request.cookies.get(SESSION_COOKIE)
    session = await api.sessions.resolve_session(token)
    if session is not None and token is not None:
        if not session.csrf_matches(request.headers.get(CSRF_HEADER)):
            raise ApiProblem(
                403,
                f"missing or wrong {CSRF_HEADER} header",
                title="CSRF check failed",
                type="urn:hangtar:problem:csrf",
            )
        await api.sessions.revoke(token, origin=client_origin(request))
    response = Response(status_code=204)
    _clear_cookies(response, api)
    return response


@router.get("/me", response_model=Me, summary="Who is calling", responses={401: _PROBLEM})
async def me(request: Request, caller: Annotated[Caller, Depends(authenticate)]) -> Me:
    return await _me(services(request), caller)


@router.post(
    "/me/password",
    response_model=Me,
    summary="Change the caller's password (the one-time password too)",
    responses={401: _PROBLEM, 403: _PROBLEM, 422: _PROBLEM, 429: _PROBLEM},
)
async def change_password(
    body: PasswordChange, request: Request, caller: Annotated[Caller, Depends(authenticate)]
) -> Me:
    api = services(request)
    session = caller.session
    principal = caller.principal
    if session is None or principal.user_id is None:
        raise ApiProblem(403, "an API key has no password")
    try:
        await api.users.change_password(
            principal.tenant_id,
            principal.user_id,
            body.current_password,
            body.new_password,
            principal.actor(client_origin(request)),
        )
    except LoginThrottledError as exc:
        raise throttled(exc) from None
    await api.sessions.revoke_others(principal.user_id, keep=session.id)
    fresh = await api.sessions.resolve_session(request.cookies.get(SESSION_COOKIE))
    return await _me(api, Caller(principal=principal, session=fresh or session))
