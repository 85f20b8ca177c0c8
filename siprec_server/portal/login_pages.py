"""Logging in and out, the one-time password's replacement, and the language switch.

The login uses the same storage services as ``POST /api/v1/session`` (:mod:`siprec_server.api.auth_routes`):
:meth:`UserStore.authenticate` (argon2id, the login limits, ``session.login_failed`` audited),
:meth:`LoginSessions.create` (``session.login`` audited) and the same two cookies with the same attributes.
The login form carries a token of its own (a cookie and a hidden field that must match), so another site
cannot log a browser into an account of its choosing. A user whose password is a one-time one is sent to
``/password`` first and may do nothing else until it is replaced.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from storage.errors import ConflictError
from storage.login_limit import LoginThrottledError
from storage.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH

from ..api.deps import CSRF_COOKIE, SESSION_COOKIE, client_origin
from ..api.services import ApiServices
from .errors import PortalRoute, Redirect
from .guard import checked_form, portal_state, signed_in, text
from .i18n import LANGUAGE_COOKIE, LANGUAGES, Message
from .web import local_path, page

__all__ = ["LOGIN_COOKIE", "router"]

router = APIRouter(route_class=PortalRoute)

LOGIN_COOKIE = "hangtar_login"  # the login form's own CSRF token
_LOGIN_FIELD = "login_token"
_YEAR = 365 * 24 * 3600


def _cookie_options(api: ApiServices) -> dict[str, Any]:
    # As auth_routes sets them: the whole site, SameSite=Strict, Secure unless served over plain HTTP.
    return {"path": "/", "secure": api.secure_cookies, "samesite": "strict"}


def _login_page(
    request: Request,
    *,
    status: int = 200,
    error: Message | None = None,
    email: str = "",
    next_path: str | None = None,
) -> Response:
    api = portal_state(request).services
    token = secrets.token_urlsafe(24)
    response = page(
        request,
        "login.html",
        status=status,
        error=error,
        login_token=token,
        next=local_path(next_path or request.query_params.get("next")),
        email=email,
    )
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, max_age=3600, **_cookie_options(api))
    return response


@router.get("/")
async def start() -> Response:
    return RedirectResponse("/recordings", status_code=303)


@router.get("/login")
async def login_form(request: Request) -> Response:
    api = portal_state(request).services
    if await api.sessions.resolve_session(request.cookies.get(SESSION_COOKIE)) is not None:
        return RedirectResponse(local_path(request.query_params.get("next")), status_code=303)
    return _login_page(request)


@router.post("/login")
async def log_in(request: Request) -> Response:
    api = portal_state(request).services
    form = await request.form(max_files=0, max_fields=10)
    email, next_path = text(form, "email"), local_path(text(form, "next"))
    sent = form.get(_LOGIN_FIELD)
    expected = request.cookies.get(LOGIN_COOKIE)
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        error = Message.of("login.expired")
        return _login_page(request, status=400, error=error, email=email, next_path=next_path)
    password = form.get("password")
    if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD_LENGTH:
        password = ""
    origin = client_origin(request)
    try:
        user = await api.users.authenticate(email, password, origin)
    except LoginThrottledError as exc:
        seconds = exc.retry_after_seconds
        error = Message.of("login.throttled", seconds=seconds)
        response = _login_page(request, status=429, error=error, email=email, next_path=next_path)
        response.headers["Retry-After"] = str(seconds)
        return response
    if user is None:
        error = Message.of("login.failed")
        return _login_page(request, status=401, error=error, email=email, next_path=next_path)
    token, csrf = await api.sessions.create(user, origin=origin)
    target = "/password" if user.must_change_password else next_path
    response = RedirectResponse(target, status_code=303)
    options = _cookie_options(api)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, **options)
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, **options)
    response.delete_cookie(LOGIN_COOKIE, httponly=True, **options)
    return response


@router.post("/logout")
async def log_out(request: Request) -> Response:
    api = portal_state(request).services
    user = await signed_in(request, password_page=True)
    await checked_form(request, user)
    token = request.cookies.get(SESSION_COOKIE)
    if token is not None:
        await api.sessions.revoke(token, origin=client_origin(request))
    response = RedirectResponse("/login?notice=logout.done", status_code=303)
    options = _cookie_options(api)
    response.delete_cookie(SESSION_COOKIE, httponly=True, **options)
    response.delete_cookie(CSRF_COOKIE, httponly=False, **options)
    return response


@router.get("/password")
async def password_form(request: Request) -> Response:
    user = await signed_in(request, password_page=True)
    return page(
        request, "password.html", first=user.must_change_password, error=None, min_length=MIN_PASSWORD_LENGTH
    )


@router.post("/password")
async def change_password(request: Request) -> Response:
    api = portal_state(request).services
    user = await signed_in(request, password_page=True)
    form = await checked_form(request, user)
    current, new, repeat = (_password(form.get(name)) for name in ("current", "new", "repeat"))

    def refused(message: Message, status: int = 422) -> Response:
        return page(
            request,
            "password.html",
            status=status,
            first=user.must_change_password,
            error=message,
            min_length=MIN_PASSWORD_LENGTH,
        )

    if new != repeat:
        return refused(Message.of("password.mismatch"))
    if len(new) < MIN_PASSWORD_LENGTH:
        return refused(Message.of("password.too_short", length=MIN_PASSWORD_LENGTH))
    if new == current:
        return refused(Message.of("password.same"))
    assert user.principal.user_id is not None  # a login session is always a user's
    try:
        await api.users.change_password(
            user.principal.tenant_id, user.principal.user_id, current, new, user.actor(request)
        )
    except LoginThrottledError as exc:
        seconds = exc.retry_after_seconds
        response = refused(Message.of("login.throttled", seconds=seconds), status=429)
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
        return response
    except (ValueError, ConflictError) as exc:  # ConflictError: changed meanwhile in another session
        if "current password" in str(exc):
            return refused(Message.of("password.wrong"))
        return refused(Message.of("settings.refused", detail=str(exc)))
    await api.sessions.revoke_others(user.principal.user_id, keep=user.session.id)
    raise Redirect("/recordings?notice=password.changed")


def _password(value: object) -> str:
    return value if isinstance(value, str) and len(value) <= MAX_PASSWORD_LENGTH else ""


@router.get("/language/{code}")
async def choose(request: Request, code: str) -> Response:
    response = RedirectResponse(local_path(request.query_params.get("next")), status_code=303)
    if code in LANGUAGES:
        api = portal_state(request).services
        response.set_cookie(
            LANGUAGE_COOKIE, code, max_age=_YEAR, path="/", secure=api.secure_cookies, samesite="lax"
        )
    return response
